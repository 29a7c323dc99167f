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


# The kinds whose condition moves with the clock alone (a credential ages, a breaching
# hour leaves the window, a change ages out, a deprecation lasts, an acceptance expires):
# the hourly run opens and resolves them without waiting for the night.
TIME_BASED_KINDS = (
    "stale_credential",
    "expired_active",
    "unused_credential",
    "out_of_bounds",
    "change_outside_window",
    "deprecated_in_use",
    "shadow_deployment",
)


@shared_task(acks_late=True)  # idempotent like detect_all
def detect_time_based() -> None:
    """The hourly run of the time-based kinds over every subject."""
    from governance import detection_runner

    detection_runner.detect_all(kinds=TIME_BASED_KINDS)


# acks_late is safe: a second run finds the rows the first one sent marked emailed.
@shared_task(acks_late=True)
def send_notification_emails() -> None:
    """Email people their unemailed notifications, one message each (sent when a run or
    an assignment commits new ones; beat: every 60 s, for a lost message or failed send)."""
    from governance import notifications

    notifications.email_pending()
