"""Reads for the findings pages, the dashboard and the API: always through
`findings.finding_scope`, each a fixed number of queries whatever the data's size."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone

from governance.findings import finding_scope
from governance.models import Finding, FindingEvent, Notification
from inventory import models as m
from inventory import permissions
from inventory.roles import Role

CHART_DAYS = 30
# The chart counts every opening and resolution of the last 30 days: hundreds of thousands
# of events at scale, too many to group on each page view. The page keeps each scope's
# chart this long; a person's action on a finding starts a new generation at once.
CHART_CACHE_SECONDS = 60
CHART_GENERATION_KEY = "findings-chart:generation"
QUEUE_TOP = 5
# Joined for the list's cells (names only: inventory.lists.lean defers the rest).
LIST_RELATED = ("team", "assignee", "owner", "deployment", "identity", "model")


def finding_list(*, user: Any) -> QuerySet[Finding]:
    """Every finding the user may read, with the joins the list, CSV and API read."""
    return finding_scope(Finding.objects.all(), user).select_related(*LIST_RELATED)


# What a page of the queue reads (the table's cells and the sort keys); its CSV reads every
# column (views_findings). The evidence's JSON and every column of the joined rows cost a
# third of the page's CPU to load.
PAGE_FIELDS = (
    "id",
    "kind",
    "subject_type",
    "subject_id",
    "title",
    "severity",
    "tier",
    "priority",
    "status",
    "queue",
    "source",
    "opened_at",
    "last_seen_at",
    "team_id",
    "owner_id",
    "assignee_id",
    "deployment_id",
    "identity_id",
    "model_id",
)
# The names a page's cells show, each read by its id in a scalar subquery rather than a
# join: with six joins PostgreSQL spent 4-6 ms planning every page view (executing it took
# 0.4 ms); with none, 0.15 ms. Relation -> (annotation, model, column).
PAGE_NAMES = {
    "deployment": ("page_deployment_name", m.Deployment, "name"),
    "identity": ("page_identity_name", m.NonHumanIdentity, "name"),
    "model": ("page_model_name", m.AIModel, "name"),
    "team": ("page_team_name", m.Team, "name"),
    "assignee": (
        "page_assignee_username",
        get_user_model(),
        get_user_model().USERNAME_FIELD,
    ),
}


def finding_page(*, user: Any) -> QuerySet[Finding]:
    """`finding_list` for one page of the queue: the columns its cells read, and the
    names of the subject, team and assignee as annotations (`PAGE_NAMES`)."""
    return (
        finding_scope(Finding.objects.all(), user)
        .only(*PAGE_FIELDS)
        .annotate(
            **{
                alias: Subquery(
                    model.objects.filter(pk=OuterRef(f"{relation}_id"))
                    .order_by()
                    .values(column)[:1]
                )
                for relation, (alias, model, column) in PAGE_NAMES.items()
            }
        )
    )


def narrow_to_pages(
    queryset: QuerySet[Finding],
    *,
    user: Any,
    page: Callable[[], Callable[[QuerySet[Finding]], QuerySet[Finding]]],
) -> QuerySet[Finding]:
    """`queryset` (an owner's findings, filtered) narrowed to the ids of one page in each
    part of their scope (each of their teams, their own, assigned to them): each part
    one indexed, ordered and limited read (`page()`: the list's status, filters, sort,
    cursor and size, to apply to that part alone), united. The page of the whole is among
    them, so the list reads the same page.

    PostgreSQL answers `team IN (...) OR owner OR assignee ORDER BY priority LIMIT 51`
    either by walking the whole queue's index until a page of theirs turns up or by
    sorting every one of their findings: both grow with the table (90 ms and 27 ms at
    360,000 findings, an owner of 2 teams of 40). Each part reads its page from a
    (team | owner | assignee, priority, id) index."""
    if permissions.reads_all(user) or not permissions.has_role(user, Role.OWNER):
        return queryset
    parts = [Q(team_id=team) for team in sorted(permissions.team_ids(user))]
    parts += [Q(owner_id=user.pk), Q(assignee_id=user.pk)]
    one_page = page()
    chunks, params = [], []
    for i, part in enumerate(parts):
        # Each part is within the scope by its own condition: no OR for the planner.
        ids = one_page(Finding.objects.filter(part)).values("pk")
        sql, part_params = ids.query.get_compiler(using=ids.db).as_sql()
        # Wrapped: SQLite refuses ORDER BY and LIMIT in a compound's own members.
        chunks.append(f"SELECT * FROM ({sql}) AS part_{i}")  # noqa: S608 - compiled SQL
        params.extend(part_params)
    union = RawSQL(" UNION ALL ".join(chunks), params)  # noqa: S611 - Django's SQL only
    return queryset.filter(pk__in=union)


def finding_events(*, finding: Finding, limit: int = 200) -> list[FindingEvent]:
    return list(finding.events.order_by("-at", "-id")[:limit])


def chart_changed() -> None:
    """Findings changed (by a person, or by a detection run in this process): the next
    page view recounts its chart and the dashboard's counts."""
    try:
        cache.incr(CHART_GENERATION_KEY)
    except ValueError:
        cache.set(CHART_GENERATION_KEY, 1, None)


def _cache_scope(user: Any) -> str:
    """Whose findings a cached figure counts: everyone who reads all shares one; an
    owner's is theirs (their teams and themselves)."""
    if permissions.reads_all(user):
        return "all"
    teams = ",".join(str(t) for t in sorted(permissions.team_ids(user)))
    return f"user{user.pk}:teams{teams}"


def _cached(name: str, user: Any, compute: Callable[[], Any]) -> Any:
    """`compute()`, kept `CHART_CACHE_SECONDS` per scope (`_cache_scope`) under this
    generation (`chart_changed`)."""
    generation = cache.get(CHART_GENERATION_KEY, 0)
    key = f"{name}:{generation}:{_cache_scope(user)}"
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, CHART_CACHE_SECONDS)
    return value


