"""The audit trail's hash chain, its signed checkpoints, and the commands that check them.

Tampering tests write to the table behind the app's back: on SQLite with raw SQL or a
queryset update, as an attacker with file access would. On PostgreSQL the trigger refuses
those writes (the services-marked tests at the end), so the tampering tests run on SQLite.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction

from audit import tasks
from audit.chain import (
    GENESIS_HASH,
    audit_chain_verify,
    audit_checkpoint_take,
    event_hash,
)
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from inventory import models as m
from inventory import services


@pytest.fixture
def superuser_tampering():
    """The attacker these tests play. On PostgreSQL the append-only trigger refuses the edits
    (see the services tests), so the attacker is a superuser who disables it first: exactly
    the case the hash chain and the signed checkpoints are for. The test's transaction rolls
    the DDL back with everything else."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE governance_auditevent DISABLE TRIGGER USER")
    yield


tampering = pytest.mark.usefixtures("superuser_tampering")


@pytest.fixture
def chain(admin_user, team_a):
    """Five events made through the services: creates, an update and a delete."""
    model = services.object_create(
        actor=admin_user, instance=m.AIModel(name="scorer", team=team_a)
    )
    deployment = services.object_create(
        actor=admin_user,
        instance=m.Deployment(name="scorer-prod", model=model, team=team_a),
    )
    deployment.endpoint = "https://scorer.internal/v2"
    services.object_update(actor=admin_user, instance=deployment)
    services.object_create(
        actor=admin_user, instance=m.System(name="loan desk", team=team_a)
    )
    services.object_delete(actor=admin_user, instance=deployment)
    return list(AuditEvent.objects.order_by("seq"))


def _rewrite_from(seq: int, **changes: str) -> None:
    """An attacker's best effort: edit event `seq`, then recompute every later hash."""
    prev = AuditEvent.objects.get(seq=seq - 1).hash if seq > 1 else GENESIS_HASH
    for event in AuditEvent.objects.filter(seq__gte=seq).order_by("seq"):
        edits = changes if event.seq == seq else {}
        for name, value in edits.items():
            setattr(event, name, value)
        event.prev_hash = prev
        event.hash = event_hash(prev, event)
        AuditEvent.objects.filter(pk=event.pk).update(
            prev_hash=event.prev_hash, hash=event.hash, **edits
        )
        prev = event.hash
    AuditChainHead.objects.filter(pk=1).update(last_hash=prev)


@pytest.mark.django_db
def test_services_append_linked_events_that_verify(chain):
    assert [e.seq for e in chain] == [1, 2, 3, 4, 5]
    assert [e.action for e in chain] == [
        "aimodel.create",
        "deployment.create",
        "deployment.update",
        "system.create",
        "deployment.delete",
    ]
    assert chain[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in zip(chain, chain[1:], strict=False))
    report = audit_chain_verify()
    assert report.ok
    assert (report.events, report.checkpoints) == (5, 0)


@tampering
@pytest.mark.django_db
def test_an_edited_event_is_named(chain):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE governance_auditevent SET action = %s WHERE seq = %s",
            ["deployment.read", 3],
        )
    report = audit_chain_verify()
    assert not report.ok
    assert report.problem.seq == 3
    assert "event #3 was altered" in report.problem.reason


@tampering
@pytest.mark.django_db
def test_a_deleted_event_is_named_as_missing(chain):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM governance_auditevent WHERE seq = %s", [3])
    report = audit_chain_verify()
    assert report.problem.seq == 3
    assert "event #3 is missing" in report.problem.reason


@tampering
@pytest.mark.django_db
def test_a_recomputed_suffix_passes_the_chain_alone(chain):
    """Why checkpoints exist: with no checkpoint, a rewritten and re-hashed suffix verifies."""
    _rewrite_from(2, object_repr="nothing to see")
    assert audit_chain_verify().ok


@tampering
@pytest.mark.django_db
def test_a_recomputed_suffix_is_caught_by_a_signed_checkpoint(chain):
    checkpoint = audit_checkpoint_take()
    assert checkpoint.seq == 5
    _rewrite_from(2, object_repr="nothing to see")
    report = audit_chain_verify()
    assert not report.ok
    assert report.problem.seq == 5
    assert "differs from the checkpoint" in report.problem.reason


@tampering
@pytest.mark.django_db
def test_a_forged_checkpoint_is_caught_by_its_signature(chain):
    audit_checkpoint_take()
    _rewrite_from(2, object_repr="nothing to see")
    head = AuditChainHead.objects.get(pk=1)
    AuditCheckpoint.objects.update(hash=head.last_hash)  # no key, so no valid signature
    report = audit_chain_verify()
    assert "bad signature" in report.problem.reason


@pytest.mark.django_db
def test_checkpoints_are_idempotent_and_the_task_takes_them(chain, admin_user):
    assert audit_checkpoint_take() is not None
    assert audit_checkpoint_take() is None
    tasks.audit_checkpoint()  # nothing new: nothing written
    assert AuditCheckpoint.objects.count() == 1
    services.object_create(actor=admin_user, instance=m.System(name="another"))
    tasks.audit_checkpoint.delay()  # eager in tests, through Celery's JSON round trip
    seqs = AuditCheckpoint.objects.order_by("seq").values_list("seq", flat=True)
    assert list(seqs) == [5, 6]
    assert audit_chain_verify().checkpoints == 2


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_verify_audit_reports_counts_and_speed(chain, capsys):
    audit_checkpoint_take()
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert "Audit chain intact" in out
    assert "5 event(s) and 1 checkpoint(s) checked" in out
    assert "events/s" in out


