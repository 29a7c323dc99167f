"""The findings queue table. Rows arrive filtered and keyset-paginated (views_findings).

`FindingTable.rows_html` draws the queue's rows in one pass of plain string building: the
same cells as the inventory's compiled rows (`KeysetTable.rows_html`, which stays the
fallback and the reference the tests compare with), without a render method, a
`format_html` and two `reverse()` calls per row: at 50 rows they were most of the page's
CPU after the chart's numbers (bench, issue 10).
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

import django_tables2 as tables
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from governance.models import Finding, Notification
from governance.selectors_findings import PAGE_NAMES
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


def _name(record: Finding, relation: str, attr: str | None) -> Any:
    """The related row's name: the page's annotation (selectors_findings.PAGE_NAMES)
    when the rows carry it, else the joined row's (`attr`; None: its username)."""
    alias = PAGE_NAMES[relation][0]
    if alias in record.__dict__:
        return record.__dict__[alias]
    related = getattr(record, relation, None)
    if related is None:
        return None
    return related.get_username() if attr is None else getattr(related, attr)


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

    # -- the fast rows ---------------------------------------------------------------
    def rows_html(self) -> SafeString:
        """Every row as <tr> markup, cell for cell what `KeysetTable.rows_html` draws
        from the render methods below (tests/governance/test_findings_ui_list.py holds
        the two equal)."""
        if [c.name for c in self.columns] != list(self._meta.fields):
            return (
                super().rows_html()
            )  # columns excluded or reordered: the general path
        records = list(self.data)
        if not records:
            return mark_safe("")  # noqa: S308
        default = str(conditional_escape(self.columns["title"].default))
        urls = self.urls
        kinds = {k: escape(str(v)) for k, v in Finding.Kind.choices}
        statuses = {k: escape(str(v)) for k, v in Finding.Status.choices}
        queues = {k: escape(f"{v} queue") for k, v in Finding.Queue.choices}
        subjects = {k: escape(str(v).lower()) for k, v in Finding.Subject.choices}
        badges: dict[Any, str] = {}
        sources: dict[str, str] = {}
        opened_fmt = self.columns["opened_at"].column.fmt
        seen_fmt = self.columns["last_seen_at"].column.fmt
        out = []
        for r in records:
            pk = r.pk
            if r.priority in (None, ""):
                priority = default
            else:
                badge = badges.get(r.severity)
                if badge is None:
                    badge = badges[r.severity] = str(severity_badge(r))
                priority = (
                    f'{badge} <span class="small text-body-secondary">tier '
                    f"{escape(str(r.tier))}</span>"
                )
            if r.title in (None, ""):
                title = default
            else:
                title = (
                    f'<a href="{escape(urls.path("governance:finding_detail", pk))}" '
                    f'data-testid="finding-link-{pk}">{escape(r.title)}</a>'
                )
            if r.kind in (None, ""):
                kind = default
            else:
                kind = kinds.get(r.kind) or escape(str(r.get_kind_display()))
            attr, url_name = SUBJECT_PAGES[r.subject_type]
            label = _name(r, attr, "name")
            if label is None:
                label = f"#{r.subject_id}"
            subject_type = subjects.get(r.subject_type) or escape(
                r.get_subject_type_display().lower()
            )
            if r.status in (None, ""):
                status = default
            else:
                status = (
                    f'<span data-testid="status-{pk}">'
                    f"{statuses.get(r.status) or escape(str(r.get_status_display()))}"
                    "</span>"
                )
            source = sources.get(r.source)
            if source is None:
                source = sources[r.source] = escape(self.render_source(r))
            if r.assignee_id:
                assignee = escape(_name(r, "assignee", None))
            else:
                assignee = queues.get(r.queue) or escape(
                    f"{r.get_queue_display()} queue"
                )
            opened, seen = r.opened_at, r.last_seen_at
            out.append(
                f'<tr><td><input class="form-check-input" type="checkbox" name="ids" '
                f'value="{pk}" form="{BULK_FORM}" aria-label="Select finding {pk}" '
                f'data-testid="select-{pk}"></td>'
                f"<td>{priority}</td><td>{title}</td><td>{kind}</td>"
                f'<td><a href="{escape(urls.path(url_name, r.subject_id))}">'
                f"{escape(label)}</a> "
                f'<span class="small text-body-secondary">{subject_type}</span></td>'
                f"<td>{status}</td>"
                f"<td>{escape(_name(r, 'team', 'name')) if r.team_id else '—'}</td>"
                f"<td>{assignee}</td><td>{source}</td>"
                "<td>"
                + (
                    default
                    if opened is None
                    else escape(opened.astimezone(dt.UTC).strftime(opened_fmt))
                )
                + "</td><td>"
                + (
                    default
                    if seen is None
                    else escape(seen.astimezone(dt.UTC).strftime(seen_fmt))
                )
                + "</td></tr>"
            )
        return mark_safe("".join(out))  # noqa: S308 - every cell above is escaped

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
