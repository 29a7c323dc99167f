"""Tiers on the lists and the API: the Tier column, the tier filter, the sort by tier
(keyset pages walk every row once, a model with no tier last), the CSV, query counts."""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance import tiers
from inventory import models as m
from inventory import services
from inventory.pagination import keyset_paginate
from tests.factories import AIModelFactory, DeploymentFactory

pytestmark = pytest.mark.django_db

D = m.Deployment
DEPLOYMENTS = reverse("inventory:deployment_list")
MODELS = reverse("inventory:aimodel_list")


@pytest.fixture
def tiered(team_a):
    """Deployments of every tier, two each, over three models (and a model with none)."""
    low = AIModelFactory(team=team_a, name="low", sensitivity=m.Sensitivity.LOW)
    mid = AIModelFactory(team=team_a, name="mid", sensitivity=m.Sensitivity.LOW)
    high = AIModelFactory(team=team_a, name="high", sensitivity=m.Sensitivity.CRITICAL)
    AIModelFactory(team=team_a, name="empty")
    dev = D.Environment.DEVELOPMENT
    made = []
    for i in range(2):
        made += [
            DeploymentFactory(model=low, environment=dev, name=f"t4-{i}"),  # 0
            DeploymentFactory(
                model=mid,
                environment=dev,
                exposure=D.Exposure.EXTERNAL,
                name=f"t3-{i}",
            ),  # 30
            DeploymentFactory(
                model=mid,
                environment=dev,
                exposure=D.Exposure.EXTERNAL,
                write_access=True,
                name=f"t2-{i}",
            ),  # 55
            DeploymentFactory(
                model=high, exposure=D.Exposure.EXTERNAL, name=f"t1-{i}"
            ),  # 30 + 10 + 30 = 70
        ]
    tiers.recompute()
    return made


def names(response) -> list[str]:
    return [row.name for row in response.context["table"].data]


def walk(qs, field: str, descending: bool, *, nulls_last=False, per_page=1):
    """Every page forwards, then every page backwards from the last: both orders."""
    pages, after = [], None
    while True:
        page = keyset_paginate(
            qs,
            field=field,
            descending=descending,
            after=after,
            per_page=per_page,
            nulls_last=nulls_last,
        )
        pages.append(page)
        if not page.has_next:
            break
        after = page.next_cursor
    forwards = [r.pk for p in pages for r in p.rows]
    backwards, before = [], pages[-1].prev_cursor
    while before:
        page = keyset_paginate(
            qs,
            field=field,
            descending=descending,
            before=before,
            per_page=per_page,
            nulls_last=nulls_last,
        )
        backwards = [r.pk for r in page.rows] + backwards
        before = page.prev_cursor
    return forwards, backwards + [r.pk for r in pages[-1].rows]


def test_the_deployment_list_shows_filters_and_sorts_by_tier(login, admin_user, tiered):
    client = login(admin_user)
    body = client.get(DEPLOYMENTS).content.decode()
    assert ">Tier<" in body or "Tier</a>" in body
    assert names(client.get(DEPLOYMENTS + "?risk_tier=2")) == ["t2-0", "t2-1"]
    assert [n[:2] for n in names(client.get(DEPLOYMENTS + "?sort=risk_tier"))] == [
        "t1",
        "t1",
        "t2",
        "t2",
        "t3",
        "t3",
        "t4",
        "t4",
    ]
    assert names(client.get(DEPLOYMENTS + "?sort=-risk_tier"))[0].startswith("t4")


def test_a_bad_tier_filter_is_not_a_500(login, admin_user, tiered):
    for value in ["0", "5", "x", "1" * 40, "-1"]:
        response = login(admin_user).get(DEPLOYMENTS + f"?risk_tier={value}")
        assert response.status_code < 500


@pytest.mark.parametrize("descending", [False, True])
def test_keyset_pages_walk_every_deployment_once_by_tier(tiered, descending):
    qs = m.Deployment.objects.all()
    forwards, backwards = walk(qs, "risk_tier", descending, per_page=3)
    rows = sorted(tiered, key=lambda d: (d.pk,))
    for d in rows:
        d.refresh_from_db()
    want = [
        d.pk
        for d in sorted(rows, key=lambda d: (d.risk_tier, d.pk), reverse=descending)
    ]
    assert forwards == want
    assert backwards == want


