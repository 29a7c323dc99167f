"""Asking for syncs, running them, and making sure none is lost.

The database is the source of truth for work that was asked for:

1. `request_sync()` records a QUEUED `SyncRun`, then (after commit) sends its id to the
   broker. If the broker is down the run simply stays queued.
2. `execute_run()` (the Celery task's body) *claims* the run with one conditional UPDATE,
   so a duplicate delivery does nothing; it fetches outside any transaction and applies
   in atomic batches, beating a heartbeat after each one.
3. `reconcile()` (Celery beat, every 30 s) re-sends queued runs the broker lost and
   re-queues running runs whose worker stopped beating (killed, out of memory).
4. `schedule_due()` (the same beat tick) asks for each source's run when it is due.
"""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

import audit
from audit.services import Change
from inventory.services import change_record
from sources import models as sm
from sources.connectors import CONNECTORS
from sources.sync import maintenance, secrets, upload_guard
from sources.sync.base import (
    Connector,
    FetchContext,
    Malformed,
    SourceKind,
    SourceUnavailable,
    SyncFailure,
)
from sources.sync.engine import ApplyContext

log = logging.getLogger(__name__)

RUN_IN_PROGRESS = "A run of this source is already queued or running."
NOT_PULL = "{label} sources receive data by push; there is nothing to sync."
UPLOAD_REQUIRED = "{label} sources sync from an uploaded file: choose one."
UPLOAD_NOT_ACCEPTED = "{label} sources do not take an uploaded file."
SOURCE_DISABLED = "This source is disabled."
NOTHING_GONE = (
    "Nothing was marked gone: every record this run read was skipped, so it is no "
    "listing of what the source holds."
)
RUN_ATTEMPTS_EXHAUSTED = (
    "The worker stopped {attempts} times during this run (last seen: {phase}), for "
    "example killed for running out of memory; Runproof stopped retrying it "
    "(RUNPROOF_SYNC_MAX_ATTEMPTS = {limit}) and freed the source."
)


class LostLease(Exception):
    """Another attempt claimed this run (ours was presumed dead): stop writing."""


class _DryRunRollback(Exception):
    pass


def connector_class(kind: str) -> type[SourceKind]:
    return import_string(CONNECTORS[kind])


def connector_for(source: sm.DataSource) -> SourceKind:
    return connector_class(source.kind)(source)


def fetch_context(
    source: sm.DataSource, upload_path: str | None = None
) -> FetchContext:
    return FetchContext(
        source=source,
        settings=dict(source.config),
        secrets=secrets.resolve(secrets.decrypt(source.secrets_encrypted)),
        upload_path=upload_path,
        schema=connector_class(source.kind).schema,
    )


