"""The query targets of every list and detail page (issue 7, item 9): at most 6 queries on
a list (its capped count of matching rows included, issue 9 item 5) and 8 on a detail
page, the deployment's too, the same with 3 rows as with 30, as a page and as the HTMX
fragment, for an owner (scoped) and an administrator (everything)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from inventory import models as m
from inventory import services
from sources import models as sm
from sources.sync import services as source_services
from tests.inventory.test_list_views import build, detail_urls

MAX_LIST_QUERIES = 6
# The deployment detail is at it: session, user, roles and teams, the deployment,
# dependencies up and down, identities, and its usage by hour and by caller (one query).
MAX_DETAIL_QUERIES = 8
LISTS = [
    *(
        reverse(f"inventory:{key}_list")
        for key in [
            "team",
            "aimodel",
            "modelversion",
            "system",
            "deployment",
            "identity",
        ]
    ),
    reverse("inventory:deployment_list") + "?sort=-last_seen_at&environment=production",
    reverse("inventory:deployment_list") + "?sort=owner",
    reverse("inventory:deployment_list") + "?sort=-team",
    reverse("inventory:deployment_list") + "?sort=-last_call_at&risk=drift",
    reverse("inventory:identity_list") + "?risk=stale",
    reverse("sources:source_list"),
    reverse("sources:run_list"),
    reverse("sources:event_list"),
    reverse("governance:audit_list"),
]


def grow(n: int, team: m.Team, admin) -> None:
    """n more of every row every list and detail page shows."""
    build(n, team)
    source = source_services.source_create(
        actor=admin, name=f"CI {sm.DataSource.objects.count()}", kind="cicd", team=team
    )
    deployment = m.Deployment.objects.filter(team=team).first()
    for _ in range(n):
        sm.SyncRun.objects.create(
            source=source,
            trigger="manual",
            requested_by=admin,
            requested_at=timezone.now(),
            status="failed",
            error="boom",
        )
        sm.DeploymentEvent.objects.create(
            received_at=timezone.now(),
            model_name="fraud-scorer",
            version="1",
            environment="production",
            endpoint="https://fraud.internal/v1/score",
            deployment=deployment,
        )
        services.object_update(actor=admin, instance=team)


def count(client, url: str, htmx: bool = False) -> int:
    headers = {"HX-Request": "true"} if htmx else {}
    client.get(url, headers=headers)  # session stamps and caches settle first
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, headers=headers)
    assert response.status_code == 200, url
    assert ("<html" in response.content.decode()) is not htmx
    return len(ctx)


def detail_pages(team: m.Team) -> list[str]:
    run = sm.SyncRun.objects.order_by("pk").first()
    return [
        *detail_urls(team).values(),
        run.source.get_absolute_url(),
        run.get_absolute_url(),
        reverse(
            "governance:audit_detail",
            args=[AuditEvent.objects.order_by("seq").first().seq],
        ),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "admin_user"])
def test_lists_and_details_meet_the_query_targets_at_3_and_30_rows(
    role, request, client, team_a, admin_user
):
    user = request.getfixturevalue(role)
    client.force_login(user)
    grow(3, team_a, admin_user)
    few = {url: count(client, url) for url in LISTS}
    few_htmx = {url: count(client, url, htmx=True) for url in LISTS}
    # The same objects before and after: their team, source and trail grow around them.
    details = detail_pages(team_a)
    few_detail = {url: count(client, url) for url in details}
    grow(27, team_a, admin_user)
    many = {url: count(client, url) for url in LISTS}
    many_htmx = {url: count(client, url, htmx=True) for url in LISTS}
    many_detail = {url: count(client, url) for url in details}

    assert many == few
    assert many_htmx == few_htmx
    assert many_detail == few_detail
    assert {u: c for u, c in many.items() if c > MAX_LIST_QUERIES} == {}
    assert {u: c for u, c in many_htmx.items() if c > MAX_LIST_QUERIES} == {}
    assert {u: c for u, c in many_detail.items() if c > MAX_DETAIL_QUERIES} == {}
