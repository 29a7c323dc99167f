"""The sources list and the runs tables. Texts from sources (errors) are escaped by tables2."""

from __future__ import annotations

import django_tables2 as tables
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from inventory import models as m
from inventory.tables import KeysetTable, WhenColumn
from sources import models as sm
from sources.sync import services
from sources.sync.engine import COUNTER_MEANINGS

HEALTH_TONES = {
    "healthy": "success",
    "degraded": "warning",
    "failing": "danger",
    "unknown": "secondary",
}
RUN_TONES = {
    "succeeded": "success",
    "partial": "warning",
    "failed": "danger",
    "queued": "info",
    "running": "primary",
    "cancelled": "secondary",
}
ERROR_PREVIEW_CHARS = 120
ENVIRONMENT_LABELS = dict(m.Deployment.Environment.choices)


def badge(text: str, tone: str, testid: str = "") -> str:
    if testid:
        return format_html(
            '<span class="badge text-bg-{}" data-testid="{}">{}</span>',
            tone,
            testid,
            text,
        )
    return format_html('<span class="badge text-bg-{}">{}</span>', tone, text)


def health_badge(source: sm.DataSource) -> str:
    return badge(
        source.get_health_display(),
        HEALTH_TONES.get(source.health, "light"),
        "health",
    )


def run_status_badge(status: str) -> str:
    label = dict(sm.SyncRun.Status.choices).get(status, status)
    return badge(label, RUN_TONES.get(status, "light"), "run-status")


def kind_label(kind: str) -> str:
    try:
        return str(services.connector_class(kind).label)
    except (ImportError, ValidationError):
        return kind


def schedule_text(source: sm.DataSource) -> str:
    try:
        cls = services.connector_class(source.kind)
    except (ImportError, ValidationError):
        return "—"
    if cls.upload == "required":
        return "uploaded files"
    if not cls.pull:
        return "push"
    if not source.schedule_minutes:
        return "on demand"
    return f"every {source.schedule_minutes} min"


class SourceTable(KeysetTable):
    name = tables.Column(linkify=True, orderable=True)
    kind = tables.Column(orderable=True)
    health = tables.Column(orderable=True)
    enabled = tables.Column()
    schedule_minutes = tables.Column(verbose_name="Schedule", empty_values=())
    last_success_at = WhenColumn(verbose_name="Last success")
    last_run_status = tables.Column(verbose_name="Last run", empty_values=())
    last_error = tables.Column(verbose_name="Last error")

    class Meta(KeysetTable.Meta):
        model = sm.DataSource
        fields = (
            "name",
            "kind",
            "health",
            "enabled",
            "schedule_minutes",
            "last_success_at",
            "last_run_status",
            "last_error",
        )
        empty_text = "No sources match these filters."

    def render_kind(self, record: sm.DataSource) -> str:
        return kind_label(record.kind)

    def render_health(self, record: sm.DataSource) -> str:
        return health_badge(record)

    def render_enabled(self, value: bool) -> str:
        return "yes" if value else badge("disabled", "secondary")

    def render_schedule_minutes(self, record: sm.DataSource) -> str:
        return schedule_text(record)

    def render_last_run_status(self, record: sm.DataSource) -> str:
        status = getattr(record, "last_run_status", None)
        if not status:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            self.urls.path("sources:run_detail", record.last_run_id),
            run_status_badge(status),
        )

    def render_last_error(self, value: str) -> str:
        text = " ".join(value.split())
        if len(text) > ERROR_PREVIEW_CHARS:
            text = text[: ERROR_PREVIEW_CHARS - 1] + "…"
        return format_html('<span class="small text-danger">{}</span>', text)