# ---------------------------------------------------------------------------
# Asking for a run
# ---------------------------------------------------------------------------
def request_sync(
    *,
    source: sm.DataSource,
    trigger: str,
    actor: Any = None,
    dry_run: bool = False,
    upload: Any = None,
    actor_label: str = "",
) -> tuple[sm.SyncRun, bool]:
    """Record a run and send it; return (run, created).

    Asking again while a run of the source is queued or running returns that run: a
    double click, a webhook storm or two beat ticks never start two syncs of one source.
    An upload always needs its own run, so it is refused while another is active.
    """
    cls = connector_class(source.kind)
    if not source.enabled and trigger != sm.SyncRun.Trigger.COMMAND:
        raise ValidationError(SOURCE_DISABLED)
    if not cls.pull and cls.upload == "none":
        raise ValidationError(NOT_PULL.format(label=cls.label))
    if upload is None and cls.upload == "required":
        raise ValidationError(UPLOAD_REQUIRED.format(label=cls.label))
    if upload is not None and cls.upload == "none":
        raise ValidationError(UPLOAD_NOT_ACCEPTED.format(label=cls.label))
    try:
        with transaction.atomic():
            active = sm.SyncRun.objects.filter(
                source=source, dry_run=dry_run, status__in=sm.SyncRun.ACTIVE
            ).first()
            if active is not None:
                if upload is not None:
                    raise ValidationError(RUN_IN_PROGRESS)
                return active, False
            run = sm.SyncRun(
                source=source,
                trigger=trigger,
                dry_run=dry_run,
                requested_by=actor if getattr(actor, "pk", None) else None,
                expected=_expected(source),
            )
            if upload is not None:
                run.upload.save(
                    os.path.basename(upload.name) or "upload", upload, False
                )
            run.save()
            if not dry_run:
                sm.DataSource.objects.filter(pk=source.pk).update(
                    last_run_at=run.requested_at
                )
            change_record(
                actor=actor,  # a person, a token (audit_actor) or None: the label names it
                actor_label=actor_label or ("" if actor else "schedule"),
                action="datasource.sync_requested",
                target=source,
                before=None,
                after={
                    "run": run.pk,
                    "trigger": trigger,
                    "dry_run": dry_run,
                    "upload": run.upload.name or None,
                },
            )
            transaction.on_commit(lambda: send(run.pk))
            return run, True
    except IntegrityError:
        # Lost a race with another request for the same source: theirs is the run.
        run = sm.SyncRun.objects.get(
            source=source, dry_run=dry_run, status__in=sm.SyncRun.ACTIVE
        )
        if upload is not None:
            raise ValidationError(RUN_IN_PROGRESS) from None
        return run, False


def _expected(source: sm.DataSource) -> int | None:
    last = (
        sm.SyncRun.objects.filter(
            source=source,
            status__in=[sm.SyncRun.Status.SUCCEEDED, sm.SyncRun.Status.PARTIAL],
        )
        .order_by("-finished_at")
        .values_list("seen", flat=True)
        .first()
    )
    return last or None


def send(run_id: int) -> bool:
    """Hand a run to the broker. A broker that is down leaves it queued for the reconciler."""
    from sources import tasks

    sm.SyncRun.objects.filter(pk=run_id).update(
        sent_at=timezone.now(), send_count=F("send_count") + 1
    )
    try:
        tasks.run_sync.apply_async(
            (run_id,),
            retry=True,
            retry_policy={"max_retries": 1, "interval_start": 0.2, "interval_step": 0},
        )
    except Exception:  # the broker's errors vary by transport; the run stays queued
        log.warning(
            "broker did not take sync run %s; the reconciler will resend it", run_id
        )
        return False
    return True


# ---------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------
def _claim(run_id: int) -> sm.SyncRun | None:
    now = timezone.now()
    stale = now - timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    claimable = Q(status=sm.SyncRun.Status.QUEUED, not_before__lte=now) | Q(
        status=sm.SyncRun.Status.RUNNING, dry_run=False, heartbeat_at__lt=stale
    )
    # A run whose worker already died SYNC_MAX_ATTEMPTS times is not started again: the
    # reconciler fails it with the reason.
    claimed = (
        sm.SyncRun.objects.filter(
            claimable, pk=run_id, attempt__lt=settings.SYNC_MAX_ATTEMPTS
        ).update(
            status=sm.SyncRun.Status.RUNNING,
            attempt=F("attempt") + 1,
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            phase="starting",
            seen=0,
            created=0,
            updated=0,
            unchanged=0,
            gone=0,
            errors=0,
            error="",
            changes=[],
        )
        == 1
    )
    if not claimed:
        return None
    # An earlier attempt that died may have left errors; this attempt reports its own.
    sm.SyncError.objects.filter(run_id=run_id).delete()
    return sm.SyncRun.objects.select_related("source").get(pk=run_id)


def _beat(ctx: ApplyContext, phase: str) -> None:
    """Heartbeat and progress, written only while this attempt still owns the run."""
    if ctx.dry_run:
        return  # a dry run's writes sit in one transaction; the row stays untouched
    c = ctx.counts
    owned = sm.SyncRun.objects.filter(
        pk=ctx.run.pk, attempt=ctx.run.attempt, status=sm.SyncRun.Status.RUNNING
    ).update(
        heartbeat_at=timezone.now(),
        phase=phase,
        seen=c.seen,
        created=c.created,
        updated=c.updated,
        unchanged=c.unchanged,
        errors=c.errors,
    )
    if not owned:
        raise LostLease(ctx.run.pk)
    _flush_errors(ctx)


