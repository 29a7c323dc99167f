"""Celery tasks for syncs. Thin: the work, and its idempotency, live in sources.sync.runner."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def run_sync(run_id: int) -> None:
    """Run one recorded SyncRun. A duplicate or late delivery finds it claimed and stops."""
    from sources.sync import runner

    runner.execute_run(run_id)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def sync_tick() -> None:
    """Ask for due scheduled syncs; re-send runs the broker lost; re-queue dead ones."""
    from sources.sync import runner

    runner.tick()
