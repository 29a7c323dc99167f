"""Walk the whole audit chain and its signed checkpoints; fail loudly on the first break."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.chain import audit_chain_verify


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain and signed checkpoints; exit 1 on a broken link."

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        report = audit_chain_verify()
        elapsed = time.perf_counter() - started
        rate = report.events / elapsed if elapsed > 0 else float(report.events)
        summary = (
            f"{report.events} event(s) and {report.checkpoints} checkpoint(s) checked "
            f"in {elapsed:.2f}s ({rate:,.0f} events/s)."
        )
        if not report.ok:
            # CommandError exits with status 1 and prints to stderr.
            raise CommandError(
                f"Audit chain broken at #{report.problem.seq}: {report.problem.reason}. {summary}"
            )
        self.stdout.write(self.style.SUCCESS(f"Audit chain intact. {summary}"))
