"""Usage: the deployment's last call, written with the usage rows; and reading usage back,
calls and errors per hour and per caller, for the deployment page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import Max, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from inventory import models as m

USAGE_DAYS = 7
USAGE_CALLERS_LIMIT = 50


def record_calls(latest: dict[int, datetime]) -> None:
    """Move each deployment's last call, and its last seen, forward to its latest call.

    The usage writer (the OTLP receiver) calls this with the latest span per deployment,
    in the transaction that adds the usage rows: one UPDATE, rows in id order (two
    requests lock them in the same order), and only later times are written, so a
    replayed old file moves neither back and an unchanged row is not rewritten.
    """
    if not latest:
        return
    opts = m.Deployment._meta
    qn = connection.ops.quote_name
    table, pk = qn(opts.db_table), qn(opts.pk.column)
    seen = qn(opts.get_field("last_seen_at").column)
    call = qn(opts.get_field("last_call_at").column)
    pairs = sorted(latest.items())
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS d SET "  # noqa: S608 - quoted names only
                f"{seen} = GREATEST(d.{seen}, v.ts), "
                f"{call} = GREATEST(COALESCE(d.{call}, v.ts), v.ts) "
                "FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, ts) "
                f"WHERE d.{pk} = v.id AND (d.{seen} < v.ts OR d.{call} IS NULL "
                f"OR d.{call} < v.ts)",
                [[p for p, _ in pairs], [ts for _, ts in pairs]],
            )
        return
    adapt = connection.ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        # SQLite stores timestamps as ISO text in UTC: max() of two compares them in order.
        cursor.executemany(
            f"UPDATE {table} SET {seen} = max({seen}, %s), "  # noqa: S608 - names only
            f"{call} = max(coalesce({call}, %s), %s) "
            f"WHERE {pk} = %s AND ({seen} < %s OR {call} IS NULL OR {call} < %s)",
            [
                (adapt(ts), adapt(ts), adapt(ts), p, adapt(ts), adapt(ts))
                for p, ts in pairs
            ],
        )


@dataclass(frozen=True)
class CallerUsage:
    service: str
    user: str
    calls: int
    errors: int
    mean_ms: float
    max_ms: float
    last_hour: datetime


@dataclass(frozen=True)
class UsageSummary:
    hours: list[datetime]  # every hour of the window, oldest first
    calls: list[int]  # per hour
    errors: list[int]  # per hour
    callers: list[CallerUsage]  # most calls first, at most USAGE_CALLERS_LIMIT
    more_callers: bool

    @property
    def total_calls(self) -> int:
        return sum(self.calls)

    @property
    def total_errors(self) -> int:
        return sum(self.errors)


def usage_summary(
    *, deployment_id: int, now: datetime | None = None, days: int = USAGE_DAYS
) -> UsageSummary:
    """Calls and errors per hour and per caller over the last `days`, in one query.

    Both are aggregated in SQL (per hour, and per caller limited to the top ones) and sent
    back as one UNION ALL, so the page's query count and transfer stay the same whatever
    the number of usage rows.
    """
    now = now or timezone.now()
    last = now.replace(minute=0, second=0, microsecond=0)
    first = last - timedelta(hours=days * 24 - 1)
    rows = m.UsageHour.objects.filter(deployment_id=deployment_id, hour__gte=first)
    per_hour_qs = (
        rows.values("hour")
        .annotate(calls=Sum("calls"), errors=Sum("errors"))
        .order_by()
    )
    callers_qs = (
        rows.values("caller_service", "caller_user")
        .annotate(
            calls=Sum("calls"),
            errors=Sum("errors"),
            duration=Sum("duration_ms_total"),
            max_ms=Max("duration_ms_max"),
            last_hour=Max("hour"),
        )
        .order_by("-calls", "caller_service", "caller_user")[: USAGE_CALLERS_LIMIT + 1]
    )
    per_hour: dict[datetime, tuple[int, int]] = {}
    callers: list[CallerUsage] = []
    for part, hour, service, user, calls, errors, duration, max_ms in _one_query(
        per_hour_qs, callers_qs
    ):
        if part == 0:
            per_hour[hour] = (calls, errors)
        else:
            callers.append(
                CallerUsage(
                    service=service,
                    user=user,
                    calls=calls,
                    errors=errors,
                    mean_ms=duration / calls if calls else 0.0,
                    max_ms=max_ms,
                    last_hour=hour,
                )
            )
    # A derived table's order does not survive UNION ALL: sort the callers here.
    callers.sort(key=lambda c: (-c.calls, c.service, c.user))
    hours = [first + timedelta(hours=i) for i in range(days * 24)]
    return UsageSummary(
        hours=hours,
        calls=[per_hour[h][0] if h in per_hour else 0 for h in hours],
        errors=[per_hour[h][1] if h in per_hour else 0 for h in hours],
        callers=callers[:USAGE_CALLERS_LIMIT],
        more_callers=len(callers) > USAGE_CALLERS_LIMIT,
    )


def _one_query(per_hour_qs, callers_qs) -> list[tuple]:
    """(part, hour, service, user, calls, errors, duration, max ms) rows of both
    aggregates: part 0 per hour, part 1 per caller (its hour is its last hour).

    Django's union() cannot hold a LIMIT on SQLite, so each aggregate is compiled by the
    ORM and wrapped as a derived table, which both databases accept.
    """
    qn = connection.ops.quote_name
    hour_sql, hour_params = per_hour_qs.query.sql_with_params()
    caller_sql, caller_params = callers_qs.query.sql_with_params()
    c = {
        n: qn(n)
        for n in (
            "hour",
            "calls",
            "errors",
            "caller_service",
            "caller_user",
            "duration",
            "max_ms",
            "last_hour",
        )
    }
    sql = (
        f"SELECT 0, h.{c['hour']}, '', '', h.{c['calls']}, h.{c['errors']}, "  # noqa: S608
        f"0.0, 0.0 FROM ({hour_sql}) AS h "
        f"UNION ALL SELECT 1, u.{c['last_hour']}, u.{c['caller_service']}, "
        f"u.{c['caller_user']}, u.{c['calls']}, u.{c['errors']}, u.{c['duration']}, "
        f"u.{c['max_ms']} FROM ({caller_sql}) AS u"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*hour_params, *caller_params])
        found = cursor.fetchall()
    return [
        (
            part,
            _aware(hour),
            service,
            user,
            int(calls or 0),
            int(errors or 0),
            float(duration or 0),
            float(max_ms or 0),
        )
        for part, hour, service, user, calls, errors, duration, max_ms in found
    ]


def _aware(value: datetime | str) -> datetime:
    """A timestamp from a raw cursor: SQLite gives naive UTC text, PostgreSQL a datetime."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value


CALLS_COLOUR, ERRORS_COLOUR = (
    "#0d6efd",
    "#dc3545",
)  # Bootstrap's blue and red, as the dashboard


def usage_context(deployment_id: int) -> dict:
    """Template context for "Usage (last 7 days)": a chart spec for static/js/charts.js
    (the dashboard's renderer, fed through json_script) and the callers table."""
    summary = usage_summary(deployment_id=deployment_id)
    chart = {
        "id": "chart-usage",
        "title": f"Calls per hour, last {USAGE_DAYS} days",
        "kind": "group",
        "x_title": "Hour (UTC)",
        "y_title": "Calls",
        # ISO times: plotly reads them as a date axis and spaces its ticks itself.
        "categories": [hour.strftime("%Y-%m-%d %H:%M") for hour in summary.hours],
        "series": [
            {"name": "Calls", "color": CALLS_COLOUR, "values": summary.calls},
            {"name": "Errors", "color": ERRORS_COLOUR, "values": summary.errors},
        ],
    }
    return {
        "usage": summary,
        "usage_days": USAGE_DAYS,
        "usage_chart": chart if summary.total_calls else None,
        "chart_data": [chart] if summary.total_calls else [],
    }
