"""Celery tasks for findings. Thin: the work, and its idempotency, live in
governance.detection_runner (the command `detect_findings` calls the same functions)."""

from __future__ import annotations

from celery import shared_task


@shared_task(
    acks_late=True,  # safe: notices are claimed and consumed once, detection is idempotent
    soft_time_limit=120,
    time_limit=150,
)
def detect_changes() -> None:
    """Findings for the objects pending change notices name (beat: every 15 s; also sent
    when a transaction that announced changes commits)."""
    from governance import detection_runner

    detection_runner.detect_changes()


@shared_task(acks_late=True)  # detection over everything twice changes nothing
def detect_all() -> None:
    """The nightly run over every subject (time-based kinds open and resolve)."""
    from governance import detection_runner

    detection_runner.detect_all()