def _flush_errors(ctx: ApplyContext) -> None:
    if ctx.errors:
        sm.SyncError.objects.bulk_create(
            [
                sm.SyncError(
                    run=ctx.run,
                    external_id=e.external_id,
                    reason=e.reason,
                    excerpt=e.excerpt,
                )
                for e in ctx.errors
            ]
        )
        ctx.errors.clear()


@contextmanager
def _local_upload(run: sm.SyncRun):
    """A path to the run's uploaded file, copied out of remote storage if need be."""
    if not run.upload:
        yield None
        return
    try:
        yield run.upload.path
        return
    except NotImplementedError:  # storage without local paths (S3 and the like)
        pass
    with tempfile.NamedTemporaryFile(suffix=os.path.basename(run.upload.name)) as tmp:
        with run.upload.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                tmp.write(chunk)
        tmp.flush()
        yield tmp.name


def execute_run(run_id: int) -> sm.SyncRun | None:
    """Run a queued sync once. Safe to call twice, or again after a crash."""
    run = _claim(run_id)
    if run is None:
        return None
    source = run.source
    connector = connector_for(source)
    ctx = ApplyContext(source=source, run=run, owns=tuple(connector.owns))
    try:
        with _local_upload(run) as upload_path:
            fctx = fetch_context(source, upload_path)
            fctx.run_id = run.pk
            if run.dry_run:
                try:
                    with transaction.atomic():
                        _sync(connector, fctx, ctx)
                        raise _DryRunRollback
                except _DryRunRollback:
                    pass
            else:
                _sync(connector, fctx, ctx)
    except LostLease:
        log.warning("sync run %s was claimed by a later attempt; stopping", run_id)
        return None
    except SourceUnavailable as exc:
        return _maintain(ctx, _finish_failed(ctx, str(exc), retry=True))
    except (SyncFailure, secrets.SecretError) as exc:
        return _maintain(ctx, _finish_failed(ctx, str(exc), retry=False))
    except Exception as exc:
        log.exception("sync run %s failed", run_id)
        return _maintain(
            ctx,
            _finish_failed(
                ctx, f"Unexpected error: {type(exc).__name__}: {exc}", retry=False
            ),
        )
    return _maintain(ctx, _finish_ok(ctx))


def _maintain(ctx: ApplyContext, run: sm.SyncRun) -> sm.SyncRun:
    """After the run is recorded, outside any transaction: vacuum what a large run wrote
    when autovacuum is off (PostgreSQL), and say so on the run. Never fails the run."""
    try:
        notes = maintenance.vacuum_after_sync(ctx.written, dry_run=run.dry_run)
    except Exception:
        log.exception("vacuum after sync run %s failed", run.pk)
        return run
    if notes:
        run.changes = [*notes, *(run.changes or [])]
        sm.SyncRun.objects.filter(pk=run.pk).update(changes=run.changes)
    return run


def _sync(connector: Connector, fctx: FetchContext, ctx: ApplyContext) -> None:
    if fctx.upload_path and connector.upload_json:
        _beat(ctx, "checking the upload")
        # Read once, in a memory-capped child; its records are applied from its spool
        # (None: the child's read failed and the worker reads the file itself).
        with upload_guard.read_upload(
            connector=connector,
            fctx=fctx,
            json_upload=True,
            beat=lambda: _beat(ctx, "checking the upload"),
        ) as spooled:
            _beat(ctx, "fetching")
            _apply_all(connector, fctx, ctx, spooled)
    else:
        _beat(ctx, "fetching")
        _apply_all(connector, fctx, ctx, None)
    _finish_sync(connector, ctx)


