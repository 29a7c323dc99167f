"""The identity detectors write a new finding's source records as JSON text directly
(`identities.records_json`, `Condition.records_json`): the text is what encoding the
listed records gives, so the evidence is the same whichever way it is written."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from governance.detection import Condition
from governance.detectors import identities

AT = datetime(2026, 11, 3, 4, 5, 6, 789, tzinfo=UTC)


def identity(**overrides) -> SimpleNamespace:
    fields = {
        "pk": 1,
        "source": "aws-prod",
        "issued_at": AT,
        "rotated_at": None,
        "last_used_at": AT,
        "expires_at": None,
        "created_at": AT,
    }
    fields.update(overrides)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize(
    "i",
    [
        identity(),
        identity(source='we"ird\\ \u00e9\u4e2d \n tab\t'),
        identity(issued_at=None, last_used_at=None),
        identity(rotated_at=AT, expires_at=datetime(2027, 1, 1, tzinfo=UTC)),
        identity(created_at=None, issued_at=None, last_used_at=None),
    ],
)
def test_the_written_text_is_the_encoded_records(i):
    assert json.loads(identities.records_json(i)) == identities.credential_records(i)
    assert identities.records_json(i) == json.dumps(identities.credential_records(i))
    owner = identities.IdentityMissingOwner()
    assert owner.records_text(i) == json.dumps(owner.records(i))


def test_a_condition_writes_the_text_until_its_records_are_listed():
    i = identity(source="vault")
    rule = identities.StaleCredential()

    def cond() -> Condition:
        return Condition(
            kind=rule.kind,
            subject_type="identity",
            subject_id=1,
            title="t",
            facts={"a": 1},
            records=lambda: rule.records(i),
            records_json=lambda: rule.records_text(i),
        )

    fast, listed = cond(), cond()
    listed.record_list()
    assert json.loads(fast.evidence_json()) == json.loads(listed.evidence_json())
    assert json.loads(fast.evidence_json()) == fast.evidence
