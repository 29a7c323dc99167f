"""Recount the dashboard's summary from the rules (after `migrate` on an existing database,
or to check it): prints every stored count that differed, and stores the recount."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from inventory import summary


class Command(BaseCommand):
    help = "Recount the dashboard's summary from the rules and report any difference."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check", action="store_true", help="Only compare; store nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        mismatches = summary.rebuild(fix=not options["check"])
        for line in mismatches[:50]:
            self.stdout.write(f"  {line}")
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"{len(mismatches)} counts differed; {elapsed:.1f} s."
            + ("" if options["check"] or not mismatches else " Stored the recount.")
        )