def _apply_all(
    connector: Connector, fctx: FetchContext, ctx: ApplyContext, items: Any
) -> None:
    """Apply what the source sends (`items`, or else `connector.fetch()`) in batches."""
    size = settings.SYNC_BATCH_SIZE
    batch = []
    for item in items if items is not None else connector.fetch(fctx):
        ctx.counts.seen += 1
        if isinstance(item, Malformed):
            ctx.error(item.external_id, item.reason, item.excerpt)
            continue
        batch.append(item)
        if len(batch) >= size:
            _apply_batch(connector, batch, ctx)
            batch = []
            if fctx.expected and not ctx.run.expected:
                ctx.run.expected = fctx.expected[0]
                sm.SyncRun.objects.filter(pk=ctx.run.pk).update(
                    expected=fctx.expected[0]
                )
            _beat(ctx, "applying")
    if batch:
        _apply_batch(connector, batch, ctx)


def _finish_sync(connector: Connector, ctx: ApplyContext) -> None:
    _beat(ctx, "finishing")
    with transaction.atomic():
        connector.finish(ctx)
        if _listing_trustworthy(ctx):
            _mark_gone(connector, ctx)
        else:
            ctx.changes.insert(
                0,
                {
                    "action": "skipped",
                    "kind": "",
                    "external_id": "",
                    "note": NOTHING_GONE,
                },
            )
        ctx.announce()


def _listing_trustworthy(ctx: ApplyContext) -> bool:
    """Whether what the run read can say what is gone.

    A run with errors that kept no record at all (every item malformed, or none applied)
    read no listing it can trust: marking every earlier row gone would be its only effect.
    An empty listing without errors is trusted (the source holds nothing now).
    """
    c = ctx.counts
    return not c.errors or (c.created + c.updated + c.unchanged) > 0


def _apply_batch(connector: Connector, batch: list, ctx: ApplyContext) -> None:
    mark = ctx.mark()
    try:
        with transaction.atomic():
            connector.apply(batch, ctx)
            ctx.announce()
        ctx.batch_committed()
        return
    except LostLease:
        raise
    except Exception:
        ctx.restore(mark)
    # Something in the batch broke it: apply record by record to find and skip it.
    for record in batch:
        one = ctx.mark()
        try:
            with transaction.atomic():
                connector.apply([record], ctx)
                ctx.announce()
            ctx.batch_committed()
        except LostLease:
            raise
        except Exception as exc:
            ctx.restore(one)
            ctx.error(record.external_id, f"Not applied: {exc}")


GONE_CHUNK = 1000


def _mark_gone(connector: Connector, ctx: ApplyContext) -> None:
    """Rows this source reported before but not in this (complete) run are gone.

    The run kept the ids of the rows it reported (unchanged ones are not written, so no
    timestamp says so); the source's other rows still listed are gone. One audit event
    per model (per thousand rows) names them; each is announced.
    """
    now = timezone.now()
    ctx.batch_committed()  # finish() runs in this transaction: what it reported counts
    for model in connector.owns:
        seen = ctx.seen_ids(model)
        stale = [
            (pk, ext)
            for pk, ext in model._default_manager.filter(
                source=ctx.label, gone_at__isnull=True
            )
            .order_by("pk")
            .values_list("pk", "external_id")
            .iterator(chunk_size=5000)
            if pk not in seen
        ]
        if not stale:
            continue
        for _, ext in stale[:10]:
            ctx._note_change("gone", model, ext)
        label = model._meta.label_lower
        events = []
        for start in range(0, len(stale), GONE_CHUNK):
            chunk = stale[start : start + GONE_CHUNK]
            went = model._default_manager.filter(pk__in=[pk for pk, _ in chunk]).update(
                gone_at=now
            )
            ctx.counts.gone += went
            ctx.wrote(model, went)
            events.append(
                Change(
                    action=f"{model._meta.model_name}.sync_gone",
                    target=ctx.source,
                    after={
                        "run": ctx.run.pk,
                        "model": label,
                        "gone": [{"id": pk, "external_id": ext} for pk, ext in chunk],
                    },
                    team_id=ctx.source.team_id,
                )
            )
        ctx.touched |= {(label, pk) for pk, _ in stale}
        audit.record_many(actor=ctx.actor, changes=events)


