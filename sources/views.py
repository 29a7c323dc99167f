"""Data source pages: list, detail (health, history, runs), create/edit/delete, sync, runs,
and "revoke at source" for synced credentials and versions.

Everyone signed in reads sources and runs. Only administrators change them, ask for syncs,
or see settings; secrets are never shown back. Writes go through sources.sync.services.
"""

from __future__ import annotations

import datetime as dt
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HTMX_STOP_POLLING, HttpResponseClientRedirect

from inventory import models as m
from inventory import permissions
from inventory.lists import Action, ListPage, keyset_list
from sources import filters, selectors
from sources import models as sm
from sources.connectors import CONNECTORS
from sources.forms import (
    SourceForm,
    SyncForm,
    add_service_errors,
    connector_info,
)
from sources.sync import runner, services
from sources.sync.base import RevokeError, SourceKind
from sources.tables import (
    DeploymentEventTable,
    SourceTable,
    SyncRunTable,
    kind_label,
    schedule_text,
)

FORM_INVALID = "Please correct the errors below."
RUN_ALREADY_ACTIVE = "A run of this source is already running; here it is."
RUN_QUEUED = "Sync requested."
DRY_RUN_QUEUED = "Dry run requested: nothing will be kept."
SOURCE_HAS_ACTIVE_RUN = (
    "A run of this source is queued or running; wait for it to finish."
)

HISTORY_RUNS = 50
RECENT_RUNS = 20
RUN_ERRORS_SHOWN = 500
SORTS = {"name": "name", "kind": "kind", "health": "health"}
EXPORT_COLUMNS = [
    ("id", "pk"),
    ("name", "name"),
    ("kind", "kind"),
    ("enabled", "enabled"),
    ("health", "health"),
    ("schedule_minutes", "schedule_minutes"),
    ("last_run_at", "last_run_at"),
    ("last_success_at", "last_success_at"),
    ("last_error_at", "last_error_at"),
    ("last_error", "last_error"),
    ("last_run_status", "last_run_status"),
]


def _seconds(duration: timedelta | None) -> float | None:
    return round(duration.total_seconds(), 3) if duration is not None else None


RUN_SORTS = {
    "requested_at": "requested_at",
    "status": "status",
    "source": "source__name",
}
RUN_EXPORT_COLUMNS = [
    ("id", "pk"),
    ("source_id", "source_id"),
    ("source", "source.name"),
    ("status", "status"),
    ("trigger", "trigger"),
    ("dry_run", "dry_run"),
    ("requested_by", "requested_by.username"),
    ("requested_at", "requested_at"),
    ("started_at", "started_at"),
    ("finished_at", "finished_at"),
    ("duration_seconds", lambda run: _seconds(run.duration)),
    ("seen", "seen"),
    ("created", "created"),
    ("updated", "updated"),
    ("unchanged", "unchanged"),
    ("gone", "gone"),
    ("errors", "errors"),
    ("error", "error"),
]
EVENT_SORTS = {"received_at": "received_at"}
EVENT_EXPORT_COLUMNS = [
    ("id", "pk"),
    ("received_at", "received_at"),
    ("model", "model_name"),
    ("version", "version"),
    ("environment", "environment"),
    ("endpoint", "endpoint"),
    ("deployment_id", "deployment_id"),
    ("deployment", "deployment.name"),
    ("model_version_id", "model_version_id"),
    ("commit", "commit"),
    ("pipeline", "pipeline"),
    ("pipeline_run", "pipeline_run"),
    ("deployed_at", "deployed_at"),
    ("sent_by", "sent_by.name"),
]
# Bootstrap's palette, as the dashboard's charts use.
SERIES_COLOURS = {
    "created": "#198754",
    "updated": "#0d6efd",
    "gone": "#6c757d",
    "errors": "#dc3545",
    "duration": "#fd7e14",
}


def _connector(kind: str) -> type[SourceKind]:
    try:
        return services.connector_class(kind)
    except (ValidationError, ImportError) as exc:
        raise Http404 from exc


def _require_admin(request: HttpRequest) -> None:
    permissions.require_admin(request.user)


