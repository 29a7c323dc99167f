"""The dashboard's findings: open findings by severity and by kind (charts with their
tables), the "Shadow deployments" headline, and the owner's own queue. Two queries: one
grouped count, and the person's top five."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.urls import reverse

from governance import selectors_findings as selectors
from governance.models import Finding
from inventory import permissions
from inventory.roles import Role

SEVERITY_COLOURS = {
    Finding.Severity.CRITICAL: "#dc3545",
    Finding.Severity.HIGH: "#fd7e14",
    Finding.Severity.MEDIUM: "#0dcaf0",
    Finding.Severity.LOW: "#adb5bd",
}
SEVERITY_PARAM = {
    Finding.Severity.CRITICAL: "critical",
    Finding.Severity.HIGH: "high",
    Finding.Severity.MEDIUM: "medium",
    Finding.Severity.LOW: "low",
}


def _list(**params: Any) -> str:
    url = reverse("governance:finding_list")
    return url + ("?" + urlencode(params) if params else "")


def headlines(summary: dict[str, Any], headline: type) -> list[Any]:
    return [
        headline(
            "open_findings",
            "Open findings",
            summary["total"],
            _list(),
            "Unresolved findings: open, acknowledged, accepted or false positive.",
            warn=True,
        ),
        headline(
            "shadow_deployments",
            "Shadow deployments",
            summary["shadow"],
            _list(kind=Finding.Kind.SHADOW_DEPLOYMENT),
            "Retired or withdrawn, but still answering calls or reported by a runtime.",
            warn=True,
        ),
    ]


def charts(summary: dict[str, Any]) -> list[dict[str, Any]]:
    severities = sorted(Finding.Severity, reverse=True)
    by_severity = {
        "id": "chart-findings-severity",
        "title": "Open findings by severity",
        "caption": "Unresolved findings, the most severe first.",
        "kind": "bar",
        "x_title": "Severity",
        "y_title": "Findings",
        "categories": [s.label for s in severities],
        "series": [
            {
                "name": "Findings",
                "colors": [SEVERITY_COLOURS[s] for s in severities],
                "values": [summary["by_severity"].get(s.value, 0) for s in severities],
                "links": [_list(severity=SEVERITY_PARAM[s]) for s in severities],
            }
        ],
    }
    kinds = sorted(summary["by_kind"].items(), key=lambda kv: (-kv[1], kv[0]))
    labels = dict(Finding.Kind.choices)
    by_kind = {
        "id": "chart-findings-kind",
        "title": "Open findings by kind",
        "caption": "Horizontal bars, the commonest kind first.",
        "kind": "hbar",
        "x_title": "Findings",
        "y_title": "",
        "categories": [str(labels.get(k, k)) for k, _ in kinds],
        "series": [
            {
                "name": "Findings",
                "color": "#6f42c1",
                "values": [n for _, n in kinds],
                "links": [_list(kind=k) for k, _ in kinds],
            }
        ],
    }
    return [by_severity, by_kind]


def context(user: Any, headline: type) -> dict[str, Any]:
    """What the dashboard adds for findings (its view merges it into its own)."""
    summary = selectors.findings_summary_cached(user=user)
    owner = permissions.has_role(user, Role.OWNER)
    queue, more = selectors.my_queue(user=user) if owner else ([], False)
    return {
        "headlines": headlines(summary, headline),
        "charts": charts(summary),
        "queue": {
            "show": owner,
            "rows": queue,
            "more": more,
            "url": _list(assignee="mine"),
        },
    }
