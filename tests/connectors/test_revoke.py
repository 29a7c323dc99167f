"""revoke_at_source with any connector: who may, what is recorded, and what is refused.

The connector here is a test double whose "source" is a JSON file: revoking appends to it,
so the test can see whether the source was asked, and how often. The real connectors'
revokes are tested against moto and OpenBao in test_aws_iam.py and test_vault.py.
"""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied

from audit.models import AuditEvent
from inventory import models as m
from sources import models as sm
from sources.connectors import CONNECTORS
from sources.sync import secrets
from sources.sync.base import (
    Connector,
    RevokeError,
    SourceConfigError,
    SourceUnavailable,
)
from sources.sync.revoke import ALREADY_REVOKED, revoke_at_source
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


class FileRegistryConnector(Connector):
    """Revokes by writing to the file in its settings; `fail` makes the source refuse."""

    kind = "test_revocable"
    label = "Test registry"
    revocable = (m.ModelVersion, m.NonHumanIdentity)
    revoked_status = m.NonHumanIdentity.Status.DISABLED

    def revoke(self, obj, ctx) -> str:
        failure = ctx.settings.get("fail")
        if failure == "unavailable":
            raise SourceUnavailable("Connection refused by the registry.")
        if failure == "config":
            raise SourceConfigError("The registry refused the source's token.")
        if failure == "refused":
            raise RevokeError("The registry keeps that alias.")
        if failure == "bug":
            raise KeyError("boom")
        path = ctx.settings["log"]
        with open(path, "a") as fp:
            fp.write(json.dumps({"external_id": obj.external_id}) + "\n")
        return f"Removed {obj.external_id} at the registry."


@pytest.fixture
def revocable(monkeypatch, tmp_path):
    monkeypatch.setitem(
        CONNECTORS, "test_revocable", f"{__name__}.FileRegistryConnector"
    )
    log = tmp_path / "revoked.jsonl"
    source = sm.DataSource.objects.create(
        name="Registry",
        kind="test_revocable",
        config={"log": str(log)},
        secrets_encrypted=secrets.encrypt({"token": "s3cr3t-token"}),
    )

    def asked() -> list[str]:
        if not log.exists():
            return []
        return [
            json.loads(line)["external_id"] for line in log.read_text().splitlines()
        ]

    source.asked = asked
    return source


def identity_of(source: sm.DataSource, **kw) -> m.NonHumanIdentity:
    return m.NonHumanIdentity.objects.create(
        name="svc-key", source=source.source_label, external_id="key-1", **kw
    )


def test_model_version_revoke_asks_the_source_and_audits_without_changing_approval(
    revocable, admin_user
):
    version = ModelVersionFactory(
        source=revocable.source_label, external_id="fraud-scorer/3", approval="approved"
    )
    message = revoke_at_source(actor=admin_user, obj=version)

    assert message == "Removed fraud-scorer/3 at the registry."
    assert revocable.asked() == ["fraud-scorer/3"]
    version.refresh_from_db()
    assert version.approval == "approved", "the next sync reads the registry's decision"
    event = AuditEvent.objects.get(action="modelversion.revoke_at_source")
    assert event.actor_id == admin_user.pk
    assert event.after["revoked_at_source"] == {
        "source": revocable.pk,
        "result": message,
    }
    assert event.before["approval"] == event.after["approval"] == "approved"


def test_identity_takes_the_connectors_revoked_status(revocable, admin_user):
    identity = identity_of(revocable)
    revoke_at_source(actor=admin_user, obj=identity)
    identity.refresh_from_db()
    assert identity.status == "disabled"


def test_system_revokes_are_audited_under_their_label(revocable):
    identity = identity_of(revocable)
    revoke_at_source(actor=None, obj=identity, actor_label="incident-response")
    event = AuditEvent.objects.get(action="nonhumanidentity.revoke_at_source")
    assert (event.actor_id, event.actor_label) == (None, "incident-response")


def test_only_administrators_may_revoke(revocable, owner, risk):
    identity = identity_of(revocable, team=owner.teams.first())
    for user in (owner, risk):
        with pytest.raises(PermissionDenied):
            revoke_at_source(actor=user, obj=identity)
    assert revocable.asked() == []
    assert not AuditEvent.objects.filter(action__endswith="revoke_at_source").exists()


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ("unavailable", "Registry did not revoke svc-key: Connection refused"),
        ("config", "Registry did not revoke svc-key: The registry refused"),
        ("refused", "The registry keeps that alias."),
        ("bug", "Registry did not revoke svc-key: unexpected error (KeyError)"),
    ],
)
def test_a_failed_revoke_changes_and_audits_nothing(
    revocable, admin_user, failure, message, caplog
):
    revocable.config["fail"] = failure
    revocable.save()
    identity = identity_of(revocable)

    with pytest.raises(RevokeError) as exc:
        revoke_at_source(actor=admin_user, obj=identity)

    assert str(exc.value).startswith(message)
    identity.refresh_from_db()
    assert identity.status == "active"
    assert not AuditEvent.objects.filter(action__endswith="revoke_at_source").exists()
    assert any("revoke of nonhumanidentity" in r.getMessage() for r in caplog.records)


def test_hand_entered_objects_have_no_source_to_revoke_at(admin_user):
    identity = m.NonHumanIdentity.objects.create(name="typed-in")
    with pytest.raises(RevokeError, match="not brought in by a data source"):
        revoke_at_source(actor=admin_user, obj=identity)


def test_objects_of_a_deleted_source_cannot_be_revoked(revocable, admin_user):
    identity = identity_of(revocable)
    revocable.delete()
    with pytest.raises(RevokeError, match="no longer exists"):
        revoke_at_source(actor=admin_user, obj=identity)


def test_connectors_that_cannot_revoke_say_so(admin_user):
    source = sm.DataSource.objects.create(name="GitHub", kind="github_tokens")
    identity = identity_of(source)
    with pytest.raises(
        RevokeError, match="GitHub tokens and OAuth apps .* cannot revoke"
    ):
        revoke_at_source(actor=admin_user, obj=identity)


def test_a_revoked_identity_is_not_revoked_twice(revocable, admin_user):
    identity = identity_of(revocable, status="revoked")
    with pytest.raises(RevokeError) as exc:
        revoke_at_source(actor=admin_user, obj=identity)
    assert str(exc.value) == ALREADY_REVOKED.format(obj=identity)
    assert revocable.asked() == []


def test_a_revoke_at_source_is_history_of_the_identity_and_announced(
    revocable, admin_user
):
    identity = identity_of(revocable)
    revoke_at_source(actor=admin_user, obj=identity)
    row = m.FieldChange.objects.get()
    assert (row.object_id, row.field, row.before, row.after) == (
        identity.pk,
        "status",
        "active",
        "disabled",
    )
    assert (row.source, row.actor_kind) == (revocable.source_label, "person")
    notice = m.ChangeNotice.objects.get()
    assert (notice.object_id, notice.source) == (identity.pk, revocable.source_label)


def test_a_failed_revoke_writes_no_history(revocable, admin_user):
    revocable.config["fail"] = "bug"
    revocable.save()
    identity = identity_of(revocable)
    with pytest.raises(RevokeError):
        revoke_at_source(actor=admin_user, obj=identity)
    assert not m.FieldChange.objects.exists()
    assert not m.ChangeNotice.objects.exists()