# ---------------------------------------------------------------------------
# Lists: sources, all runs, all deployment events
# ---------------------------------------------------------------------------
SOURCE_LIST = ListPage(
    title="Sources",
    description="The registries, runtimes and credential stores the inventory is read "
    "from, and how their last syncs went.",
    filterset=filters.DataSourceFilter,
    table=SourceTable,
    sorts=SORTS,
    default_sort="name",
    export_columns=EXPORT_COLUMNS,
    export_name="sources",
    export_chunk_size=500,
    noun="source",
    refresh_event="sourcesChanged",
)
RUN_LIST = ListPage(
    title="Sync runs",
    description="Every sync of every source: what started it, how it went, and what it "
    "brought in.",
    filterset=filters.SyncRunFilter,
    table=SyncRunTable,
    sorts=RUN_SORTS,
    default_sort="-requested_at",
    export_columns=RUN_EXPORT_COLUMNS,
    export_name="runs",
    export_chunk_size=500,
    noun="run",
    refresh_event="runsChanged",
    breadcrumbs=(("Sources", "sources:source_list"),),
)
EVENT_LIST = ListPage(
    title="Deployment events",
    description="What CI/CD pipelines said they deployed: which model version, where, "
    "from which commit and pipeline run.",
    filterset=filters.DeploymentEventFilter,
    table=DeploymentEventTable,
    sorts=EVENT_SORTS,
    default_sort="-received_at",
    export_columns=EVENT_EXPORT_COLUMNS,
    export_name="events",
    export_chunk_size=500,
    noun="event",
    breadcrumbs=(("Sources", "sources:source_list"),),
)


@require_GET
@vary_on_headers("HX-Request")  # never let a cache serve the fragment as the page
def source_list(request: HttpRequest) -> HttpResponse:
    actions = [Action("All runs", reverse("sources:run_list"), testid="all-runs")]
    is_admin = permissions.is_admin(request.user)
    if is_admin:
        actions.append(
            Action("New source", reverse("sources:source_new"), primary=True)
        )
    return keyset_list(
        request,
        page=SOURCE_LIST,
        base=selectors.datasource_list(user=request.user),
        actions=actions,
        context={"is_admin": is_admin},
    )


@require_GET
@vary_on_headers("HX-Request")
def run_list(request: HttpRequest) -> HttpResponse:
    """Every run of every source (`?source=<id>` for one), filtered, sorted, paged by keyset."""
    return keyset_list(
        request, page=RUN_LIST, base=selectors.syncrun_list(user=request.user)
    )


@require_GET
@vary_on_headers("HX-Request")
def event_list(request: HttpRequest) -> HttpResponse:
    """Every deployment event pipelines sent, newest first, filtered and paged by keyset."""
    return keyset_list(
        request, page=EVENT_LIST, base=selectors.deploymentevent_list(user=request.user)
    )


# ---------------------------------------------------------------------------
# Detail
# ---------------------------------------------------------------------------
def _next_run(source: sm.DataSource, cls: type[SourceKind]) -> str:
    if not cls.pull or cls.upload == "required" or not source.schedule_minutes:
        return ""
    if not source.enabled:
        return "not scheduled: disabled"
    if source.last_run_at is None:
        return "at the next scheduler tick"
    due = source.last_run_at + timedelta(minutes=source.schedule_minutes)
    if due <= timezone.now():
        return "at the next scheduler tick"
    return due.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def history_chart(runs: list[sm.SyncRun]) -> dict[str, Any]:
    """The history chart's data, oldest run first; the template shows the same numbers."""
    ordered = list(reversed(runs))
    labels = [f"#{r.pk}{' (dry)' if r.dry_run else ''}" for r in ordered]
    return {
        "id": "chart-history",
        "categories": labels,
        "links": [r.get_absolute_url() for r in ordered],
        "bars": [
            {
                "name": name.capitalize(),
                "color": SERIES_COLOURS[name],
                "values": [getattr(r, name) for r in ordered],
            }
            for name in ("created", "updated", "gone", "errors")
        ],
        "line": {
            "name": "Duration (s)",
            "color": SERIES_COLOURS["duration"],
            "values": [
                round(r.duration.total_seconds(), 2) if r.duration else None
                for r in ordered
            ],
        },
    }


