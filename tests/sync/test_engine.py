"""The sync engine with a connector whose source is a list: counts, gone, errors, retries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from inventory import models as m
from sources import models as sm
from sources.sync import runner

pytestmark = pytest.mark.django_db


def records(n, prefix="m"):
    return [{"id": f"{prefix}{i}", "name": f"model-{i}"} for i in range(n)]


@pytest.fixture
def sync(django_capture_on_commit_callbacks):
    """Ask for a run and let the (eager) task run when the request commits."""

    def do(source, **kw):
        with django_capture_on_commit_callbacks(execute=True):
            run, created = runner.request_sync(source=source, trigger="command", **kw)
        assert created
        run.refresh_from_db()
        return run

    return do


def test_first_run_creates_and_second_changes_nothing(list_source, settings, sync):
    settings.SYNC_BATCH_SIZE = 7
    source = list_source(records(25))
    run = sync(source)
    assert (run.status, run.seen, run.created, run.updated, run.unchanged) == (
        "succeeded",
        25,
        25,
        0,
        0,
    )
    label = source.source_label
    assert m.AIModel.objects.filter(source=label).count() == 25
    again = sync(source)
    assert (again.created, again.updated, again.unchanged, again.gone) == (0, 0, 25, 0)
    assert m.AIModel.objects.filter(source=label).count() == 25
    source.refresh_from_db()
    assert source.health == "healthy" and source.last_success_at is not None
    assert AuditEvent.objects.filter(action="datasource.sync").count() == 2


def test_an_unchanged_resync_writes_no_inventory_row(list_source, settings, sync):
    """Issue 9 item 11: rows whose content did not change are not rewritten (no UPDATE,
    not even of `seen_at`: on PostgreSQL each would leave a dead tuple), yet what the
    source stopped reporting is still found gone."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.SYNC_BATCH_SIZE = 4
    source = list_source(records(10))
    sync(source)
    label = source.source_label
    before = dict(m.AIModel.objects.filter(source=label).values_list("pk", "seen_at"))
    table = m.AIModel._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        again = sync(source)
    assert (again.unchanged, again.updated, again.gone) == (10, 0, 0)
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if table in q["sql"]
        and q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT"))
    ]
    assert writes == []
    assert (
        dict(m.AIModel.objects.filter(source=label).values_list("pk", "seen_at"))
        == before
    )
    source.config["records"] = records(7)
    source.save()
    third = sync(source)
    assert (third.unchanged, third.gone) == (7, 3)
    assert set(
        m.AIModel.objects.filter(source=label, gone_at__isnull=False).values_list(
            "external_id", flat=True
        )
    ) == {"m7", "m8", "m9"}


def test_an_unchanged_row_is_reseen_once_its_seen_at_is_old(
    list_source, settings, sync
):
    """What the silent rule reads: a row the source still reports, unchanged, gets its
    `seen_at` moved (and nothing else) once it is SYNC_SEEN_REFRESH_HOURS old, so it never
    falls silent while the source reports it; younger than that, nothing is written."""
    from inventory import selectors

    settings.SYNC_SEEN_REFRESH_HOURS = 6
    source = list_source(records(6))
    sync(source)
    label = source.source_label
    rows = m.AIModel.objects.filter(source=label)
    old = timezone.now() - timedelta(hours=7)
    young = timezone.now() - timedelta(hours=2)
    rows.filter(external_id__in=["m0", "m1"]).update(seen_at=old)
    rows.filter(external_id="m2").update(seen_at=young)
    updated = dict(rows.values_list("external_id", "updated_at"))
    again = sync(source)
    assert (again.unchanged, again.updated) == (6, 0)
    seen = dict(rows.values_list("external_id", "seen_at"))
    assert seen["m0"] >= again.started_at and seen["m1"] >= again.started_at
    assert seen["m2"] == young  # not yet old enough to be written
    assert dict(rows.values_list("external_id", "updated_at")) == updated
    # A tighter policy tightens the refresh: at most a quarter of the silent window.
    policy = selectors.policy_current()
    m.Policy.objects.filter(pk=policy.pk).update(silent_after_hours=4)
    rows.filter(external_id="m2").update(seen_at=young)
    sync(source)
    assert rows.get(external_id="m2").seen_at > young


