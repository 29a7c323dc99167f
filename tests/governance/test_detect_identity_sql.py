"""A first run's identity findings opened in one statement on PostgreSQL
(`governance.detectors.identities_sql`) are the findings the Python path opens, column for
column and event for event, and the next run (in Python) finds every one of them
unchanged: same evidence key, title, tier, severity, queue and assignee."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from governance import detection
from governance.detectors import identities_sql
from governance.models import Finding, FindingEvent
from inventory import models as m
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = [pytest.mark.services, pytest.mark.django_db]
K = Finding.Kind
KINDS = [
    K.STALE_CREDENTIAL,
    K.EXPIRED_ACTIVE,
    K.UNUSED_CREDENTIAL,
    K.MISSING_OWNER,
    K.ORPHANED_IDENTITY,
]
NOW = datetime(2026, 12, 3, 9, 0, 0, 123456, tzinfo=UTC)
# Every column but the id: the two paths must agree on all of them.
COLUMNS = [f.attname for f in Finding._meta.concrete_fields if not f.primary_key]


@pytest.fixture
def identities():
    """Identities holding each rule, in every shape the SQL must write as Python does:
    never or long ago rotated and used, expiries with and without microseconds, with and
    without owner, team and model, odd names and sources, bound to deployments of each
    tier or to none, and some holding no rule at all."""
    old = NOW - timedelta(days=400)
    recent = NOW - timedelta(days=3)
    owner = UserFactory(username="keeper")
    team = TeamFactory()
    deployments = []
    for tier in (1, 2, 3, 4):
        d = DeploymentFactory()
        m.Deployment.objects.filter(pk=d.pk).update(risk_tier=tier)
        deployments.append(d)
    model = AIModelFactory()
    made = [
        IdentityFactory(
            name="plain", issued_at=old, rotated_at=None, last_used_at=None
        ),
        IdentityFactory(
            name='we"ird \\ name \u00e9\u4e2d %s',
            source='src "quoted" \u00fc',
            issued_at=old.replace(microsecond=500000),
            rotated_at=old + timedelta(days=1),
            last_used_at=old.replace(microsecond=7),
            owner=owner,
            team=team,
            model=model,
            deployments=[deployments[0], deployments[2]],
        ),
        IdentityFactory(
            name="expired-micro",
            expires_at=NOW - timedelta(days=2, microseconds=250),
            issued_at=recent,
            last_used_at=recent,
            team=None,
            deployments=[deployments[1]],
        ),
        IdentityFactory(
            name="expired-whole",
            expires_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            issued_at=recent,
            owner=owner,
            deployments=[deployments[3]],
        ),
        IdentityFactory(
            name="fresh", issued_at=recent, last_used_at=recent, owner=owner
        ),
        IdentityFactory(
            name="revoked",
            status=m.NonHumanIdentity.Status.REVOKED,
            issued_at=old,
        ),
    ]
    return made


def _findings() -> list[dict]:
    rows = Finding.objects.order_by("kind", "subject_type", "subject_id").values(
        *COLUMNS
    )
    return list(rows)


def _events() -> list[tuple]:
    return sorted(
        FindingEvent.objects.values_list(
            "finding__kind",
            "finding__subject_type",
            "finding__subject_id",
            "kind",
            "action",
            "at",
            "note",
        )
    )


def _run(settings, *, in_sql: bool):
    settings.FINDINGS_OPEN_IN_SQL = in_sql
    return detection.run(kinds=KINDS, now=NOW, notify=False)


def test_the_statement_opens_what_python_opens(settings, identities, monkeypatch):
    assert connection.vendor == "postgresql"
    python = _run(settings, in_sql=False)
    by_python, python_events = _findings(), _events()
    FindingEvent.objects.all().delete()
    Finding.objects.all().delete()
    opened_in_sql: list[str] = []
    open_in_sql = identities_sql.open_in_sql

    def counted(rule, **kwargs):
        opened_in_sql.append(rule.kind)
        return open_in_sql(rule, **kwargs)

    monkeypatch.setattr(identities_sql, "open_in_sql", counted)

    in_sql = _run(settings, in_sql=True)

    assert sorted(opened_in_sql) == sorted(set(KINDS) - {K.ORPHANED_IDENTITY})

    assert by_python, "the fixture opens findings"
    assert {r["kind"] for r in by_python} >= set(KINDS) - {K.ORPHANED_IDENTITY}
    by_sql = _findings()
    assert len(by_sql) == len(by_python)
    for row, expected in zip(by_sql, by_python, strict=True):
        differ = {k: (row[k], expected[k]) for k in COLUMNS if row[k] != expected[k]}
        assert not differ, (row["kind"], row["subject_id"], differ)
    assert _events() == python_events
    assert in_sql.by_kind == python.by_kind
    assert len(in_sql.opened_ids) == len(python.opened_ids)


def test_the_next_run_finds_every_finding_the_statement_opened_unchanged(
    settings, identities
):
    _run(settings, in_sql=True)
    opened = _findings()
    later = detection.run(
        kinds=KINDS, now=NOW + timedelta(minutes=5), notify=False
    )  # findings there now: the Python path
    assert not later.changed
    assert later.counts["opened"] == later.counts["resolved"] == 0
    assert later.counts.get("evidence_changed", 0) == 0
    assert _findings() == opened


def test_a_chunk_with_a_finding_of_the_kind_goes_through_python(settings, identities):
    """Only a chunk with no finding of the kind at all opens in SQL: one resolved
    finding there means reopening, which the Python path does."""
    _run(settings, in_sql=True)
    stale = Finding.objects.filter(kind=K.STALE_CREDENTIAL).first()
    Finding.objects.filter(kind=K.STALE_CREDENTIAL).exclude(pk=stale.pk).delete()
    Finding.objects.filter(pk=stale.pk).update(status=Finding.Status.RESOLVED)

    again = _run(settings, in_sql=True)

    assert again.by_kind[K.STALE_CREDENTIAL].get("reopened") == 1
    stale.refresh_from_db()
    assert stale.status == Finding.Status.OPEN and stale.times_opened == 2


def test_a_dry_run_counts_what_the_statement_would_open(settings, identities):
    """A dry run writes nothing, so it takes the Python path for every kind; the flags
    its shared read left out (foreseen as opened in SQL) are read after all, and it
    counts what the real run then opens."""
    settings.FINDINGS_OPEN_IN_SQL = True
    dry = detection.run(kinds=KINDS, now=NOW, notify=False, dry_run=True)
    assert not Finding.objects.exists()
    real = _run(settings, in_sql=True)
    assert {k: c.get("opened", 0) for k, c in dry.by_kind.items()} == {
        k: c.get("opened", 0) for k, c in real.by_kind.items()
    }
    assert real.counts["opened"] > 0
