"""`manage.py seed_demo`: fill an empty inventory with the demo organisation; ensure demo sign-ins."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from devtools import demo, demo_sources

NOT_EMPTY = (
    "The inventory already holds models, so no demo data was seeded. Use --if-empty to make "
    "this a no-op (as on first start), or --accounts-only to just (re)create the demo sign-ins."
)


class Command(BaseCommand):
    help = "Seed a believable demo organisation into an empty inventory, and ensure the demo accounts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--seed", type=int, default=7, help="Random seed (default 7)."
        )
        parser.add_argument("--models", type=int, default=60)
        parser.add_argument("--deployments", type=int, default=200)
        parser.add_argument("--identities", type=int, default=600)
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing (except ensure the accounts) when the inventory already has data.",
        )
        parser.add_argument(
            "--no-sources",
            action="store_true",
            help="Do not create the demo sources (and their first runs).",
        )
        parser.add_argument(
            "--accounts-only",
            action="store_true",
            help="Only create or repair the demo accounts.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["accounts_only"]:
            if demo.has_demo_data():
                if not options["if_empty"]:
                    raise CommandError(NOT_EMPTY)
                self.stdout.write("The inventory already has data; nothing seeded.")
            else:
                self._seed(options)
        self._accounts()

    def _seed(self, options: dict[str, Any]) -> None:
        self.stdout.write(
            f"Seeding demo data (seed {options['seed']}: {options['models']} models, "
            f"{options['deployments']} deployments, {options['identities']} identities)…"
        )
        started = time.perf_counter()
        counts = demo.seed_demo(
            seed=options["seed"],
            models=options["models"],
            deployments=options["deployments"],
            identities=options["identities"],
            progress=lambda message: self.stdout.write(f"  {message}"),
        )
        elapsed = time.perf_counter() - started
        self.stdout.write(self.style.SUCCESS(f"Seeded in {elapsed:.1f} s:"))
        for name, count in counts.items():
            self.stdout.write(f"  {name:<18} {count:>9}")
        if not options["no_sources"] and not demo_sources.has_demo_sources():
            self.stdout.write("Demo sources, each synced once from a demo file:")
            demo_sources.seed_demo_sources(
                seed=options["seed"],
                progress=lambda message: self.stdout.write(f"  {message}"),
            )

    def _accounts(self) -> None:
        accounts = demo.ensure_demo_accounts()
        self.stdout.write("Demo accounts (username / password / role):")
        for username, password, role in accounts:
            self.stdout.write(f"  {username:<12} {password:<24} {role}")