def test_changed_missing_and_returning_records(list_source, sync):
    source = list_source(records(5))
    sync(source)
    source.config["records"] = records(4)
    source.config["records"][0]["lifecycle"] = "retired"
    source.save()
    run = sync(source)
    assert (run.updated, run.unchanged, run.gone) == (1, 3, 1)
    gone = m.AIModel.objects.get(external_id="m4")
    assert gone.gone_at is not None, (
        "a record no longer reported is marked, not deleted"
    )
    assert {c["action"] for c in run.changes} == {"updated", "gone"}
    updated = next(c for c in run.changes if c["action"] == "updated")
    assert updated["fields"] == {"lifecycle": ["active", "retired"]}
    source.config["records"] = records(5)
    source.config["records"][0]["lifecycle"] = "retired"
    source.save()
    back = sync(source)
    assert back.updated == 1 and back.gone == 0
    assert m.AIModel.objects.get(external_id="m4").gone_at is None


def test_malformed_and_invalid_records_are_skipped_and_recorded(list_source, sync):
    rows = records(3) + [
        {"id": "bad", "malformed": "no name"},
        {"id": "long", "name": "x" * 500},
    ]
    run = sync(list_source(rows))
    assert run.status == "partial"
    assert (run.seen, run.created, run.errors) == (5, 3, 2)
    reasons = dict(run.error_rows.values_list("external_id", "reason"))
    assert reasons["bad"] == "no name"
    assert "longer than 200" in reasons["long"]
    assert sm.DataSource.objects.get().health == "degraded"


def test_unavailable_source_fails_keeps_data_and_schedules_a_backoff_retry(
    list_source, settings, sync
):
    source = list_source(records(3))
    sync(source)
    source.config["down"] = True
    source.save()
    run = sync(source)
    assert run.status == "failed" and "Connection refused" in run.error
    assert m.AIModel.objects.filter(gone_at__isnull=True).count() == 3
    retry = sm.SyncRun.objects.get(retry_of=run)
    assert retry.status == "queued" and retry.retry_number == 1
    wait = (retry.not_before - timezone.now()).total_seconds()
    assert (
        settings.SYNC_RETRY_BASE_SECONDS - 5 < wait <= settings.SYNC_RETRY_BASE_SECONDS
    )
    assert runner.execute_run(retry.pk) is None, "not before its time"
    source.refresh_from_db()
    assert source.health == "failing" and "Connection refused" in source.last_error


def test_dry_run_counts_without_writing(list_source, sync):
    source = list_source(records(4))
    run = sync(source, dry_run=True)
    assert (run.status, run.created) == ("succeeded", 4)
    assert not m.AIModel.objects.exists()
    assert len(run.changes) == 4
    source.refresh_from_db()
    assert source.health == "unknown", "a dry run says nothing of the source's health"


def test_asking_twice_gives_the_same_run(list_source, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "memory://"
    source = list_source(records(1))
    first, created = runner.request_sync(source=source, trigger="manual")
    second, created_again = runner.request_sync(source=source, trigger="manual")
    assert created and not created_again and first.pk == second.pk


def test_running_a_run_twice_does_nothing_the_second_time(list_source, sync):
    source = list_source(records(2))
    run = sync(source)
    assert runner.execute_run(run.pk) is None
    run.refresh_from_db()
    assert run.attempt == 1


def test_a_run_whose_worker_died_is_requeued_and_gives_the_same_rows(list_source):
    source = list_source(records(6))
    run = sm.SyncRun.objects.create(
        source=source,
        trigger="schedule",
        status="running",
        attempt=1,
        started_at=timezone.now() - timedelta(minutes=30),
        heartbeat_at=timezone.now() - timedelta(minutes=30),
    )
    # What the dead attempt had written before it died: half the rows.
    m.AIModel.objects.create(
        source=source.source_label, external_id="m0", name="model-0"
    )
    result = runner.reconcile()
    assert result["requeued"] == 1 and result["resent"] == 1
    run.refresh_from_db()
    assert run.status == "succeeded" and run.attempt == 2
    assert m.AIModel.objects.filter(source=source.source_label).count() == 6


def test_fifty_thousand_records_sync_in_bounded_memory(list_source, sync):
    """Memory follows the batch, not the source: 50,000 records, peak well under 50 MB.

    Holding all 50,000 model instances at once would take several times the bound.
    """
    import tracemalloc

    source = list_source([], generate=50_000)
    tracemalloc.start()
    try:
        run = sync(source)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (run.status, run.created) == ("succeeded", 50_000)
    assert m.AIModel.objects.filter(source=source.source_label).count() == 50_000
    assert peak < 50 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