def _finish_ok(ctx: ApplyContext) -> sm.SyncRun:
    status = (
        sm.SyncRun.Status.PARTIAL if ctx.counts.errors else sm.SyncRun.Status.SUCCEEDED
    )
    return _finish(ctx, status, "")


def _finish_failed(ctx: ApplyContext, error: str, *, retry: bool) -> sm.SyncRun:
    run = _finish(ctx, sm.SyncRun.Status.FAILED, error)
    if retry and not run.dry_run and run.retry_number < settings.SYNC_MAX_RETRIES:
        _schedule_retry(run)
    return run


def _schedule_retry(run: sm.SyncRun) -> None:
    delay = min(
        settings.SYNC_RETRY_BASE_SECONDS * 2**run.retry_number,
        settings.SYNC_RETRY_MAX_SECONDS,
    )
    with transaction.atomic():
        if sm.SyncRun.objects.filter(
            source=run.source, dry_run=False, status__in=sm.SyncRun.ACTIVE
        ).exists():
            return
        retry = sm.SyncRun.objects.create(
            source=run.source,
            trigger=sm.SyncRun.Trigger.RETRY,
            retry_of=run,
            retry_number=run.retry_number + 1,
            not_before=timezone.now() + timedelta(seconds=delay),
            expected=run.expected,
            upload=run.upload.name if run.upload else "",
        )
    log.info("sync run %s failed; retry %s in %s s", run.pk, retry.pk, delay)
    if delay <= 0:
        send(retry.pk)


def _finish(ctx: ApplyContext, status: str, error: str) -> sm.SyncRun:
    run, source, c = ctx.run, ctx.source, ctx.counts
    now = timezone.now()
    with transaction.atomic():
        updated = sm.SyncRun.objects.filter(
            pk=run.pk, attempt=run.attempt, status=sm.SyncRun.Status.RUNNING
        ).update(
            status=status,
            finished_at=now,
            heartbeat_at=now,
            phase="",
            seen=c.seen,
            created=c.created,
            updated=c.updated,
            unchanged=c.unchanged,
            gone=c.gone,
            errors=c.errors,
            error=error[:5000],
            changes=ctx.changes,
        )
        if not updated:
            raise LostLease(run.pk)
        _flush_errors(ctx)
        run.refresh_from_db()
        if not run.dry_run:
            health = {
                sm.SyncRun.Status.SUCCEEDED: sm.DataSource.Health.HEALTHY,
                sm.SyncRun.Status.PARTIAL: sm.DataSource.Health.DEGRADED,
                sm.SyncRun.Status.FAILED: sm.DataSource.Health.FAILING,
            }[status]
            fields: dict[str, Any] = {"health": health}
            if status == sm.SyncRun.Status.FAILED:
                fields.update(last_error=error[:5000], last_error_at=now)
            else:
                fields.update(last_success_at=now)
                if status == sm.SyncRun.Status.PARTIAL:
                    fields.update(
                        last_error=f"{c.errors} record(s) skipped in run {run.pk}.",
                        last_error_at=now,
                    )
            sm.DataSource.objects.filter(pk=source.pk).update(**fields)
            change_record(
                actor=None,
                actor_label="sync",
                action="datasource.sync",
                target=source,
                before=None,
                after={
                    "run": run.pk,
                    "status": status,
                    "seen": c.seen,
                    "created": c.created,
                    "updated": c.updated,
                    "unchanged": c.unchanged,
                    "gone": c.gone,
                    "errors": c.errors,
                    "error": error[:500],
                },
            )
    return run


