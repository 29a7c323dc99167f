"""Dashboard figures: correct, scoped to the user, equal to the lists they link to, and
computed with a number of queries that does not grow with the data."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inventory import models as m
from inventory import summary
from sources import models as sm
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
    UserFactory,
)

URL = reverse("dashboard")
D, NHI = m.Deployment, m.NonHumanIdentity


@pytest.fixture
def estate(team_a, team_b, owner):
    now = timezone.now()
    ours = AIModelFactory(team=team_a, lifecycle=m.AIModel.Lifecycle.ACTIVE)
    AIModelFactory(team=team_a, lifecycle=m.AIModel.Lifecycle.DEPRECATED)
    theirs = AIModelFactory(team=team_b, lifecycle=m.AIModel.Lifecycle.ACTIVE)
    approved, running = ModelVersionFactory(model=ours), ModelVersionFactory(model=ours)
    # Team A: production/external with drift and an owner; staging/internal, ownerless;
    # a withdrawn one that no figure counts.
    DeploymentFactory(
        model=ours,
        owner=owner,
        exposure=D.Exposure.EXTERNAL,
        approved_version=approved,
        observed_version=running,
    )
    DeploymentFactory(model=ours, environment=D.Environment.STAGING)
    DeploymentFactory(
        model=ours, exposure=D.Exposure.EXTERNAL, status=D.Status.WITHDRAWN
    )
    # Team B: production/internal, ownerless, approved version running (no drift).
    theirs_version = ModelVersionFactory(model=theirs)
    DeploymentFactory(
        model=theirs, approved_version=theirs_version, observed_version=theirs_version
    )
    # Identities: A fresh and used, with an owner; A old and never used (stale); A revoked
    # and old; nobody's (no team, no owner), unknown age; B stale by last use. Only the
    # first has an accountable person: a team alone is not one.
    IdentityFactory(
        team=team_a, owner=owner, issued_at=now - timedelta(days=10), last_used_at=now
    )
    IdentityFactory(team=team_a, issued_at=now - timedelta(days=200))
    IdentityFactory(
        team=team_a, status=NHI.Status.REVOKED, issued_at=now - timedelta(days=400)
    )
    IdentityFactory(team=None, issued_at=None)
    IdentityFactory(
        team=team_b,
        issued_at=now - timedelta(days=60),
        last_used_at=now - timedelta(days=100),
    )


def headline_values(response) -> dict[str, int]:
    return {h.key: h.value for h in response.context["headlines"]}


def chart(response, chart_id: str) -> dict:
    data = json.loads(
        re.search(
            r'<script id="chart-data" type="application/json">(.*?)</script>',
            response.content.decode(),
            re.S,
        ).group(1)
    )
    return next(c for c in data if c["id"] == chart_id)


@pytest.mark.django_db
def test_admin_sees_every_teams_figures(client, admin_user, estate):
    client.force_login(admin_user)
    response = client.get(URL)
    assert response.status_code == 200
    assert headline_values(response) == {
        "models": 3,
        "active_deployments": 3,
        "production": 2,
        "external": 1,
        "drift": 1,
        "ownerless_deployments": 2,
        "active_identities": 4,
        "ownerless_identities": 3,
        "stale_identities": 2,
        "unregistered": 0,
        "silent": 0,
        "unrotated_identities": 1,
        "expired_identities": 0,
        "retired_model_identities": 0,
        "sources_attention": 0,
        "open_findings": 0,
        "shadow_deployments": 0,
    }
    env = chart(response, "chart-env-exposure")
    assert env["categories"] == ["Production", "Staging", "Development"]
    assert {s["name"]: s["values"] for s in env["series"]} == {
        "Internal": [1, 1, 0],
        "External": [1, 0, 0],
    }
    lifecycle = chart(response, "chart-lifecycle")
    assert lifecycle["series"][0]["values"] == [0, 2, 1, 0]
    ages = chart(response, "chart-identity-age")
    assert ages["categories"][0] == "< 30 days" and ages["categories"][-1] == "Unknown"
    by_status = {s["name"]: s["values"] for s in ages["series"]}
    assert by_status["Active"] == [1, 1, 0, 1, 0, 1]
    assert by_status["Revoked"] == [0, 0, 0, 0, 1, 0]
    teams = chart(response, "chart-by-team")
    assert teams["categories"] == ["Credit risk", "Fraud"]
    assert teams["series"][0]["values"] == [2, 1]


@pytest.mark.django_db
def test_owner_sees_only_their_teams_figures(client, owner, estate):
    client.force_login(owner)
    response = client.get(URL)
    assert headline_values(response) == {
        "models": 2,
        "active_deployments": 2,
        "production": 1,
        "external": 1,
        "drift": 1,
        "ownerless_deployments": 1,
        "active_identities": 2,
        "ownerless_identities": 1,
        "stale_identities": 1,
        "unregistered": 0,
        "silent": 0,
        "unrotated_identities": 1,
        "expired_identities": 0,
        "retired_model_identities": 0,
        "sources_attention": 0,
        "open_findings": 0,
        "shadow_deployments": 0,
    }
    assert chart(response, "chart-by-team")["categories"] == ["Credit risk"]
    assert "Fraud" not in response.content.decode()


@pytest.mark.django_db
def test_user_without_a_role_sees_zeros(client, estate):
    nobody = UserFactory(username="nobody")
    nobody.save()  # UserFactory saves the password only when it adds a role
    client.force_login(nobody)
    response = client.get(URL)
    assert response.status_code == 200
    assert set(headline_values(response).values()) == {0}


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["admin_user", "owner"])
def test_each_headline_equals_the_list_it_links_to(role, request, client, estate):
    client.force_login(request.getfixturevalue(role))
    for headline in client.get(URL).context["headlines"]:
        listed = client.get(headline.url)
        assert listed.status_code == 200, headline.url
        assert not listed.context["filter"].errors, headline.url
        assert len(listed.context["page"].rows) == headline.value, headline.key


@pytest.mark.django_db
def test_page_loads_plotly_and_charts_under_the_csp(client, admin_user, estate):
    client.force_login(admin_user)
    response = client.get(URL)
    body = response.content.decode()
    nonce = response.wsgi_request.csp_nonce
    assert f'src="/static/vendor/plotly/plotly.min.js" nonce="{nonce}"' in body
    assert f'src="/static/js/charts.js" nonce="{nonce}"' in body
    assert 'id="plotly.js-style-global" class="no-inline-styles"' in body
    assert body.count('data-testid="chart"') == 6  # 4, and the findings' 2
    assert body.count("<details") == 6  # a table of the numbers for every chart
    assert "style=" not in body
    assert "<script>" not in body  # nothing inline without a nonce
    assert "style-src 'self'" in response["Content-Security-Policy"]


def _build(n: int, team, person) -> None:
    for _ in range(n):
        model = AIModelFactory(team=team)
        approved, running = (
            ModelVersionFactory(model=model),
            ModelVersionFactory(model=model),
        )
        deployment = DeploymentFactory(
            model=model,
            owner=person,
            approved_version=approved,
            observed_version=running,
        )
        IdentityFactory(team=team, deployments=[deployment])


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["admin_user", "owner"])
def test_query_count_does_not_grow_with_deployments(
    role, request, client, team_a, django_assert_max_num_queries
):
    user = request.getfixturevalue(role)
    client.force_login(user)
    client.get(URL)  # the first request stamps the session (idle timeout)
    _build(3, team_a, user)
    summary.refresh_dirty()  # what the writes marked (after commit, or by beat)
    with CaptureQueriesContext(connection) as few:
        assert client.get(URL).context["headlines"][1].value == 3
    _build(30, team_a, user)
    summary.refresh_dirty()
    with django_assert_max_num_queries(len(few)):
        assert client.get(URL).context["headlines"][1].value == 33
    # 12, and the findings' 2 (their counts; the owner's own queue).
    assert len(few) <= 14, [q["sql"][:80] for q in few.captured_queries]


@pytest.mark.django_db
def test_figures_are_fresh_after_every_write(client, owner, admin_user, team_a, team_b):
    """No cache: each request shows what was committed before it, in every scope."""
    _build(2, team_a, owner)
    client.force_login(owner)
    first = client.get(URL)
    assert first.context["headlines"][1].value == 2
    _build(5, team_a, owner)
    assert client.get(URL).context["headlines"][1].value == 7
    assert "exact as of" in client.get(URL).content.decode()
    client.force_login(admin_user)
    assert client.get(URL).context["headlines"][1].value == 7
    m.Deployment.objects.filter(team=team_a).first().delete()
    assert client.get(URL).context["headlines"][1].value == 6


@pytest.mark.django_db
def test_sources_needing_attention_counts_and_links_to_the_same_sources(
    client, auditor
):

    sm.DataSource.objects.create(name="Broken", kind="mlflow", health="failing")
    sm.DataSource.objects.create(name="Skipping", kind="vault", health="degraded")
    sm.DataSource.objects.create(name="Fine", kind="aws_iam", health="healthy")
    sm.DataSource.objects.create(
        name="Off", kind="gcp_keys", health="failing", enabled=False
    )
    client.force_login(auditor)
    headline = next(
        h for h in client.get(URL).context["headlines"] if h.key == "sources_attention"
    )
    assert headline.value == 2
    listed = client.get(headline.url).content.decode()
    assert "Broken" in listed and "Skipping" in listed
    assert "Fine" not in listed and ">Off<" not in listed
