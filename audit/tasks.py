from __future__ import annotations

from celery import shared_task


@shared_task(
    # Idempotent: a checkpoint is written only when the head moved since the last one.
    acks_late=True,
    soft_time_limit=60,
    time_limit=90,
)
def audit_checkpoint() -> None:
    from audit import chain

    chain.audit_checkpoint_take()
