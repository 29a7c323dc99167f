"""The dashboard: headline counts that link to the lists behind them, and four charts.

Figures come from `selectors.dashboard_figures` (the counts the writers keep, in
`inventory.summary`: exact as of the request, no cache, scoped to the user); this module
only shapes them. Charts are drawn by static/js/charts.js from a JSON island
(`json_script`), and each has a table of the same numbers for readers without the picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from governance import dashboard_findings, selectors
from inventory import models as m

# Colours follow Bootstrap 5's palette, so charts match the badges elsewhere.
BLUE, RED, GREEN, AMBER, GREY, DARK, TEAL = (
    "#0d6efd",
    "#dc3545",
    "#198754",
    "#fd7e14",
    "#adb5bd",
    "#495057",
    "#20c997",
)
EXPOSURE_COLOURS = {"internal": BLUE, "external": RED}
LIFECYCLE_COLOURS = {
    "development": TEAL,
    "active": GREEN,
    "deprecated": AMBER,
    "retired": GREY,
}
IDENTITY_STATUS_COLOURS = {
    "active": GREEN,
    "disabled": GREY,
    "revoked": DARK,
    "expired": RED,
}


@dataclass(frozen=True)
class Headline:
    key: str
    label: str
    value: int
    url: str
    help: str
    warn: bool = False  # a non-zero value needs attention


def _url(name: str, **params: Any) -> str:
    return reverse(name) + ("?" + urlencode(params) if params else "")


def headlines(figures: dict[str, Any]) -> list[Headline]:
    d, i = figures["deployments"], figures["identities"]
    deployments = "inventory:deployment_list"
    identities = "inventory:identity_list"
    return [
        Headline(
            "models",
            "Models",
            figures["models"],
            _url("inventory:aimodel_list"),
            "Registered or discovered models.",
        ),
        Headline(
            "active_deployments",
            "Active deployments",
            d["active"],
            _url(deployments, status="active"),
            "Deployments in service (active), silent ones included: see Silent deployments.",
        ),
        Headline(
            "production",
            "In production",
            d["production"],
            _url(deployments, environment="production", status="active"),
            "Active deployments in production.",
        ),
        Headline(
            "external",
            "Externally exposed",
            d["external"],
            _url(deployments, exposure="external", status="active"),
            "Active deployments reachable from outside.",
            warn=True,
        ),
        Headline(
            "drift",
            "Version drift",
            d["drift"],
            _url(deployments, risk="drift", status="active"),
            "Running a version other than its baseline (the committee's pin, else the "
            "model's baseline version).",
            warn=True,
        ),
        Headline(
            "ownerless_deployments",
            "Deployments without owner",
            d["ownerless"],
            _url(deployments, risk="ownerless", status="active"),
            "Active deployments with no accountable person.",
            warn=True,
        ),
        Headline(
            "active_identities",
            "Active identities",
            i["active"],
            _url(identities, status="active"),
            "Credentials that can invoke models.",
        ),
        Headline(
            "ownerless_identities",
            "Identities without owner",
            i["ownerless"],
            _url(identities, risk="ownerless", status="active"),
            "Active, with no accountable person (a team alone is not one).",
            warn=True,
        ),
        Headline(
            "stale_identities",
            "Unused (stale) identities",
            i["unused"],
            _url(identities, risk="unused"),
            f"Active but unused for {figures['policy']['unused_after_days']}+ days "
            "(the policy's number).",
            warn=True,
        ),
        Headline(
            "unregistered",
            "Unregistered versions",
            d["unregistered"],
            _url(deployments, risk="unregistered", status="active"),
            "Active deployments running a version the registry does not have.",
            warn=True,
        ),
        Headline(
            "silent",
            "Silent deployments",
            d["silent"],
            _url(deployments, risk="silent"),
            f"Active, but no source has seen them for "
            f"{figures['policy']['silent_after_hours']}+ hours (the policy's number).",
            warn=True,
        ),
        Headline(
            "unrotated_identities",
            "Unrotated identities",
            i["unrotated"],
            _url(identities, risk="unrotated"),
            f"Active and not rotated for {figures['policy']['unrotated_after_days']}+ "
            "days (the policy's number).",
            warn=True,
        ),
        Headline(
            "expired_identities",
            "Expired but active",
            i["expired"],
            _url(identities, risk="expired"),
            "Identities past their expiry that are still active.",
            warn=True,
        ),
        Headline(
            "retired_model_identities",
            "Bound to a retired model",
            i["retired_model"],
            _url(identities, risk="retired_model"),
            "Active identities that belong or are bound to a retired model.",
            warn=True,
        ),
        Headline(
            "sources_attention",
            "Sources needing attention",
            figures["sources_attention"],
            _url("sources:source_list", health="attention"),
            "Enabled sources whose last run failed or skipped records.",
            warn=True,
        ),
    ]


def charts(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Chart specs: categories, and series of values (with a list URL per bar, if any).

    The same dicts feed plotly (through json_script) and the summary tables in the template.
    """
    deployments = reverse("inventory:deployment_list")
    models_url = reverse("inventory:aimodel_list")
    environments = m.Deployment.Environment
    exposures = m.Deployment.Exposure

    env_exposure = {
        "id": "chart-env-exposure",
        "title": "Active deployments by environment and exposure",
        "caption": "Grouped bars: one group per environment, one bar per exposure.",
        "kind": "group",
        "x_title": "Environment",
        "y_title": "Deployments",
        "categories": [label for _, label in environments.choices],
        "series": [
            {
                "name": exposure_label,
                "color": EXPOSURE_COLOURS[exposure],
                "values": [
                    figures["env_exposure"].get((env, exposure), 0)
                    for env, _ in environments.choices
                ],
                "links": [
                    f"{deployments}?"
                    + urlencode(
                        {"environment": env, "exposure": exposure, "status": "active"}
                    )
                    for env, _ in environments.choices
                ],
            }
            for exposure, exposure_label in exposures.choices
        ],
    }

    lifecycle_choices = m.AIModel.Lifecycle.choices
    lifecycle = {
        "id": "chart-lifecycle",
        "title": "Models by lifecycle",
        "caption": "One bar per lifecycle status.",
        "kind": "bar",
        "x_title": "Lifecycle",
        "y_title": "Models",
        "categories": [label for _, label in lifecycle_choices],
        "series": [
            {
                "name": "Models",
                "colors": [LIFECYCLE_COLOURS[value] for value, _ in lifecycle_choices],
                "values": [
                    figures["lifecycle"].get(value, 0) for value, _ in lifecycle_choices
                ],
                "links": [
                    f"{models_url}?{urlencode({'lifecycle': value})}"
                    for value, _ in lifecycle_choices
                ],
            }
        ],
    }

    statuses = m.NonHumanIdentity.Status.choices
    identity_age = {
        "id": "chart-identity-age",
        "title": "Identity age",
        "caption": "Time since each identity was issued, stacked by status.",
        "kind": "stack",
        "x_title": "Issued",
        "y_title": "Identities",
        "categories": [label for _, label, _ in selectors.AGE_BUCKETS],
        "series": [
            {
                "name": status_label,
                "color": IDENTITY_STATUS_COLOURS[status],
                "values": [
                    figures["ages"].get((key, status), 0)
                    for key, _, _ in selectors.AGE_BUCKETS
                ],
            }
            for status, status_label in statuses
        ],
    }

    teams = figures["by_team"]
    by_team = {
        "id": "chart-by-team",
        "title": f"Active deployments by team (top {selectors.TOP_TEAMS})",
        "caption": "Horizontal bars, the team with most deployments first.",
        "kind": "hbar",
        "x_title": "Deployments",
        "y_title": "",
        "categories": [row["team__name"] or "No team" for row in teams],
        "series": [
            {
                "name": "Active deployments",
                "color": BLUE,
                "values": [row["n"] for row in teams],
                "links": [
                    f"{deployments}?"
                    + urlencode({"team": row["team_id"], "status": "active"})
                    if row["team_id"]
                    else ""
                    for row in teams
                ],
            }
        ],
    }
    return [env_exposure, lifecycle, identity_age, by_team]


