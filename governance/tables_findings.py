"""The findings queue table. Rows arrive filtered and keyset-paginated (views_findings)."""

from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from governance.models import Finding, Notification
from inventory import models as m
from inventory.tables import KeysetTable, WhenColumn

SEVERITY_TONES = {
    Finding.Severity.CRITICAL: "danger",
    Finding.Severity.HIGH: "warning",
    Finding.Severity.MEDIUM: "info",
    Finding.Severity.LOW: "secondary",
}
SUBJECT_PAGES = {
    Finding.Subject.DEPLOYMENT: ("deployment", "inventory:deployment_detail"),
    Finding.Subject.IDENTITY: ("identity", "inventory:identity_detail"),
    Finding.Subject.MODEL: ("model", "inventory:aimodel_detail"),
}
BULK_FORM = "findings-bulk"


def severity_badge(finding: Finding) -> SafeString:
    return format_html(
        '<span class="badge text-bg-{}" data-severity="{}">{}</span>',
        SEVERITY_TONES.get(finding.severity, "secondary"),
        finding.severity,
        finding.get_severity_display(),
    )


def subject_link(finding: Finding) -> SafeString:
    """The subject's name, linked to its page ("#id" if it is gone)."""
    attr, name = SUBJECT_PAGES[finding.subject_type]
    subject = getattr(finding, attr, None)
    label = subject.name if subject is not None else f"#{finding.subject_id}"
    return format_html(
        '<a href="{}">{}</a> <span class="small text-body-secondary">{}</span>',
        reverse(name, args=[finding.subject_id]),
        label,
        finding.get_subject_type_display().lower(),
    )


class FindingTable(KeysetTable):
    select = tables.Column(
        verbose_name="", accessor="pk", empty_values=(), orderable=False
    )
    priority = tables.Column(verbose_name="Priority", orderable=True)
    title = tables.Column(verbose_name="Finding")
    kind = tables.Column()
    subject = tables.Column(accessor="subject_id", empty_values=())
    status = tables.Column()
    team = tables.Column(empty_values=())
    assignee = tables.Column(verbose_name="Assigned", empty_values=())
    source = tables.Column(empty_values=())
    opened_at = WhenColumn(verbose_name="Opened (UTC)", orderable=True)
    last_seen_at = WhenColumn(verbose_name="Last seen (UTC)", orderable=True)

    class Meta(KeysetTable.Meta):
        model = Finding
        fields = (
            "select",
            "priority",
            "title",
            "kind",
            "subject",
            "status",
            "team",
            "assignee",
            "source",
            "opened_at",
            "last_seen_at",
        )
        attrs = {**KeysetTable.Meta.attrs, "data-testid": "finding-table"}
        empty_text = "No findings match these filters."

    def render_select(self, record: Finding) -> SafeString:
        return format_html(
            '<input class="form-check-input" type="checkbox" name="ids" value="{}" '
            'form="{}" aria-label="Select finding {}" data-testid="select-{}">',
            record.pk,
            BULK_FORM,
            record.pk,
            record.pk,
        )

    def render_priority(self, record: Finding) -> SafeString:
        return format_html(
            '{} <span class="small text-body-secondary">tier {}</span>',
            severity_badge(record),
            record.tier,
        )

    def render_title(self, record: Finding) -> SafeString:
        return format_html(
            '<a href="{}" data-testid="finding-link-{}">{}</a>',
            reverse("governance:finding_detail", args=[record.pk]),
            record.pk,
            record.title,
        )

    def render_subject(self, record: Finding) -> SafeString:
        return subject_link(record)

    def render_status(self, record: Finding) -> SafeString:
        return format_html(
            '<span data-testid="status-{}">{}</span>',
            record.pk,
            record.get_status_display(),
        )

    def render_team(self, record: Finding) -> str:
        return record.team.name if record.team_id else "—"

    def render_assignee(self, record: Finding) -> str:
        if record.assignee_id:
            return record.assignee.get_username()
        return f"{record.get_queue_display()} queue"

    def render_source(self, record: Finding) -> str:
        label = record.source
        if not label:
            return "—"
        if label == m.MANUAL_SOURCE:
            return "Typed in"
        return self.source_names().get(label, label)


NOTIFICATION_READ_FORM = "notifications-read"


class NotificationTable(KeysetTable):
    created_at = WhenColumn(verbose_name="When (UTC)", orderable=True)
    message = tables.Column()
    emailed_at = tables.Column(verbose_name="Email", empty_values=())
    read_at = tables.Column(verbose_name="", empty_values=())

    class Meta(KeysetTable.Meta):
        model = Notification
        fields = ("created_at", "message", "emailed_at", "read_at")
        attrs = {**KeysetTable.Meta.attrs, "data-testid": "notification-table"}
        empty_text = "No notifications."

    def render_message(self, record: Notification) -> SafeString:
        weight = "" if record.read_at else "fw-semibold"
        if record.url.startswith("/"):
            return format_html(
                '<a class="{}" href="{}" data-testid="notification-{}">{}</a>',
                weight,
                record.url,
                record.pk,
                record.message,
            )
        return format_html(
            '<span class="{}" data-testid="notification-{}">{}</span>',
            weight,
            record.pk,
            record.message,
        )

    def render_emailed_at(self, record: Notification) -> str:
        return "sent" if record.emailed_at else "—"

    def render_read_at(self, record: Notification) -> SafeString:
        if record.read_at:
            return mark_safe('<span class="small text-body-secondary">read</span>')  # noqa: S308 - a constant
        return format_html(
            '<button class="btn btn-link btn-sm p-0" type="submit" form="{}" name="id" '
            'value="{}" data-testid="mark-read-{}">Mark read</button>',
            NOTIFICATION_READ_FORM,
            record.pk,
            record.pk,
        )
