"""Delete history rows beyond RUNPROOF_FIELD_HISTORY_RETENTION_DAYS (each field's latest
row is always kept) and old consumed change notices; Celery beat runs it daily."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from inventory import history


class Command(BaseCommand):
    help = __doc__

    def handle(self, *args: Any, **options: Any) -> None:
        result = history.field_history_prune()
        self.stdout.write(
            f"Pruned {result['history']} history row(s) and "
            f"{result['notices']} consumed change notice(s)."
        )