@tampering
@pytest.mark.django_db
def test_verify_audit_fails_naming_the_first_broken_link(chain):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE governance_auditevent SET object_repr = 'x' WHERE seq IN (2, 4)"
        )
    with pytest.raises(CommandError, match=r"broken at #2: event #2 was altered"):
        call_command("verify_audit")


@tampering
@pytest.mark.django_db
def test_verify_audit_exits_non_zero(chain):
    """Through the real entry point, as cron or CI would run it."""
    from django.core.management import ManagementUtility

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM governance_auditevent WHERE seq = 2")
    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(["manage.py", "verify_audit"]).execute()
    assert exit_info.value.code == 1


@pytest.mark.django_db
def test_audit_checkpoint_command(chain, capsys):
    call_command("audit_checkpoint")
    assert "Checkpoint taken at #5" in capsys.readouterr().out
    call_command("audit_checkpoint")
    assert "none taken" in capsys.readouterr().out
    assert AuditCheckpoint.objects.count() == 1


# ---------------------------------------------------------------------------
# PostgreSQL: the table refuses changes whatever the client
# ---------------------------------------------------------------------------
@pytest.mark.services
@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE governance_auditevent SET action = 'x' WHERE seq = 1",
        "DELETE FROM governance_auditevent WHERE seq = 1",
    ],
)
def test_postgres_trigger_refuses_update_and_delete(admin_user, sql):
    assert connection.vendor == "postgresql", "run with DATABASE_URL=postgres://…"
    services.object_create(actor=admin_user, instance=m.System(name="audited"))
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
    assert AuditEvent.objects.filter(seq=1, action="system.create").exists()
    assert audit_chain_verify().ok


@pytest.mark.services
@pytest.mark.django_db
def test_postgres_trigger_refuses_orm_update_and_delete(admin_user):
    assert connection.vendor == "postgresql", "run with DATABASE_URL=postgres://…"
    services.object_create(actor=admin_user, instance=m.System(name="audited"))
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.update(object_repr="rewritten")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.all().delete()
    assert AuditEvent.objects.get(seq=1).object_repr == "audited"


@tampering
@pytest.mark.django_db
def test_checkpoints_outside_the_database_survive_deleted_rows(chain, settings):
    """Rewrite a suffix and delete every checkpoint row: the file copy still catches it."""
    from pathlib import Path

    checkpoint = audit_checkpoint_take()
    lines = Path(settings.AUDIT_CHECKPOINT_FILE).read_text().splitlines()
    assert len(lines) == 1 and f'"seq": {checkpoint.seq}' in lines[0]
    _rewrite_from(2, object_repr="nothing to see")
    AuditCheckpoint.objects.all().delete()
    report = audit_chain_verify()
    assert not report.ok
    assert "differs from the checkpoint" in report.problem.reason


@tampering
@pytest.mark.django_db
def test_a_truncated_tail_is_caught_by_a_checkpoint(chain):
    """Deleting the newest events leaves no gap in the chain; the checkpoint past its end shows it."""
    audit_checkpoint_take()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM governance_auditevent WHERE seq >= %s", [4])
    report = audit_chain_verify()
    assert not report.ok and report.problem.seq == 5


@pytest.mark.django_db
def test_an_unreadable_checkpoint_file_is_a_finding(chain, settings):
    from pathlib import Path

    Path(settings.AUDIT_CHECKPOINT_FILE).write_text('{"seq": 5, "hash": "x"}\n')
    report = audit_chain_verify()
    assert not report.ok
    assert "checkpoint file line 1 is unreadable" in report.problem.reason


@tampering
@pytest.mark.django_db
def test_deleting_the_newest_events_after_the_last_checkpoint_is_caught_by_the_head(
    chain,
):
    """Issue 8, item 11: no checkpoint covers events #4 and #5; the head row still does."""
    from audit.chain import AUDIT_NEWEST_MISSING

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM governance_auditevent WHERE seq >= %s", [4])
    report = audit_chain_verify()
    assert not report.ok and report.problem.seq == 4
    assert report.problem.reason == AUDIT_NEWEST_MISSING.format(first=4, head=5)


@tampering
@pytest.mark.django_db
def test_a_recomputed_newest_event_is_caught_by_the_head(chain):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE governance_auditevent SET hash = %s WHERE seq = %s", ["f" * 64, 5]
        )
    # The edited hash no longer matches the content; a rewritten content is caught by the
    # head when the attacker does not also move the head row.
    assert not audit_chain_verify().ok
    event = AuditEvent.objects.get(seq=5)
    event.object_repr = "nothing to see"
    new_hash = event_hash(event.prev_hash, event)
    AuditEvent.objects.filter(seq=5).update(object_repr="nothing to see", hash=new_hash)
    report = audit_chain_verify()
    assert not report.ok and report.problem.seq == 5
    assert "differs from the chain's head row" in report.problem.reason