# ---------------------------------------------------------------------------
# The beat tick: schedules and the reconciler
# ---------------------------------------------------------------------------
def schedule_due() -> list[sm.SyncRun]:
    now = timezone.now()
    runs = []
    for source in sm.DataSource.objects.filter(enabled=True, schedule_minutes__gt=0):
        cls = connector_class(source.kind)
        if not cls.pull or cls.upload == "required":
            continue
        if (
            source.last_run_at
            and source.last_run_at + timedelta(minutes=source.schedule_minutes) > now
        ):
            continue
        run, created = request_sync(source=source, trigger=sm.SyncRun.Trigger.SCHEDULE)
        if created:
            runs.append(run)
    return runs


def reconcile() -> dict[str, int]:
    """Re-send what the broker lost; re-queue what a dead worker left running."""
    now = timezone.now()
    lease = timedelta(seconds=settings.SYNC_LEASE_SECONDS)
    dead = sm.SyncRun.objects.filter(
        status__in=sm.SyncRun.ACTIVE,
        dry_run=False,
        attempt__gte=settings.SYNC_MAX_ATTEMPTS,
    ).filter(
        Q(status=sm.SyncRun.Status.QUEUED)
        | Q(status=sm.SyncRun.Status.RUNNING, heartbeat_at__lt=now - lease)
    )
    exhausted = sum(
        _fail_exhausted(run_id) for run_id in dead.values_list("pk", flat=True)
    )
    requeued = sm.SyncRun.objects.filter(
        status=sm.SyncRun.Status.RUNNING,
        dry_run=False,
        heartbeat_at__lt=now - lease,
        attempt__lt=settings.SYNC_MAX_ATTEMPTS,
    ).update(status=sm.SyncRun.Status.QUEUED, sent_at=None, phase="re-queued")
    # A dry run keeps its row untouched while it works, so only the task time limit
    # tells it died.
    abandoned = sm.SyncRun.objects.filter(
        status=sm.SyncRun.Status.RUNNING,
        dry_run=True,
        started_at__lt=now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT),
    ).update(
        status=sm.SyncRun.Status.FAILED,
        finished_at=now,
        error="The worker stopped during this dry run.",
    )
    resend_before = now - timedelta(seconds=settings.SYNC_RESEND_AFTER_SECONDS)
    due = list(
        sm.SyncRun.objects.filter(status=sm.SyncRun.Status.QUEUED, not_before__lte=now)
        .filter(Q(sent_at__isnull=True) | Q(sent_at__lt=resend_before))
        .values_list("pk", flat=True)
    )
    sent = sum(1 for pk in due if send(pk))
    return {
        "requeued": requeued,
        "exhausted": exhausted,
        "abandoned": abandoned,
        "resent": sent,
        "due": len(due),
    }


def _fail_exhausted(run_id: int) -> int:
    """Fail a run whose worker died SYNC_MAX_ATTEMPTS times; 1 if this call did it."""
    run = sm.SyncRun.objects.select_related("source").get(pk=run_id)
    error = RUN_ATTEMPTS_EXHAUSTED.format(
        attempts=run.attempt,
        phase=run.phase or "starting",
        limit=settings.SYNC_MAX_ATTEMPTS,
    )
    now = timezone.now()
    with transaction.atomic():
        # Conditional on the attempt it read, so a worker that just finished wins.
        failed = sm.SyncRun.objects.filter(
            pk=run.pk, attempt=run.attempt, status=run.status
        ).update(
            status=sm.SyncRun.Status.FAILED,
            finished_at=now,
            heartbeat_at=now,
            phase="",
            error=error,
        )
        if not failed:
            return 0
        sm.DataSource.objects.filter(pk=run.source_id).update(
            health=sm.DataSource.Health.FAILING, last_error=error, last_error_at=now
        )
        change_record(
            actor=None,
            actor_label="sync",
            action="datasource.sync",
            target=run.source,
            before=None,
            after={"run": run.pk, "status": sm.SyncRun.Status.FAILED, "error": error},
        )
    log.warning("sync run %s failed after %s attempts", run.pk, run.attempt)
    return 1


def tick() -> dict[str, int]:
    scheduled = schedule_due()
    result = reconcile()
    result["scheduled"] = len(scheduled)
    return result
