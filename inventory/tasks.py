from __future__ import annotations

from celery import shared_task


@shared_task(
    # Idempotent: a second prune finds nothing older than the retention to delete.
    acks_late=True,
    soft_time_limit=600,
    time_limit=660,
)
def field_history_prune() -> None:
    from inventory import history

    history.field_history_prune()
