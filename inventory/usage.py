"""Reading usage back: calls and errors per hour and per caller, for the deployment page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Max, OuterRef, Subquery, Sum
from django.utils import timezone

from inventory import models as m

USAGE_DAYS = 7
USAGE_CALLERS_LIMIT = 50


def usage_latest_hour() -> Subquery:
    """A deployment's last call: the start of its latest hour of usage, as a correlated
    subquery (one index probe per row on the unique bucket index, which starts with
    deployment_id and hour), to annotate a page of deployments without a query per row."""
    return Subquery(
        m.UsageHour.objects.filter(deployment=OuterRef("pk"))
        .order_by("-hour")
        .values("hour")[:1]
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
    """Calls and errors per hour and per caller over the last `days`, in two queries.

    Both are aggregated in SQL, so the page's query count and transfer stay the same
    whatever the number of usage rows.
    """
    now = now or timezone.now()
    last = now.replace(minute=0, second=0, microsecond=0)
    first = last - timedelta(hours=days * 24 - 1)
    rows = m.UsageHour.objects.filter(deployment_id=deployment_id, hour__gte=first)
    per_hour = {
        row["hour"]: row
        for row in rows.values("hour")
        .annotate(calls=Sum("calls"), errors=Sum("errors"))
        .order_by("hour")
    }
    hours = [first + timedelta(hours=i) for i in range(days * 24)]
    callers = list(
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
    return UsageSummary(
        hours=hours,
        calls=[per_hour[h]["calls"] if h in per_hour else 0 for h in hours],
        errors=[per_hour[h]["errors"] if h in per_hour else 0 for h in hours],
        callers=[
            CallerUsage(
                service=row["caller_service"],
                user=row["caller_user"],
                calls=row["calls"],
                errors=row["errors"],
                mean_ms=row["duration"] / row["calls"] if row["calls"] else 0.0,
                max_ms=row["max_ms"],
                last_hour=row["last_hour"],
            )
            for row in callers[:USAGE_CALLERS_LIMIT]
        ],
        more_callers=len(callers) > USAGE_CALLERS_LIMIT,
    )


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
