"""Manage data sources from the shell, through the same services as the UI and the API.

    manage.py sources list
    manage.py sources show NAME
    manage.py sources add --kind mlflow --name "MLflow prod" --set url=http://mlflow:5000 \\
        --secret token=env:MLFLOW_TOKEN [--schedule 30] [--team SLUG] [--disabled]
    manage.py sources set NAME [--name NEW] [--set k=v ...] [--unset k ...]
        [--secret k=v ...] [--clear-secret k ...] [--schedule MIN] [--team SLUG | --no-team]
        [--enable | --disable]
    manage.py sources sync NAME [--dry-run] [--file PATH] [--wait]
    manage.py sources runs NAME [--limit N]
    manage.py sources tick

The command acts as the operator at the shell: audit events name "command" as the actor.
A secret given as `env:VAR` is read from the environment when the sync runs (nothing is
stored); `-` reads the value from standard input, so it never appears in the process list.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from inventory import models as m
from sources import models as sm
from sources.sync import runner, services

ACTOR_LABEL = "command"
WAIT_POLL_SECONDS = 1.0
WAIT_LIMIT_SECONDS = 3600


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    out = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"{what} {item!r}: write it as key=value.")
        out[key.strip()] = value
    return out


def _errors(exc: ValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{key}: {' '.join(msgs)}" if key != "__all__" else " ".join(msgs)
            for key, msgs in exc.message_dict.items()
        )
    return "; ".join(exc.messages)


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


class Command(BaseCommand):
    help = "List, show, add, change and sync data sources; run the scheduler tick once."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)

        sub.add_parser("list", help="Every source, its health and last run.")

        show = sub.add_parser(
            "show", help="One source: settings, secrets (named only), runs."
        )
        show.add_argument("source", help="The source's name or id.")

        add = sub.add_parser("add", help="Add a source.")
        add.add_argument("--kind", required=True)
        add.add_argument("--name", required=True)
        self._setting_args(add)
        add.add_argument("--disabled", action="store_true")

        change = sub.add_parser("set", help="Change a source.")
        change.add_argument("source", help="The source's name or id.")
        change.add_argument("--name", dest="new_name")
        self._setting_args(change)
        change.add_argument("--unset", action="append", metavar="KEY")
        change.add_argument("--clear-secret", action="append", metavar="KEY")
        change.add_argument("--no-team", action="store_true")
        state = change.add_mutually_exclusive_group()
        state.add_argument("--enable", action="store_true")
        state.add_argument("--disable", action="store_true")

        sync = sub.add_parser(
            "sync", help="Ask for a sync (or run it here with --wait)."
        )
        sync.add_argument("source", help="The source's name or id.")
        sync.add_argument("--dry-run", action="store_true")
        sync.add_argument("--file", help="The file to sync from (upload kinds).")
        sync.add_argument(
            "--wait",
            action="store_true",
            help="Run it in this process now (or wait for the worker that has it) "
            "and print the counts.",
        )

        runs = sub.add_parser("runs", help="A source's latest runs.")
        runs.add_argument("source", help="The source's name or id.")
        runs.add_argument("--limit", type=int, default=20)

        sub.add_parser(
            "tick", help="Ask for due scheduled syncs and re-send lost runs, once."
        )

    @staticmethod
    def _setting_args(parser: CommandParser) -> None:
        parser.add_argument("--set", action="append", metavar="KEY=VALUE")
        parser.add_argument(
            "--secret", action="append", metavar="KEY=VALUE|KEY=env:VAR|KEY=-"
        )
        parser.add_argument("--schedule", type=int, metavar="MINUTES")
        parser.add_argument("--team", metavar="SLUG")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            getattr(self, f"do_{action}")(**options)
        except ValidationError as exc:
            raise CommandError(_errors(exc)) from exc

    # -- helpers -------------------------------------------------------------------------
    def _source(self, ref: str) -> sm.DataSource:
        condition = Q(name=ref)
        if ref.isdigit():
            condition |= Q(pk=int(ref))
        source = sm.DataSource.objects.filter(condition).order_by("pk").first()
        if source is None:
            raise CommandError(f"No source named {ref!r}.")
        return source

    def _team(self, slug: str | None) -> m.Team | None:
        if slug is None:
            return None
        team = m.Team.objects.filter(slug=slug).first()
        if team is None:
            raise CommandError(f"No team with the slug {slug!r}.")
        return team

    def _secrets(self, values: list[str] | None) -> dict[str, str]:
        pairs = _pairs(values, "--secret")
        for key, value in pairs.items():
            if value == "-":
                pairs[key] = sys.stdin.readline().rstrip("\n")
        return pairs

    def _run_line(self, run: sm.SyncRun) -> str:
        took = f"{run.duration.total_seconds():.1f}s" if run.duration else "—"
        return (
            f"#{run.pk:<6} {run.get_status_display():<28} "
            f"{run.get_trigger_display():<14} {_when(run.requested_at)}  {took:>7}  "
            f"seen {run.seen} created {run.created} updated {run.updated} "
            f"unchanged {run.unchanged} gone {run.gone} errors {run.errors}"
            + (" (dry run)" if run.dry_run else "")
        )

    # -- subcommands ---------------------------------------------------------------------
    def do_list(self, **options: Any) -> None:
        from sources import selectors
        from sources.tables import schedule_text

        sources = list(selectors.datasource_list().order_by("name", "pk"))
        if not sources:
            self.stdout.write("No sources.")
            return
        for s in sources:
            self.stdout.write(
                f"{s.pk:<5} {s.name:<32} {s.kind:<14} {s.health:<9} "
                f"{'enabled' if s.enabled else 'disabled':<9} {schedule_text(s):<16} "
                f"last success {_when(s.last_success_at)}  last run {s.last_run_status or '—'}"
            )

    def do_show(self, *, source: str, **options: Any) -> None:
        src = self._source(source)
        cls = services.connector_class(src.kind)
        self.stdout.write(f"{src.name} (id {src.pk}, {cls.label})")
        self.stdout.write(f"  health: {src.get_health_display()}")
        self.stdout.write(f"  enabled: {'yes' if src.enabled else 'no'}")
        self.stdout.write(
            f"  schedule: every {src.schedule_minutes} min (0 = on demand)"
        )
        self.stdout.write(f"  team: {src.team.slug if src.team else '—'}")
        self.stdout.write(f"  last success: {_when(src.last_success_at)}")
        if src.last_error:
            self.stdout.write(
                f"  last error ({_when(src.last_error_at)}): {src.last_error}"
            )
        self.stdout.write(f"  rows labelled: {src.source_label}")
        self.stdout.write("  settings:")
        for key, value in sorted(src.config.items()):
            self.stdout.write(f"    {key} = {value}")
        self.stdout.write("  secrets:")
        for key, value in sorted(services.describe_secrets(src).items()):
            self.stdout.write(f"    {key}: {value}")
        self.stdout.write("  recent runs:")
        for run in sm.SyncRun.objects.filter(source=src).order_by(
            "-requested_at", "-id"
        )[:5]:
            self.stdout.write("    " + self._run_line(run))

    def do_add(
        self,
        *,
        kind: str,
        name: str,
        set: list[str] | None,
        secret: list[str] | None,
        schedule: int | None,
        team: str | None,
        disabled: bool,
        **options: Any,
    ) -> None:
        source = services.source_create(
            actor=None,
            actor_label=ACTOR_LABEL,
            name=name,
            kind=kind,
            config=_pairs(set, "--set"),
            secrets_given=self._secrets(secret),
            schedule_minutes=schedule,
            team=self._team(team),
            enabled=not disabled,
        )
        self.stdout.write(
            f"Added source {source.name!r} (id {source.pk}, {source.kind})."
        )

    def do_set(
        self,
        *,
        source: str,
        new_name: str | None,
        set: list[str] | None,
        secret: list[str] | None,
        schedule: int | None,
        team: str | None,
        unset: list[str] | None,
        clear_secret: list[str] | None,
        no_team: bool,
        enable: bool,
        disable: bool,
        **options: Any,
    ) -> None:
        src = self._source(source)
        config: dict[str, Any] = dict(_pairs(set, "--set"))
        for key in unset or []:
            config[key] = None
        changes: dict[str, Any] = {}
        if new_name is not None:
            changes["name"] = new_name
        if schedule is not None:
            changes["schedule_minutes"] = schedule
        if team is not None:
            changes["team"] = self._team(team)
        elif no_team:
            changes["team"] = None
        if enable or disable:
            changes["enabled"] = enable
        services.source_update(
            actor=None,
            actor_label=ACTOR_LABEL,
            source=src,
            config=config,
            secrets_given=self._secrets(secret),
            clear_secrets=clear_secret or [],
            **changes,
        )
        self.stdout.write(f"Saved source {src.name!r}.")

    def do_sync(
        self,
        *,
        source: str,
        dry_run: bool,
        file: str | None,
        wait: bool,
        **options: Any,
    ) -> None:
        src = self._source(source)
        upload = None
        if file is not None:
            path = Path(file)
            if not path.is_file():
                raise CommandError(f"No such file: {file}")
            upload = File(path.open("rb"), name=path.name)
        try:
            run, created = services.sync_request(
                actor=None,
                actor_label=ACTOR_LABEL,
                source=src,
                dry_run=dry_run,
                upload=upload,
                trigger=sm.SyncRun.Trigger.UPLOAD
                if upload is not None
                else sm.SyncRun.Trigger.COMMAND,
            )
        finally:
            if upload is not None:
                upload.close()
        self.stdout.write(
            f"{'Queued' if created else 'Already queued or running:'} run #{run.pk} "
            f"of {src.name!r}{' (dry run)' if run.dry_run else ''}."
        )
        if not wait:
            return
        # Run it here; if a worker (or the eager task) claimed it first, wait for it.
        runner.execute_run(run.pk)
        run.refresh_from_db()
        waited = 0.0
        while run.is_active and waited < WAIT_LIMIT_SECONDS:
            time.sleep(WAIT_POLL_SECONDS)
            waited += WAIT_POLL_SECONDS
            run.refresh_from_db()
        self.stdout.write(self._run_line(run))
        if run.error:
            self.stdout.write(f"error: {run.error}")
        if run.status == sm.SyncRun.Status.FAILED:
            raise CommandError(f"Run #{run.pk} failed.")

    def do_runs(self, *, source: str, limit: int, **options: Any) -> None:
        src = self._source(source)
        runs = sm.SyncRun.objects.filter(source=src).order_by("-requested_at", "-id")[
            : max(1, limit)
        ]
        if not runs:
            self.stdout.write("No runs yet.")
        for run in runs:
            self.stdout.write(self._run_line(run))

    def do_tick(self, **options: Any) -> None:
        result = runner.tick()
        self.stdout.write(" ".join(f"{k}={v}" for k, v in sorted(result.items())))
