"""Finding pages: the prioritised queue (filters, sorts, CSV, bulk actions, chart), one
finding (evidence, history, actions) and the person's notifications. Thin: the reads are
in `selectors_findings`, the writes in `services_findings`."""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from governance import filters_findings as ff
from governance import findings
from governance import selectors_findings as selectors
from governance import services_findings as services
from governance.dashboard import BLUE, GREY, RED
from governance.models import Finding, Notification
from governance.tables_findings import (
    BULK_FORM,
    NOTIFICATION_READ_FORM,
    FindingTable,
    NotificationTable,
)
from inventory import permissions
from inventory.lists import ListPage, keyset_list
from inventory.pagination import DEFAULT_PER_PAGE, order_value, parse_sort
from inventory.pagination import _after as after_cursor
from inventory.pagination import _decode as decode_cursor
from inventory.pagination import _fit as fit_cursor
from inventory.roles import Role
from inventory.widgets import LookupInput

FINDING_SORTS = {
    "priority": "priority",
    "opened_at": "opened_at",
    "last_seen_at": "last_seen_at",
}
FINDING_DEFAULT_SORT = "priority"


def _user_label(user: Any) -> str:
    return user.get_username() if user is not None else ""


FINDING_EXPORT_COLUMNS = [
    ("id", "pk"),
    ("kind", "kind"),
    ("title", "title"),
    ("severity", lambda f: f.get_severity_display()),
    ("tier", "tier"),
    ("status", "status"),
    ("subject_type", "subject_type"),
    ("subject_id", "subject_id"),
    ("team", lambda f: f.team.name if f.team_id else ""),
    ("owner", lambda f: _user_label(f.owner)),
    ("queue", "queue"),
    ("assignee", lambda f: _user_label(f.assignee)),
    ("source", "source"),
    ("opened_at", "opened_at"),
    ("first_opened_at", "first_opened_at"),
    ("last_seen_at", "last_seen_at"),
    ("resolved_at", "resolved_at"),
    ("times_opened", "times_opened"),
    ("accepted_until", "accepted_until"),
    ("decision_reason", "decision_reason"),
]


def _export_queryset(queryset: QuerySet[Finding], user: Any) -> QuerySet[Finding]:
    """The CSV reads every column and the joined names (the page reads a few columns
    and its names as annotations: selectors_findings.finding_page)."""
    return queryset.defer(None).select_related(*selectors.LIST_RELATED)


FINDING_LIST = ListPage(
    title="Findings",
    description="What the detection engine concluded, most urgent first (severity, then "
    "tier, then age). Unresolved findings unless you choose a status.",
    filterset=ff.FindingFilter,
    table=FindingTable,
    sorts=FINDING_SORTS,
    default_sort=FINDING_DEFAULT_SORT,
    export_columns=FINDING_EXPORT_COLUMNS,
    export_queryset=_export_queryset,
    export_name="findings",
    noun="finding",
    header_template="governance/_finding_list_header.html",
)

KIND_LABELS = dict(Finding.Kind.choices)
RECORD_COLUMNS = ("source", "what", "at")


