"""`manage.py detect_findings [--kind KIND ...] [--dry-run] [--changes]`: detection by hand.

Over every subject by default (what the nightly task runs); `--changes` runs the change
consumer once instead (pending change notices). Prints the counts per kind: opened,
updated, resolved, reopened (and evidence changes). Running it twice changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from governance import detection_runner
from governance.detectors import DETECTORS

COLUMNS = ("opened", "updated", "resolved", "reopened", "evidence_changed")
UNKNOWN_KIND = "Unknown finding kind(s): {names}. Choose from: {choices}."
CHANGES_WITH_KIND = "--changes runs every kind on what changed and writes; leave out --kind and --dry-run."


class Command(BaseCommand):
    help = "Detect findings and print the counts per kind (opened, updated, resolved, reopened)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--kind",
            action="append",
            dest="kinds",
            default=[],
            metavar="KIND",
            help="Only this kind (repeat for several). Default: every kind.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would change; write nothing.",
        )
        parser.add_argument(
            "--changes",
            action="store_true",
            help="Consume the pending change notices instead of scanning everything.",
        )

    def handle(
        self, *args: Any, kinds: list[str], dry_run: bool, changes: bool, **options: Any
    ):
        # Kinds in the engine's order, once each (a kind may have a detector per subject).
        known = list(dict.fromkeys(d.kind for d in DETECTORS))
        unknown = sorted(set(kinds) - set(known))
        if unknown:
            raise CommandError(
                UNKNOWN_KIND.format(names=", ".join(unknown), choices=", ".join(known))
            )
        if changes:
            if kinds or dry_run:
                raise CommandError(CHANGES_WITH_KIND)
            result = detection_runner.detect_changes()
        else:
            result = detection_runner.detect_all(kinds=kinds or None, dry_run=dry_run)
        width = max(len(k) for k in known)
        self.stdout.write(
            f"{'kind':<{width}}  " + "  ".join(f"{c:>8}" for c in COLUMNS[:4])
        )
        for kind in dict.fromkeys(kinds) if kinds else known:
            counts = result.by_kind.get(kind, {})
            self.stdout.write(
                f"{kind:<{width}}  "
                + "  ".join(f"{counts.get(c, 0):>8}" for c in COLUMNS[:4])
            )
        totals = result.counts
        self.stdout.write(
            f"{'total':<{width}}  "
            + "  ".join(f"{totals.get(c, 0):>8}" for c in COLUMNS[:4])
            + (" (dry run: nothing written)" if dry_run else "")
        )
