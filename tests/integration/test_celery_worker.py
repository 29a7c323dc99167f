"""A task sent through Redis runs in a real worker and writes to PostgreSQL."""

from __future__ import annotations

import time

import pytest

from audit import tasks
from audit.models import AuditCheckpoint
from audit.services import record as audit_event_record
from tests.factories import TeamFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

POLL_TIMEOUT_SECONDS = 30


def _wait_for_checkpoints(count: int) -> list[AuditCheckpoint]:
    deadline = time.monotonic() + POLL_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        rows = list(AuditCheckpoint.objects.order_by("seq"))
        if len(rows) >= count:
            return rows
        time.sleep(0.2)
    pytest.fail(f"no {count} checkpoint(s) after {POLL_TIMEOUT_SECONDS} s")


@pytest.fixture
def audited_change(transactional_db):
    """One committed audit event, so the chain has a head to sign."""
    team = TeamFactory(name="Payments", slug="payments")
    return audit_event_record(actor=None, action="team.create", target=team)


def test_audit_checkpoint_runs_in_worker_and_writes_postgres(
    celery_worker, broker_dispatch, audited_change
):
    result = tasks.audit_checkpoint.delay()

    [checkpoint] = _wait_for_checkpoints(1)
    assert checkpoint.seq == audited_change.seq
    assert checkpoint.hash == audited_change.hash
    celery_worker.wait_for_log(f"audit_checkpoint[{result.id}] succeeded")


def test_audit_checkpoint_twice_leaves_one_checkpoint(
    celery_worker, broker_dispatch, audited_change
):
    first = tasks.audit_checkpoint.delay()
    _wait_for_checkpoints(1)
    celery_worker.wait_for_log(f"audit_checkpoint[{first.id}] succeeded")

    second = tasks.audit_checkpoint.delay()
    celery_worker.wait_for_log(f"audit_checkpoint[{second.id}] succeeded")

    assert AuditCheckpoint.objects.count() == 1