def findings_chart_cached(*, user: Any) -> dict[str, Any]:
    """`findings_chart`, kept a minute per scope and per day (`_cached`)."""
    return _cached(
        f"findings-chart:{timezone.localdate()}",
        user,
        lambda: findings_chart(user=user),
    )


def findings_summary_cached(*, user: Any) -> dict[str, Any]:
    """`findings_summary`, kept like the chart (`_cached`: a new generation when a
    person acts or a detection run changes findings in this process): counting 364,000
    unresolved findings by kind and severity took the dashboard 110 to 160 ms of SQL at
    the bench's scale."""
    return _cached("findings-summary", user, lambda: findings_summary(user=user))


def findings_chart(*, user: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    """Findings opened (or reopened) and resolved per day over the last `CHART_DAYS`
    days, by kind, from the findings' events: one grouped query.

    Returns {"days": [date, ...], "opened": {kind: [n per day]}, "resolved": {...}}.
    """
    now = now or timezone.now()
    today = timezone.localdate(now)
    first = today - dt.timedelta(days=CHART_DAYS - 1)
    start = dt.datetime.combine(
        first, dt.time.min, tzinfo=timezone.get_current_timezone()
    )
    events = FindingEvent.objects.filter(
        at__gte=start,
        action__in=[
            FindingEvent.Action.OPENED,
            FindingEvent.Action.REOPENED,
            FindingEvent.Action.RESOLVED,
        ],
    )
    if not permissions.reads_all(user):
        # Read-all roles need no join: the (at, kind) index answers their chart alone.
        events = events.filter(
            finding__in=finding_scope(Finding.objects.all(), user).values("pk")
        )
    rows = (
        events.annotate(day=TruncDate("at"))
        .values("day", "kind", "action")
        .annotate(n=Count("pk"))
        .order_by()
    )
    days = [first + dt.timedelta(days=i) for i in range(CHART_DAYS)]
    index = {day: i for i, day in enumerate(days)}
    opened: dict[str, list[int]] = defaultdict(lambda: [0] * CHART_DAYS)
    resolved: dict[str, list[int]] = defaultdict(lambda: [0] * CHART_DAYS)
    for row in rows:
        day = row["day"]
        if isinstance(day, str):  # SQLite without a converter
            day = dt.date.fromisoformat(day)
        i = index.get(day)
        if i is None:
            continue
        target = resolved if row["action"] == FindingEvent.Action.RESOLVED else opened
        target[row["kind"]][i] += row["n"]
    return {"days": days, "opened": dict(opened), "resolved": dict(resolved)}


def findings_summary(*, user: Any) -> dict[str, Any]:
    """Unresolved findings by severity and by kind, and the shadow deployments among
    them: one grouped query."""
    rows = (
        finding_scope(Finding.objects.all(), user)
        .filter(~Q(status=Finding.Status.RESOLVED))
        .values("kind", "severity")
        .annotate(n=Count("pk"))
        .order_by()
    )
    by_severity: dict[int, int] = defaultdict(int)
    by_kind: dict[str, int] = defaultdict(int)
    for row in rows:
        by_severity[row["severity"]] += row["n"]
        by_kind[row["kind"]] += row["n"]
    return {
        "by_severity": dict(by_severity),
        "by_kind": dict(by_kind),
        "total": sum(by_kind.values()),
        "shadow": by_kind.get(Finding.Kind.SHADOW_DEPLOYMENT, 0),
    }


def my_queue(*, user: Any, limit: int = QUEUE_TOP) -> tuple[list[Finding], int]:
    """The user's own open findings (assigned to them, open or acknowledged), most urgent
    first, and whether there are more than `limit`: one query."""
    mine = Finding.objects.filter(
        assignee_id=user.pk,
        status__in=[Finding.Status.OPEN, Finding.Status.ACKNOWLEDGED],
    )
    rows = list(
        mine.select_related("deployment", "identity", "model")
        .only(
            "pk",
            "title",
            "kind",
            "severity",
            "tier",
            "status",
            "opened_at",
            "subject_type",
            "deployment__name",
            "identity__name",
            "model__name",
        )
        .order_by("priority", "pk")[: limit + 1]
    )
    more = len(rows) > limit
    return rows[:limit], more


# ---------------------------------------------------------------------------
# Notifications
# ---------------------------------------------------------------------------
def notification_list(*, user: Any) -> QuerySet[Notification]:
    return Notification.objects.filter(recipient_id=user.pk).order_by(
        "-created_at", "-id"
    )


def unread_count(*, user: Any) -> int:
    if getattr(user, "pk", None) is None:
        return 0
    return Notification.objects.filter(
        recipient_id=user.pk, read_at__isnull=True
    ).count()


def finding_get(*, user: Any, pk: int) -> Finding:
    """One finding the user may read (404 otherwise), with what its page shows joined."""
    try:
        return (
            finding_list(user=user)
            .select_related("acknowledged_by", "decided_by")
            .get(pk=pk)
        )
    except Finding.DoesNotExist as exc:
        raise Http404 from exc
