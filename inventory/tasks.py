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


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def summary_refresh() -> int:
    """Recount the teams whose dashboard counts a write marked (idempotent)."""
    from inventory import summary

    return summary.refresh_dirty()


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1900)
def summary_rebuild() -> int:
    """Nightly: recount every team from the rules and report any stored count that
    differed (there must be none; it is logged as an error and fixed)."""
    import logging

    from inventory import summary

    mismatches = summary.rebuild()
    log = logging.getLogger("inventory.summary")
    for line in mismatches[:100]:
        log.error("summary mismatch: %s", line)
    if mismatches:
        log.error("summary rebuild: %d mismatched counts (fixed)", len(mismatches))
    else:
        log.info("summary rebuild: every count matched")
    return len(mismatches)
