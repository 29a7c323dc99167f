"""The deployment page's "Usage (last 7 days)": chart data, callers table, constant queries."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inventory import models as m
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db


def add_usage(deployment: m.Deployment, n: int) -> None:
    """n usage rows spread over callers and the last hours, plus one too old to show."""
    this_hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    m.UsageHour.objects.bulk_create(
        [
            m.UsageHour(
                deployment=deployment,
                hour=this_hour - timedelta(hours=i % 24),
                caller_service=f"svc-{i % 7}",
                caller_user=f"user-{i}",
                operation="chat",
                calls=10,
                errors=i % 2,
                duration_ms_total=1500.0,
                duration_ms_max=400.0 + i,
            )
            for i in range(n)
        ]
        + [
            m.UsageHour(
                deployment=deployment,
                hour=this_hour - timedelta(days=8),
                caller_service="ancient",
                calls=1000,
            )
        ]
    )


def get_page(client, deployment):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(deployment.get_absolute_url())
    assert response.status_code == 200
    return response, len(queries)


def test_usage_chart_and_callers_are_shown(client, admin_user):
    client.force_login(admin_user)
    deployment = DeploymentFactory()
    add_usage(deployment, 3)
    response, _ = get_page(client, deployment)
    html = response.content.decode()
    assert "Usage (last 7 days)" in html
    assert 'id="chart-usage"' in html
    island = re.search(
        r'<script id="chart-data" type="application/json">(.*?)</script>', html, re.S
    )
    (chart,) = json.loads(island.group(1))
    assert chart["id"] == "chart-usage" and len(chart["categories"]) == 7 * 24
    calls, errors = chart["series"]
    assert (calls["name"], sum(calls["values"])) == ("Calls", 30)
    assert (errors["name"], sum(errors["values"])) == ("Errors", 1)
    assert calls["values"][-1] == 10  # this hour is the last category
    assert "js/charts.js" in html and "plotly.min.js" in html
    assert "<script>" not in html  # no inline script under the CSP
    table = response.context["usage"]
    assert [c.service for c in table.callers] == ["svc-0", "svc-1", "svc-2"]
    assert table.callers[0].mean_ms == pytest.approx(150.0)
    assert "ancient" not in html
    assert 'data-testid="usage-callers"' in html
    assert "30 calls, 1 error" in html


def test_without_usage_the_page_says_so_and_loads_no_chart(client, admin_user):
    client.force_login(admin_user)
    deployment = DeploymentFactory()
    response, _ = get_page(client, deployment)
    html = response.content.decode()
    assert 'data-testid="usage-none"' in html
    assert "plotly.min.js" not in html and 'id="chart-data"' not in html


def test_query_count_does_not_grow_with_usage_rows(
    client, admin_user, django_assert_max_num_queries
):
    client.force_login(admin_user)
    small, large = DeploymentFactory(), DeploymentFactory()
    add_usage(small, 3)
    add_usage(large, 30)
    client.get(small.get_absolute_url())  # the first request stamps the session
    _, small_count = get_page(client, small)
    _, large_count = get_page(client, large)
    assert small_count == large_count
    with django_assert_max_num_queries(small_count):
        response = client.get(large.get_absolute_url())
    assert (
        len(response.context["usage"].callers) == 30
        or response.context["usage"].more_callers
    )
