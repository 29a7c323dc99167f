"""The sources list and the runs tables. Texts from sources (errors) are escaped by tables2."""

from __future__ import annotations

import django_tables2 as tables
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html

from inventory import models as m
from inventory.sync import services
from inventory.tables import KeysetTable, WhenColumn

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


def badge(text: str, tone: str, testid: str = "") -> str:
    if testid:
        return format_html(
            '<span class="badge text-bg-{}" data-testid="{}">{}</span>',
            tone,
            testid,
            text,
        )
    return format_html('<span class="badge text-bg-{}">{}</span>', tone, text)


def health_badge(source: m.DataSource) -> str:
    return badge(
        source.get_health_display(),
        HEALTH_TONES.get(source.health, "light"),
        "health",
    )


def run_status_badge(status: str) -> str:
    label = dict(m.SyncRun.Status.choices).get(status, status)
    return badge(label, RUN_TONES.get(status, "light"), "run-status")


def kind_label(kind: str) -> str:
    try:
        return str(services.connector_class(kind).label)
    except (ImportError, ValidationError):
        return kind


def schedule_text(source: m.DataSource) -> str:
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
        model = m.DataSource
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

    def render_kind(self, record: m.DataSource) -> str:
        return kind_label(record.kind)

    def render_health(self, record: m.DataSource) -> str:
        return health_badge(record)

    def render_enabled(self, value: bool) -> str:
        return "yes" if value else badge("disabled", "secondary")

    def render_schedule_minutes(self, record: m.DataSource) -> str:
        return schedule_text(record)

    def render_last_run_status(self, record: m.DataSource) -> str:
        status = getattr(record, "last_run_status", None)
        if not status:
            return "—"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("sources:run_detail", args=[record.last_run_id]),
            run_status_badge(status),
        )

    def render_last_error(self, value: str) -> str:
        text = " ".join(value.split())
        if len(text) > ERROR_PREVIEW_CHARS:
            text = text[: ERROR_PREVIEW_CHARS - 1] + "…"
        return format_html('<span class="small text-danger">{}</span>', text)