def _push_instructions(request: HttpRequest, source: sm.DataSource) -> dict[str, str]:
    if source.kind == "otlp":
        traces = request.build_absolute_uri("/v1/traces")
        return {
            "url": traces,
            "env": "\n".join(
                [
                    f"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT={traces}",
                    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf",
                    'OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer <token with the telemetry scope>"',
                ]
            ),
        }
    if source.kind == "cicd":
        url = request.build_absolute_uri(reverse("api:deployment-events"))
        return {"url": url, "curl": deployment_event_curl(url)}
    return {}


def deployment_event_curl(url: str) -> str:
    """The curl line a pipeline runs after a deploy (shown on the CI/CD source's page)."""
    return (
        f"curl -fsS -X POST {url} \\\n"
        '  -H "Authorization: Bearer $RUNPROOF_TOKEN" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        '  -d \'{"model": "fraud-scorer", "version": "3", "environment": "production", '
        '"endpoint": "https://fraud.internal/v1/score", "commit": "\'"$GIT_COMMIT"\'", '
        '"pipeline": "deploy-fraud-scorer", "pipeline_run": "\'"$CI_RUN_URL"\'"}\''
    )


def _settings_rows(
    source: sm.DataSource, cls: type[SourceKind]
) -> list[dict[str, Any]]:
    described = services.describe_secrets(source)
    rows = []
    for setting in cls.schema.fields:
        if setting.secret:
            value = described.get(setting.name, "")
            shown = (
                f"from the environment variable {value[4:]}"
                if value.startswith("env:")
                else ("set" if value else "not set")
            )
        else:
            raw = source.config.get(setting.name)
            if raw not in (None, ""):
                shown = raw
            elif setting.default not in (None, ""):
                shown = f"{setting.default} (default)"
            else:
                shown = "—"
        rows.append({"setting": setting, "value": shown, "secret": setting.secret})
    return rows


def _detail_context(
    request: HttpRequest, source: sm.DataSource, sync_form: SyncForm | None = None
) -> dict[str, Any]:
    cls = _connector(source.kind)
    is_admin = permissions.is_admin(request.user)
    runs = selectors.syncrun_recent(source=source, limit=HISTORY_RUNS)
    chart = history_chart(runs)
    active = [r for r in runs if r.is_active]
    # A disabled source offers no sync: the runner would refuse it (edit it to enable).
    can_sync = source.enabled and (cls.pull or cls.upload != "none")
    if sync_form is None and is_admin and can_sync:
        sync_form = SyncForm(connector=cls)
    return {
        "source": source,
        "connector": connector_info(cls),
        "kind_label": kind_label(source.kind),
        "schedule": schedule_text(source),
        "next_run": _next_run(source, cls),
        "is_admin": is_admin,
        "can_sync": can_sync,
        "sync_form": sync_form,
        "settings_rows": _settings_rows(source, cls) if is_admin else [],
        "runs": runs[:RECENT_RUNS],
        "active_runs": active,
        # The run the health badge speaks of: the same run, the same state.
        "last_run": selectors.syncrun_last_finished(source=source),
        "chart": chart,
        "chart_rows": [
            {
                "label": label,
                "link": chart["links"][i],
                "values": [bar["values"][i] for bar in chart["bars"]],
                "duration": chart["line"]["values"][i],
            }
            for i, label in enumerate(chart["categories"])
        ],
        "push": _push_instructions(request, source)
        if not cls.pull and cls.upload == "none"
        else {},
        "events": (
            selectors.deploymentevent_recent_for_source(
                source=source, user=request.user, limit=RECENT_RUNS
            )
            if source.kind == "cicd"
            else []
        ),
        "max_upload": settings.SOURCE_UPLOAD_MAX_BYTES,
    }


@require_GET
def source_detail(request: HttpRequest, pk: int) -> HttpResponse:
    source = selectors.datasource_get(source_id=pk)
    return render(
        request,
        "sources/source_detail.html",
        _detail_context(request, source),
    )