def chart_specs(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Two stacked bar charts (opened or reopened, resolved) per day by kind, in the
    shape static/js/charts.js draws."""
    categories = [day.strftime("%b %d") for day in data["days"]]
    kinds = sorted(set(data["opened"]) | set(data["resolved"]))
    palette = [BLUE, RED, "#fd7e14", "#198754", "#6f42c1", "#20c997", GREY, "#d63384"]

    def series(which: str) -> list[dict[str, Any]]:
        return [
            {
                "name": str(KIND_LABELS.get(kind, kind)),
                "color": palette[i % len(palette)],
                "values": data[which].get(kind, [0] * len(categories)),
            }
            for i, kind in enumerate(kinds)
        ] or [{"name": "Findings", "color": BLUE, "values": [0] * len(categories)}]

    return [
        {
            "id": "chart-findings-opened",
            "title": f"Opened or reopened per day (last {selectors.CHART_DAYS} days)",
            "kind": "stack",
            "x_title": "Day",
            "y_title": "Findings",
            "categories": categories,
            "series": series("opened"),
        },
        {
            "id": "chart-findings-resolved",
            "title": f"Resolved per day (last {selectors.CHART_DAYS} days)",
            "kind": "stack",
            "x_title": "Day",
            "y_title": "Findings",
            "categories": categories,
            "series": series("resolved"),
        },
    ]


def chart_numbers_html(spec: dict[str, Any]) -> SafeString:
    """The numbers under one chart (a head row of days, a row per kind), as the page's
    <thead> and <tbody>: 30 days by up to 17 kinds is some 1,000 cells, which the
    template language drew at a quarter of the page's CPU."""
    head = "".join(
        f'<th scope="col" class="text-end">{escape(str(day))}</th>'
        for day in spec["categories"]
    )
    body = "".join(
        f'<tr><th scope="row" class="fw-normal">{escape(str(series["name"]))}</th>'
        + "".join(f'<td class="text-end">{int(v)}</td>' for v in series["values"])
        + "</tr>"
        for series in spec["series"]
    )
    return mark_safe(  # noqa: S308 - the names and days are escaped, the rest are ints
        f'<thead><tr><th scope="col">Kind</th>{head}</tr></thead>\n<tbody>{body}</tbody>'
    )


@require_GET
@vary_on_headers("HX-Request")  # never let a cache serve the fragment as the page
def finding_list(request: HttpRequest) -> HttpResponse:
    base = ff.default_status(
        selectors.finding_page(user=request.user),
        request.GET,
    )
    context: dict[str, Any] = {"bulk_form": BULK_FORM}
    full_page = request.GET.get("export") != "csv" and not (
        request.htmx and not request.htmx.history_restore_request
    )
    if full_page:
        chart = selectors.findings_chart_cached(user=request.user)
        specs = chart_specs(chart)
        context["chart_data"] = specs
        context["chart_figures"] = [(spec, chart_numbers_html(spec)) for spec in specs]
        context["chart_totals"] = {
            "opened": sum(sum(v) for v in chart["opened"].values()),
            "resolved": sum(sum(v) for v in chart["resolved"].values()),
        }
        context["can_bulk_assign"] = services.is_committee(request.user) or bool(
            findings_team_member(request.user)
        )
        context["back"] = request.get_full_path()
        context["bulk_assignee_input"] = assignee_input("bulk-assignee")
    return keyset_list(
        request,
        page=FINDING_LIST,
        base=base,
        context=context,
        narrow=lambda queryset: selectors.narrow_to_pages(
            queryset, user=request.user, page=lambda: _one_page(request)
        ),
    )


def _one_page(request: HttpRequest) -> Callable[[QuerySet[Finding]], QuerySet[Finding]]:
    """A queryset's rows of the page the request asks for: the default status, the
    filters (validated once), the sort and the cursor, one page and the row that says
    there is a next (as inventory.lists.keyset_list and inventory.pagination read it)."""
    params = request.GET
    filterset = None
    if any(name in params for name in FINDING_LIST.filterset.base_filters):
        bound = FINDING_LIST.filterset(
            params or None, queryset=Finding.objects.none(), user=request.user
        )
        if bound.is_bound and bound.is_valid():
            filterset = bound
    _, field, descending = parse_sort(
        params.get("sort"), FINDING_LIST.sorts, FINDING_LIST.default_sort
    )
    before, after = params.get("before"), params.get("after")
    cursor = (
        decode_cursor(before) if before else decode_cursor(after) if after else None
    )
    if cursor is not None:
        cursor = fit_cursor(Finding._meta.get_field(field), cursor)
    walk_desc = descending != bool(before and cursor)

    def page(queryset: QuerySet[Finding]) -> QuerySet[Finding]:
        queryset = ff.default_status(queryset, params)
        if filterset is not None:
            queryset = filterset.filter_queryset(queryset)
        queryset = queryset.order_by(
            order_value(field, walk_desc, nullable=False),
            "-pk" if walk_desc else "pk",
        )
        if cursor is not None:
            queryset = queryset.filter(after_cursor(field, cursor, walk_desc, False))
        return queryset[: DEFAULT_PER_PAGE + 1]

    return page


def findings_team_member(user: Any) -> bool:
    return permissions.has_role(user, Role.OWNER) and bool(permissions.team_ids(user))


def assignee_input(widget_id: str, value: str = "") -> str:
    """A type-ahead of people (the inventory's lookup, narrowed to whom the user may
    see); it posts "username (#id)", which services_findings.resolve_person reads."""
    widget = LookupInput(
        "user",
        attrs={
            "class": "form-control form-control-sm",
            "id": widget_id,
            "placeholder": "Type a name or username",
            "maxlength": "200",
            "data-testid": widget_id,
        },
        labelled=True,
    )
    return widget.render("assignee", value or None)


# ---------------------------------------------------------------------------
# One finding
# ---------------------------------------------------------------------------
def _detail_context(request: HttpRequest, finding: Finding) -> dict[str, Any]:
    evidence = finding.evidence if isinstance(finding.evidence, dict) else {}
    facts = evidence.get("facts") if isinstance(evidence.get("facts"), dict) else {}
    records = evidence.get("records")
    records = (
        [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []
    )
    # A stable order (PostgreSQL's jsonb keeps no key order): the usual keys, then the rest.
    keys = {str(key) for record in records for key in record}
    columns = [k for k in RECORD_COLUMNS if k in keys] + sorted(
        keys - set(RECORD_COLUMNS)
    )
    return {
        "finding": finding,
        "events": selectors.finding_events(finding=finding),
        "facts": sorted(facts.items()),
        "record_columns": columns,
        "record_rows": [[_cell(r.get(c)) for c in columns] for r in records],
        "allowed": services.allowed_actions(request.user, finding),
        "max_days": services.acceptance_max_days(),
        "today": timezone.localdate(),
        "subject_url": reverse(
            {
                Finding.Subject.DEPLOYMENT: "inventory:deployment_detail",
                Finding.Subject.IDENTITY: "inventory:identity_detail",
                Finding.Subject.MODEL: "inventory:aimodel_detail",
            }[finding.subject_type],
            args=[finding.subject_id],
        ),
        "subject_name": _subject_name(finding),
        "assignee_input": assignee_input(
            "assignee",
            request.POST.get("assignee", "") if request.method == "POST" else "",
        ),
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


def _subject_name(finding: Finding) -> str:
    subject = {
        Finding.Subject.DEPLOYMENT: finding.deployment,
        Finding.Subject.IDENTITY: finding.identity,
        Finding.Subject.MODEL: finding.model,
    }[finding.subject_type]
    return subject.name if subject is not None else f"#{finding.subject_id}"


@require_GET
def finding_detail(request: HttpRequest, pk: int) -> HttpResponse:
    finding = selectors.finding_get(user=request.user, pk=pk)
    return render(
        request, "governance/finding_detail.html", _detail_context(request, finding)
    )


@require_POST
def finding_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """POST one action on one finding. Wrong role: 403; wrong state or bad input: the
    page again with the error, 422."""
    finding = selectors.finding_get(user=request.user, pk=pk)
    user = request.user
    try:
        if action == "acknowledge":
            services.finding_acknowledge(actor=user, finding=finding)
            done = "Acknowledged."
        elif action == "assign":
            if not services.can_assign(user, finding):
                raise PermissionDenied(services.NOT_ALLOWED_ASSIGN)
            person = services.resolve_person(request.POST.get("assignee"))
            services.finding_assign(actor=user, finding=finding, assignee=person)
            done = f"Assigned to {person.get_username()}."
        elif action == "accept":
            services.finding_accept_risk(
                actor=user,
                finding=finding,
                reason=request.POST.get("reason", ""),
                until=request.POST.get("until", ""),
            )
            done = "Risk accepted."
        elif action == "false_positive":
            services.finding_mark_false_positive(
                actor=user, finding=finding, reason=request.POST.get("reason", "")
            )
            done = "Marked a false positive."
        elif action == "reopen":
            services.finding_reopen(
                actor=user, finding=finding, reason=request.POST.get("reason", "")
            )
            done = "Reopened."
        else:
            return _error_page(request, finding, "Unknown action.", status=404)
    except ValidationError as exc:
        finding.refresh_from_db()
        return _error_page(request, finding, " ".join(exc.messages), action=action)
    messages.success(request, done)
    return redirect(finding.get_absolute_url())


def _error_page(
    request: HttpRequest,
    finding: Finding,
    error: str,
    *,
    action: str = "",
    status: int = 422,
) -> HttpResponse:
    context = _detail_context(request, finding)
    context.update(
        {"action_error": error, "error_action": action, "posted": request.POST}
    )
    return render(request, "governance/finding_detail.html", context, status=status)


# ---------------------------------------------------------------------------
# Bulk actions from the queue
# ---------------------------------------------------------------------------
def _chosen_ids(request: HttpRequest) -> list[int]:
    ids = []
    for raw in request.POST.getlist("ids")[: services.BULK_MAX + 1]:
        raw = raw.strip()
        if raw.isascii() and raw.isdigit() and len(raw) < 19:
            ids.append(int(raw))
    return list(dict.fromkeys(ids))


def _back(request: HttpRequest) -> str:
    """The queue as the user last saw it: the page's address when the form was sent (the
    Referer: htmx pushes each filter change into it), else the form's own field; only
    the findings list of this site."""
    home = reverse("governance:finding_list")
    for target in (request.headers.get("Referer", ""), request.POST.get("back", "")):
        if not target or not url_has_allowed_host_and_scheme(
            target,
            allowed_hosts={request.get_host()},
            require_https=request.is_secure(),
        ):
            continue
        parts = urlsplit(target)
        if parts.path == home:
            return home + (f"?{parts.query}" if parts.query else "")
    return home


@require_POST
def finding_bulk(request: HttpRequest) -> HttpResponse:
    """Acknowledge or assign the ticked findings: one POST, one transaction, one audit
    event per finding."""
    action = request.POST.get("action", "")
    ids = _chosen_ids(request)
    chosen: QuerySet[Finding] = findings.finding_scope(
        Finding.objects.filter(pk__in=ids), request.user
    )
    rows = list(chosen.order_by("pk"))
    back = _back(request)
    try:
        if len(ids) > services.BULK_MAX:
            raise ValidationError(services.TOO_MANY.format(max=services.BULK_MAX))
        if action == "acknowledge":
            done, skipped = services.findings_acknowledge(
                actor=request.user, findings=rows, skip_closed=True
            )
            text = f"Acknowledged {_n(len(done))}."
            if skipped:
                text += f" {_n(skipped)} skipped: not open (already acknowledged, accepted or closed)."
        elif action == "assign":
            # The role first: a reader learns nothing from the person's name.
            if not all(services.can_assign(request.user, f) for f in rows):
                raise PermissionDenied(services.NOT_ALLOWED_ASSIGN)
            person = services.resolve_person(request.POST.get("assignee"))
            done = services.findings_assign(
                actor=request.user, findings=rows, assignee=person
            )
            text = f"Assigned {_n(len(done))} to {person.get_username()}."
        else:
            raise ValidationError("Choose acknowledge or assign.")
    except ValidationError as exc:
        return render(
            request,
            "governance/finding_bulk_error.html",
            {"error": " ".join(exc.messages), "back": back},
            status=422,
        )
    missing = len(ids) - len(rows)
    if missing:
        text += f" {_n(missing)} not found or not yours to see."
    messages.success(request, text)
    return redirect(back)


def _n(count: int) -> str:
    return f"{count} finding{'' if count == 1 else 's'}"


# ---------------------------------------------------------------------------
# Notifications
# ---------------------------------------------------------------------------
NOTIFICATION_LIST = ListPage(
    title="Notifications",
    description="Findings of severity high or above assigned to you. Each detection run "
    "or assignment also sends you one email listing yours.",
    filterset=ff.NotificationFilter,
    table=NotificationTable,
    sorts={"created_at": "created_at"},
    default_sort="-created_at",
    export_columns=[
        ("id", "pk"),
        ("created_at", "created_at"),
        ("message", "message"),
        ("url", "url"),
        ("finding_id", "finding_id"),
        ("read_at", "read_at"),
        ("emailed_at", "emailed_at"),
    ],
    export_name="notifications",
    noun="notification",
    header_template="governance/_notification_list_header.html",
    count=True,
)


@require_GET
@vary_on_headers("HX-Request")
def notification_list(request: HttpRequest) -> HttpResponse:
    """The person's own notifications (nobody reads another's)."""
    return keyset_list(
        request,
        page=NOTIFICATION_LIST,
        base=selectors.notification_list(user=request.user),
        context={
            "read_form": NOTIFICATION_READ_FORM,
            "back": request.get_full_path(),
        },
    )


@require_POST
def notification_read(request: HttpRequest) -> HttpResponse:
    """Mark one notification (id) or all of the user's (all=yes) read."""
    mine = Notification.objects.filter(
        recipient_id=request.user.pk, read_at__isnull=True
    )
    if request.POST.get("all") == "yes":
        n = mine.update(read_at=timezone.now())
    else:
        raw = request.POST.get("id", "").strip()
        if not (raw.isascii() and raw.isdigit() and len(raw) < 19):
            return HttpResponse("Choose a notification.", status=400)
        n = mine.filter(pk=int(raw)).update(read_at=timezone.now())
    messages.success(request, f"{n} notification{'' if n == 1 else 's'} marked read.")
    back = request.POST.get("back", "")
    url = reverse("governance:notification_list")
    if back.startswith(url) and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}
    ):
        url = back
    return redirect(url)


@require_GET
def notification_count(request: HttpRequest) -> HttpResponse:
    """The navigation's unread badge, fetched after the page loads (no query on every
    page's own render)."""
    n = selectors.unread_count(user=request.user)
    return render(request, "governance/_notification_count.html", {"unread": n})