def _table_rows(chart: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for the chart's summary table: one per category, a cell per series."""
    return [
        {
            "category": category,
            "cells": [
                {
                    "value": series["values"][index],
                    "link": (series.get("links") or [""] * len(chart["categories"]))[
                        index
                    ],
                }
                for series in chart["series"]
            ],
            "total": sum(series["values"][index] for series in chart["series"]),
        }
        for index, category in enumerate(chart["categories"])
    ]


def proof_headline(share: dict[str, Any]) -> dict[str, Any]:
    """The proof card's headline: n of total production deployments (and the share) whose
    three answers are complete (governance.proof.complete), linking to them all."""
    return {
        "key": "proof_complete",
        "label": "Production deployments with a complete proof",
        **share,
        "url": _url(
            "inventory:deployment_list", environment="production", status="active"
        ),
        "help": "Running version known, every identity and recent caller known, and a "
        "withdrawal plan that is not 'not ready' (see each deployment's proof card).",
    }


@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    counted_at = timezone.now()
    figures = selectors.dashboard_figures(user=request.user, now=counted_at)
    found = dashboard_findings.context(request.user, Headline)  # findings: two queries
    chart_specs = charts(figures) + found["charts"]
    context = {
        "counted_at": counted_at,
        "headlines": headlines(figures) + found["headlines"],
        "finding_queue": found["queue"],
        "charts": [{**chart, "rows": _table_rows(chart)} for chart in chart_specs],
        "chart_data": chart_specs,
    }
    return render(request, "governance/dashboard.html", context)


@require_GET
def dashboard_proof_card(request: HttpRequest) -> HttpResponse:
    """The proof headline, loaded by the dashboard after the page (hx-trigger="load"), so
    its query stays off the page's own count."""
    share = selectors.proof_completeness(user=request.user, now=timezone.now())
    return render(
        request,
        "governance/_proof_headline.html",
        {"proof_headline": proof_headline(share)},
    )
