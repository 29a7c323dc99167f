"""Recompute the risk tier of every deployment and model (what the nightly task does), or
of the deployments named with --deployment."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from governance import tiers


class Command(BaseCommand):
    help = "Recompute risk tiers from the tier policy and the overrides in force."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--deployment",
            type=int,
            action="append",
            metavar="ID",
            help="Only this deployment (repeat for more); default: all.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        changed = tiers.recompute(deployment_ids=options["deployment"])
        elapsed = time.perf_counter() - started
        self.stdout.write(
            f"{changed} deployments changed tier or score; {elapsed:.2f} s."
        )