def test_the_model_list_sorts_by_tier_with_no_tier_last(login, admin_user, tiered):
    client = login(admin_user)
    assert names(client.get(MODELS + "?sort=risk_tier")) == [
        "high",
        "mid",
        "low",
        "empty",
    ]
    assert names(client.get(MODELS + "?sort=-risk_tier")) == [
        "empty",
        "low",
        "mid",
        "high",
    ]
    assert names(client.get(MODELS + "?risk_tier=2")) == ["mid"]


@pytest.mark.parametrize("descending", [False, True])
def test_keyset_pages_put_models_with_no_tier_last(tiered, descending, team_a):
    # More NULLs, so pages start and end among them.
    AIModelFactory.create_batch(3, team=team_a)
    qs = m.AIModel.objects.all()
    forwards, backwards = walk(qs, "risk_tier", descending, nulls_last=True)
    rows = list(qs.order_by("pk"))
    tiered_rows = sorted(
        (r for r in rows if r.risk_tier is not None),
        key=lambda r: (r.risk_tier, r.pk),
        reverse=descending,
    )
    untiered = sorted(
        (r for r in rows if r.risk_tier is None), key=lambda r: r.pk, reverse=descending
    )
    want = [
        r.pk for r in (untiered + tiered_rows if descending else tiered_rows + untiered)
    ]
    assert forwards == want
    assert backwards == want
    assert len(untiered) == 4


def test_csv_exports_carry_the_tier_in_the_lists_order(login, admin_user, tiered):
    client = login(admin_user)
    response = client.get(DEPLOYMENTS + "?sort=risk_tier&export=csv")
    rows = list(
        csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    )
    assert [int(r["risk_tier"]) for r in rows] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert {r["name"]: int(r["risk_score"]) for r in rows}["t2-0"] == 55
    response = client.get(MODELS + "?sort=risk_tier&export=csv")
    rows = list(
        csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode()))
    )
    assert [(r["name"], r["risk_tier"]) for r in rows] == [
        ("high", "1"),
        ("mid", "2"),
        ("low", "4"),
        ("empty", ""),
    ]


def list_queries(client, url: str) -> int:
    client.get(url)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx)


@pytest.mark.parametrize(
    "url",
    [
        DEPLOYMENTS + "?sort=risk_tier",
        DEPLOYMENTS + "?risk_tier=1&sort=-risk_tier",
        MODELS + "?sort=risk_tier",
        MODELS + "?risk_tier=1",
    ],
)
def test_tier_sorts_and_filters_keep_the_list_query_count(
    login, admin_user, team_a, url
):
    client = login(admin_user)
    model = AIModelFactory(team=team_a, sensitivity=m.Sensitivity.CRITICAL)
    DeploymentFactory.create_batch(3, model=model, exposure=D.Exposure.EXTERNAL)
    tiers.recompute()
    plain = list_queries(client, url.split("?")[0])
    few = list_queries(client, url)
    for _ in range(27):
        m_ = AIModelFactory(team=team_a, sensitivity=m.Sensitivity.CRITICAL)
        DeploymentFactory(model=m_, exposure=D.Exposure.EXTERNAL)
    tiers.recompute()
    assert list_queries(client, url) == few
    assert few <= max(plain, 6)


# -- API ---------------------------------------------------------------------------
@pytest.fixture
def api(client):
    _, raw = services.api_token_issue(
        actor=None, name="reader", scopes=[m.APIToken.Scope.READ], days=30
    )

    def _get(url: str, **params):
        return client.get(url, params, headers={"Authorization": f"Bearer {raw}"})

    return _get


def test_the_api_gives_and_filters_by_tier(api, tiered):
    deployments = api("/api/v1/deployments/", risk_tier=1).json()["results"]
    assert sorted(d["name"] for d in deployments) == ["t1-0", "t1-1"]
    assert {d["risk_tier"] for d in deployments} == {1}
    assert deployments[0]["risk_score"] == 70
    models = api("/api/v1/models/", risk_tier=2).json()["results"]
    assert [x["name"] for x in models] == ["mid"]
    every = {
        x["name"]: x["risk_tier"] for x in api("/api/v1/models/").json()["results"]
    }
    assert every["empty"] is None and every["high"] == 1


@pytest.mark.parametrize("value", ["0", "9", "tier1"])
def test_a_bad_api_tier_is_a_400(api, value):
    response = api("/api/v1/deployments/", risk_tier=value)
    assert response.status_code == 400
    assert api("/api/v1/models/", risk_tier=value).status_code == 400


def test_the_openapi_document_names_the_tier(api, client):
    body = client.get("/api/v1/openapi.json").content.decode()
    assert "risk_tier" in body