# ---------------------------------------------------------------------------
# Create, edit, delete
# ---------------------------------------------------------------------------
@require_GET
def source_new(request: HttpRequest) -> HttpResponse:
    """Choose the kind of source to add."""
    _require_admin(request)
    kinds = []
    for kind, label in services.kind_choices():
        cls = runner.connector_class(kind)
        kinds.append({"kind": kind, "label": label, "description": cls.description})
    return render(request, "sources/source_new.html", {"kinds": kinds})


def _form_response(
    request: HttpRequest,
    form: SourceForm,
    source: sm.DataSource | None,
    status: int = 200,
) -> HttpResponse:
    template_name = "sources/source_form.html"
    if request.htmx and status == 422:
        template_name += "#source-form"
    return render(
        request,
        template_name,
        {
            "form": form,
            "source": source,
            "connector": form.connector_info,
            "kind_label": str(form.connector.label),
        },
        status=status,
    )


def _saved(request: HttpRequest, source: sm.DataSource, verb: str) -> HttpResponse:
    messages.success(request, f"Source “{source}” {verb}.")
    if request.htmx:
        return HttpResponseClientRedirect(source.get_absolute_url())
    return redirect(source.get_absolute_url())


@require_http_methods(["GET", "POST"])
def source_create(request: HttpRequest, kind: str) -> HttpResponse:
    _require_admin(request)
    if kind not in CONNECTORS:
        raise Http404
    cls = _connector(kind)
    form = SourceForm(request.POST or None, connector=cls)
    if request.method == "POST":
        if form.is_valid():
            try:
                source = services.source_create(
                    actor=request.user,
                    name=form.cleaned_data["name"],
                    kind=kind,
                    config=form.config_values(),
                    secrets_given=form.secret_values(),
                    schedule_minutes=form.schedule(),
                    team=form.cleaned_data.get("team"),
                    enabled=form.cleaned_data.get("enabled", False),
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                return _saved(request, source, "created")
        messages.error(request, FORM_INVALID)
        return _form_response(request, form, None, status=422)
    return _form_response(request, form, None)


@require_http_methods(["GET", "POST"])
def source_edit(request: HttpRequest, pk: int) -> HttpResponse:
    _require_admin(request)
    source = selectors.datasource_get(source_id=pk)
    cls = _connector(source.kind)
    form = SourceForm(request.POST or None, connector=cls, source=source)
    if request.method == "POST":
        if form.is_valid():
            try:
                source = services.source_update(
                    actor=request.user,
                    source=source,
                    name=form.cleaned_data["name"],
                    config=form.config_values(),
                    replace_config=True,
                    secrets_given=form.secret_values(),
                    clear_secrets=form.cleared(),
                    schedule_minutes=form.schedule(),
                    team=form.cleaned_data.get("team"),
                    enabled=form.cleaned_data.get("enabled", False),
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            else:
                return _saved(request, source, "saved")
        messages.error(request, FORM_INVALID)
        return _form_response(request, form, source, status=422)
    return _form_response(request, form, source)


@require_http_methods(["GET", "POST"])
def source_delete(request: HttpRequest, pk: int) -> HttpResponse:
    _require_admin(request)
    source = selectors.datasource_get(source_id=pk)
    if request.method == "POST":
        try:
            services.source_delete(actor=request.user, source=source)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect(source.get_absolute_url())
        messages.success(request, f"Source “{source}” deleted.")
        return redirect("sources:source_list")
    return render(request, "sources/source_confirm_delete.html", {"source": source})


# ---------------------------------------------------------------------------
# Sync now, dry run, upload
# ---------------------------------------------------------------------------
@require_POST
def source_sync(request: HttpRequest, pk: int) -> HttpResponse:
    """Ask for a run, then show it (Post/Redirect/Get). A second ask lands on the active run."""
    _require_admin(request)
    source = selectors.datasource_get(source_id=pk)
    cls = _connector(source.kind)
    form = SyncForm(request.POST, request.FILES, connector=cls)
    if form.is_valid():
        try:
            run, created = services.sync_request(
                actor=request.user,
                source=source,
                dry_run=form.cleaned_data.get("dry_run", False),
                upload=form.cleaned_data.get("file"),
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            if created:
                messages.success(request, DRY_RUN_QUEUED if run.dry_run else RUN_QUEUED)
            else:
                messages.info(request, RUN_ALREADY_ACTIVE)
            url = run.get_absolute_url()
            if request.htmx:
                return HttpResponseClientRedirect(url)
            return redirect(url)
    messages.error(request, " ".join(_form_errors(form)) or FORM_INVALID)
    return render(
        request,
        "sources/source_detail.html",
        _detail_context(request, source, sync_form=form),
        status=422,
    )


def _form_errors(form: SyncForm) -> list[str]:
    return [str(e) for errors in form.errors.values() for e in errors]


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------
def _run_context(request: HttpRequest, run: sm.SyncRun) -> dict[str, Any]:
    errors = selectors.syncerror_list_for_user(
        run=run, user=request.user, limit=RUN_ERRORS_SHOWN
    )
    return {
        "run": run,
        "source": run.source,
        "error_rows": errors,
        "errors_truncated": run.errors > len(errors) and not run.is_active,
        "errors_scoped": not permissions.reads_all(request.user),
        "changes": selectors.syncrun_changes_for_user(run=run, user=request.user),
        "max_attempts": settings.SYNC_MAX_ATTEMPTS,
        "upload_limits": {
            "depth": settings.SYNC_UPLOAD_MAX_JSON_DEPTH,
            "memory_mb": settings.SYNC_PARSE_MEMORY_MB,
            "cpu_seconds": settings.SYNC_PARSE_CPU_SECONDS,
        }
        if run.upload and runner.connector_class(run.source.kind).upload_json
        else None,
    }


@require_GET
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = selectors.syncrun_get(run_id=pk)
    return render(request, "sources/run_detail.html", _run_context(request, run))


@require_GET
@vary_on_headers("HX-Request")
def run_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The run's status block, polled every second while it runs.

    Answers 286 once the run has ended, which tells htmx to stop polling; the final
    counts are in that last answer.
    """
    run = selectors.syncrun_get(run_id=pk)
    return render(
        request,
        "sources/run_detail.html#run-status",
        _run_context(request, run),
        status=200 if run.is_active else HTMX_STOP_POLLING,
    )


# ---------------------------------------------------------------------------
# Revoke at source
# ---------------------------------------------------------------------------
REVOCABLE_KINDS: dict[str, type[Model]] = {
    "identity": m.NonHumanIdentity,
    "modelversion": m.ModelVersion,
}


def revocable_source(
    obj: Model,
) -> tuple[sm.DataSource | None, type[SourceKind] | None]:
    """The source whose connector can revoke `obj`, from its source label, if any."""
    kind, _, pk = (obj.source or "").partition(":")
    if not pk.isdigit() or kind not in CONNECTORS:
        return None, None
    try:
        cls = runner.connector_class(kind)
    except ImportError:
        return None, None
    if type(obj) not in cls.revocable:
        return None, None
    return sm.DataSource.objects.filter(pk=int(pk), kind=kind).first(), cls


@require_http_methods(["GET", "POST"])
def revoke(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """Confirm, then withdraw a synced credential's or version's access at its source."""
    if kind not in REVOCABLE_KINDS:
        raise Http404
    _require_admin(request)
    model = REVOCABLE_KINDS[kind]
    obj = model._default_manager.filter(pk=pk).first()
    if obj is None:
        raise Http404
    source, cls = revocable_source(obj)
    if source is None:
        raise Http404
    if request.method == "POST":
        from sources.sync.revoke import revoke_at_source

        try:
            done = revoke_at_source(actor=request.user, obj=obj)
        except RevokeError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, done)
        return redirect(obj.get_absolute_url())
    return render(
        request,
        "sources/revoke_confirm.html",
        {
            "object": obj,
            "source": source,
            "connector": connector_info(cls),
            "kind": kind,
        },
    )
