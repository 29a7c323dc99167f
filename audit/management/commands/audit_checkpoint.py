"""Sign the audit chain's head now; Celery beat runs the same hourly (governance.tasks)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from audit.chain import audit_checkpoint_take


class Command(BaseCommand):
    help = "Take a signed checkpoint of the audit chain's head (idempotent)."

    def handle(self, *args: Any, **options: Any) -> None:
        checkpoint = audit_checkpoint_take()
        if checkpoint is None:
            self.stdout.write("Nothing new since the last checkpoint; none taken.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Checkpoint taken at #{checkpoint.seq} ({checkpoint.hash[:16]}…), "
                f"{checkpoint.taken_at:%Y-%m-%d %H:%M:%S} UTC."
            )
        )
