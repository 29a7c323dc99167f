"""Import a collector's OTLP JSON-lines file: `manage.py import_otlp traces.jsonl`.

The file goes through the same path as an upload on the source's page: a SyncRun of the
OTLP source with the file attached, run here and now (a worker that gets it first runs it
instead; either way it runs once). Prints what the run counted. A file already imported
is refused, since usage counts are sums.
"""

from __future__ import annotations

import os
import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from sources import models as sm
from sources.receivers import otlp
from sources.sync import runner

ACTOR_LABEL = "manage.py import_otlp"
WAIT_SECONDS = 600
NO_SOURCE = "No OpenTelemetry source named or numbered {value!r}."
ALL_DISABLED = (
    "Every OpenTelemetry source is disabled; name one with --source to import anyway."
)


class Command(BaseCommand):
    help = (
        "Import a JSON-lines file of OTLP trace exports into the OpenTelemetry source."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="The .jsonl (or .jsonl.gz) file.")
        parser.add_argument(
            "--source",
            help="The OTLP source's name or id (default: the first enabled one, "
            "created if there is none).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would change and write nothing.",
        )

    def handle(self, *args: Any, path: str, **options: Any) -> None:
        if not os.path.isfile(path):
            raise CommandError(f"No file at {path}.")
        source = self._source(options.get("source"))
        try:
            with open(path, "rb") as f:
                run, _ = runner.request_sync(
                    source=source,
                    trigger=sm.SyncRun.Trigger.COMMAND,
                    upload=File(f, name=os.path.basename(path)),
                    dry_run=options["dry_run"],
                    actor_label=ACTOR_LABEL,
                )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        runner.execute_run(run.pk)
        run = self._wait(run)
        self._report(run)
        if run.status == sm.SyncRun.Status.FAILED:
            raise CommandError(run.error)

    def _source(self, value: str | None) -> sm.DataSource:
        sources = sm.DataSource.objects.filter(kind=sm.DataSource.Kind.OTLP)
        if value:
            found = (
                sources.filter(pk=int(value)).first()
                if value.isdigit()
                else sources.filter(name=value).first()
            )
            if found is None:
                raise CommandError(NO_SOURCE.format(value=value))
            return found
        found = sources.filter(enabled=True).order_by("pk").first()
        if found is not None:
            return found
        if sources.exists():
            raise CommandError(ALL_DISABLED)
        with transaction.atomic():
            return otlp.create_receiver_source()

    def _wait(self, run: sm.SyncRun) -> sm.SyncRun:
        """The run once finished: ours, or a worker's that claimed it first."""
        deadline = time.monotonic() + WAIT_SECONDS
        run.refresh_from_db()
        while run.is_active and time.monotonic() < deadline:
            time.sleep(0.5)
            run.refresh_from_db()
        if run.is_active:
            raise CommandError(
                f"Run {run.pk} is still {run.status} after {WAIT_SECONDS} s."
            )
        return run

    def _report(self, run: sm.SyncRun) -> None:
        summary = next(
            (
                c
                for c in run.changes
                if c.get("action") == "imported" and c.get("kind") == "file"
            ),
            {},
        )
        lines = [
            f"Run {run.pk} {run.get_status_display().lower()}"
            + (" (dry run)" if run.dry_run else "")
            + f": {run.seen} line(s) read, {run.errors} skipped.",
        ]
        if summary:
            lines.append(
                f"{summary.get('spans', 0)} span(s): {summary.get('genai_spans', 0)} GenAI, "
                f"{summary.get('ignored_spans', 0)} without GenAI attributes, "
                f"{summary.get('rejected_spans', 0)} rejected (timestamp)."
            )
            lines.append(
                f"{summary.get('buckets', 0)} hourly usage bucket(s) written for "
                f"{summary.get('deployments', 0)} deployment(s); {run.created} observed "
                "deployment(s) and model(s) created."
            )
        for error in run.error_rows.all()[:20]:
            lines.append(f"  skipped {error.external_id}: {error.reason}")
        self.stdout.write("\n".join(lines))