class SyncRunTable(KeysetTable):
    """Every run, newest first by default; sortable by the (non-null) columns the view allows."""

    id = tables.Column(verbose_name="Run", orderable=False)
    source = tables.Column(orderable=True)
    status = tables.Column(orderable=True)
    trigger = tables.Column()
    dry_run = tables.Column(verbose_name="Dry run")
    requested_by = tables.Column(verbose_name="Asked by", empty_values=())
    requested_at = WhenColumn(
        verbose_name="Requested", orderable=True, fmt="%Y-%m-%d %H:%M:%S"
    )
    duration = tables.Column(empty_values=(), orderable=False)
    # The counters, with what each counts as the header's title (the run page's words).
    seen = tables.Column(attrs={"th": {"title": COUNTER_MEANINGS["seen"]}})
    created = tables.Column(attrs={"th": {"title": COUNTER_MEANINGS["created"]}})
    updated = tables.Column(attrs={"th": {"title": COUNTER_MEANINGS["updated"]}})
    unchanged = tables.Column(attrs={"th": {"title": COUNTER_MEANINGS["unchanged"]}})
    gone = tables.Column(attrs={"th": {"title": COUNTER_MEANINGS["gone"]}})
    errors = tables.Column(attrs={"th": {"title": COUNTER_MEANINGS["errors"]}})

    class Meta(KeysetTable.Meta):
        model = sm.SyncRun
        fields = (
            "id",
            "source",
            "status",
            "trigger",
            "dry_run",
            "requested_by",
            "requested_at",
            "duration",
            "seen",
            "created",
            "updated",
            "unchanged",
            "gone",
            "errors",
        )
        empty_text = "No runs match these filters."

    def render_id(self, record: sm.SyncRun) -> str:
        return format_html(
            '<a href="{}" data-testid="run-link">#{}</a>',
            self.urls.path("sources:run_detail", record.pk),
            record.pk,
        )

    def render_source(self, record: sm.SyncRun) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            self.urls.path("sources:source_detail", record.source_id),
            record.source.name,
        )

    def render_status(self, record: sm.SyncRun) -> str:
        return run_status_badge(record.status)

    def render_trigger(self, record: sm.SyncRun) -> str:
        return record.get_trigger_display()

    def render_dry_run(self, value: bool) -> str:
        return badge("dry run", "light") if value else "—"

    def render_requested_by(self, record: sm.SyncRun) -> str:
        user = record.requested_by
        return user.get_username() if user is not None else "—"

    def render_duration(self, record: sm.SyncRun) -> str:
        duration = record.duration
        return f"{duration.total_seconds():.1f} s" if duration is not None else "—"


class DeploymentEventTable(KeysetTable):
    """What pipelines said they deployed. Their texts (endpoint, commit, run) are escaped."""

    received_at = WhenColumn(
        verbose_name="Received", orderable=True, fmt="%Y-%m-%d %H:%M:%S"
    )
    model_name = tables.Column(verbose_name="Model")
    version = tables.Column()
    environment = tables.Column()
    deployment = tables.Column(empty_values=())
    commit = tables.Column(empty_values=())
    pipeline = tables.Column()
    pipeline_run = tables.Column(verbose_name="Pipeline run")
    sent_by = tables.Column(verbose_name="Sent by", empty_values=())

    class Meta(KeysetTable.Meta):
        model = sm.DeploymentEvent
        fields = (
            "received_at",
            "model_name",
            "version",
            "environment",
            "deployment",
            "commit",
            "pipeline",
            "pipeline_run",
            "sent_by",
        )
        empty_text = "No deployment events match these filters."

    def render_version(self, record: sm.DeploymentEvent) -> str:
        if record.model_version_id is None:
            return record.version
        return format_html(
            '<a href="{}">{}</a>',
            self.urls.of(record.model_version),
            record.version,
        )

    def render_environment(self, value: str) -> str:
        return ENVIRONMENT_LABELS.get(value, value)

    def render_deployment(self, record: sm.DeploymentEvent) -> str:
        """The deployment the event was recorded against, or the endpoint it named."""
        if record.deployment_id is None:
            return format_html('<span class="text-break">{}</span>', record.endpoint)
        return format_html(
            '<a href="{}">{}</a>',
            self.urls.of(record.deployment),
            record.deployment.name,
        )

    def render_commit(self, value: str) -> str:
        return format_html("<code>{}</code>", value) if value else "—"

    def render_pipeline_run(self, value: str) -> str:
        # Shown as text, never as a link: the sender chose it, and it may not be http(s).
        return format_html('<span class="text-break">{}</span>', value)

    def render_sent_by(self, record: sm.DeploymentEvent) -> str:
        if record.sent_by_id is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            self.urls.of(record.sent_by),
            record.sent_by.name,
        )
