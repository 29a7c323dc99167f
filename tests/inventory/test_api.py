"""The read-only API: endpoints, filters, keyset pages, query counts and the OpenAPI document."""

from __future__ import annotations

import json

import pytest
from drf_spectacular.validation import validate_schema

from inventory import models as m
from inventory import services
from inventory.api.schema import BEARER_SCHEME_NAME
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
    SystemFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db

ENDPOINTS = ["models", "versions", "systems", "deployments", "identities", "teams"]


@pytest.fixture
def raw_token(db):
    _, raw = services.api_token_issue(
        actor=None, name="reader", scopes=[m.APIToken.Scope.READ], days=30
    )
    return raw


@pytest.fixture
def api(client, raw_token):
    def _get(url: str, **params):
        return client.get(url, params, headers={"Authorization": f"Bearer {raw_token}"})

    return _get


def _ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def inventory_rows(team_a, owner):
    """One object of each kind, fully related."""
    model = AIModelFactory(team=team_a, owner=owner, name="scorer")
    version = ModelVersionFactory(model=model, version="2.1")
    system = SystemFactory(team=team_a, owner=owner, name="loan-app")
    deployment = DeploymentFactory(
        model=model,
        observed_version=version,
        approved_version=version,
        system=system,
        owner=owner,
        name="scorer-prod",
    )
    identity = IdentityFactory(team=team_a, owner=owner, deployments=[deployment])
    return {
        "models": model,
        "versions": version,
        "systems": system,
        "deployments": deployment,
        "identities": identity,
        "teams": team_a,
    }


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_list_and_detail_return_the_object(api, inventory_rows, endpoint):
    obj = inventory_rows[endpoint]

    listed = api(f"/api/v1/{endpoint}/")
    detail = api(f"/api/v1/{endpoint}/{obj.pk}/")

    assert listed.status_code == 200
    assert listed["Content-Type"] == "application/json"
    assert obj.pk in _ids(listed)
    assert detail.status_code == 200
    assert detail.json()["id"] == obj.pk
    assert detail.json() == next(
        row for row in listed.json()["results"] if row["id"] == obj.pk
    )


def test_deployment_representation_names_its_relations(api, inventory_rows, owner):
    dep = inventory_rows["deployments"]

    body = api(f"/api/v1/deployments/{dep.pk}/").json()

    assert body["model"] == {"id": dep.model_id, "name": "scorer"}
    assert body["observed_version"] == {"id": dep.observed_version_id, "version": "2.1"}
    assert body["approved_version"]["id"] == dep.approved_version_id
    assert body["version_drift"] is False
    assert body["system"] == {"id": dep.system_id, "name": "loan-app"}
    assert body["team"] == {
        "id": dep.team_id,
        "name": "Credit risk",
        "slug": "credit-risk",
    }
    assert body["owner"] == {"id": owner.pk, "username": "olivia"}
    assert body["environment"] == "production"


def test_identity_lists_the_deployments_it_can_invoke(api, inventory_rows):
    identity = inventory_rows["identities"]

    body = api(f"/api/v1/identities/{identity.pk}/").json()

    assert body["deployments"] == [inventory_rows["deployments"].pk]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_detail_of_missing_object_is_404_json(api, endpoint):
    response = api(f"/api/v1/{endpoint}/999999/")

    assert response.status_code == 404
    assert "detail" in response.json()


def test_the_api_is_read_only(client, raw_token, inventory_rows):
    dep = inventory_rows["deployments"]
    headers = {"Authorization": f"Bearer {raw_token}"}

    created = client.post(
        "/api/v1/deployments/", {}, content_type="application/json", headers=headers
    )
    deleted = client.delete(f"/api/v1/deployments/{dep.pk}/", headers=headers)

    assert created.status_code == 405
    assert deleted.status_code == 405
    assert m.Deployment.objects.filter(pk=dep.pk).exists()


# ---------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------
@pytest.fixture
def deployments(team_a, team_b, owner):
    old = ModelVersionFactory(model__team=team_a)
    new = ModelVersionFactory(model=old.model)
    return {
        "prod": DeploymentFactory(model=old.model, name="alpha-prod", owner=owner),
        "staging": DeploymentFactory(
            model=old.model,
            name="alpha-staging",
            environment=m.Deployment.Environment.STAGING,
            owner=owner,
        ),
        "external": DeploymentFactory(
            model__team=team_b,
            name="beta-chat",
            exposure=m.Deployment.Exposure.EXTERNAL,
            status=m.Deployment.Status.QUARANTINED,
            endpoint="https://chat.example.com",
        ),
        "drift": DeploymentFactory(
            model=old.model,
            name="gamma-drift",
            observed_version=old,
            approved_version=new,
        ),
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"environment": "staging"}, {"staging"}),
        ({"exposure": "external"}, {"external"}),
        ({"status": "quarantined"}, {"external"}),
        ({"risk": "drift"}, {"drift"}),
        ({"risk": "ownerless"}, {"external", "drift"}),
        ({"q": "CHAT.example"}, {"external"}),
        ({"q": "alpha", "environment": "production"}, {"prod"}),
    ],
)
def test_deployment_filters(api, deployments, params, expected):
    response = api("/api/v1/deployments/", **params)

    assert response.status_code == 200
    assert set(_ids(response)) == {deployments[key].pk for key in expected}


def test_team_and_owner_filters(api, deployments, team_b, owner):
    by_team = api("/api/v1/deployments/", team=team_b.pk)
    by_owner = api("/api/v1/deployments/", owner=owner.pk)

    assert _ids(by_team) == [deployments["external"].pk]
    assert set(_ids(by_owner)) == {deployments["prod"].pk, deployments["staging"].pk}


def test_filters_on_the_other_endpoints(api, team_a):
    active = AIModelFactory(team=team_a, kind=m.AIModel.Kind.LLM)
    AIModelFactory(team=team_a, lifecycle=m.AIModel.Lifecycle.RETIRED)
    pending = ModelVersionFactory(approval=m.ModelVersion.Approval.PENDING)
    ModelVersionFactory()
    agent = SystemFactory(kind=m.System.Kind.AGENT)
    SystemFactory()
    github = IdentityFactory(
        provider="github", status=m.NonHumanIdentity.Status.REVOKED
    )
    IdentityFactory(kind=m.NonHumanIdentity.Kind.API_KEY)
    TeamFactory(name="Payments ops", slug="payments", description="Card payments")

    assert _ids(api("/api/v1/models/", kind="llm")) == [active.pk]
    assert _ids(api("/api/v1/models/", lifecycle="active", team=team_a.pk)) == [
        active.pk
    ]
    assert _ids(api("/api/v1/versions/", approval="pending")) == [pending.pk]
    assert _ids(api("/api/v1/systems/", kind="agent")) == [agent.pk]
    assert _ids(api("/api/v1/identities/", provider="GitHub")) == [github.pk]
    assert _ids(api("/api/v1/identities/", status="revoked")) == [github.pk]
    teams = api("/api/v1/teams/", q="card").json()["results"]
    assert [t["slug"] for t in teams] == ["payments"]


@pytest.mark.parametrize(
    ("endpoint", "params"),
    [
        ("deployments", {"environment": "moon"}),
        ("deployments", {"risk": "everything"}),
        ("deployments", {"team": "999999"}),
        ("deployments", {"team": "not-a-number"}),
        ("deployments", {"owner": "x"}),
        ("models", {"lifecycle": "immortal"}),
        ("versions", {"approval": "maybe"}),
        ("systems", {"kind": "robot"}),
        ("identities", {"kind": "password"}),
        ("identities", {"deployment": "abc"}),
    ],
)
def test_invalid_filter_value_is_400_json(api, endpoint, params):
    response = api(f"/api/v1/{endpoint}/", **params)

    assert response.status_code == 400
    assert set(response.json()) == set(params)


def test_invalid_cursor_is_404_not_500(api):
    response = api("/api/v1/deployments/", cursor="garbage")

    assert response.status_code == 404


# ---------------------------------------------------------------------------
# Pagination and query counts
# ---------------------------------------------------------------------------
def test_cursor_pagination_walks_every_row_once(client, api, raw_token):
    created = [DeploymentFactory().pk for _ in range(5)]

    first = api("/api/v1/deployments/", page_size=3).json()
    second = client.get(
        first["next"], headers={"Authorization": f"Bearer {raw_token}"}
    ).json()

    assert len(first["results"]) == 3
    assert "count" not in first
    assert len(second["results"]) == 2
    assert second["next"] is None
    assert second["previous"] is not None
    assert _ids_of(first) + _ids_of(second) == sorted(created)


def _ids_of(page: dict) -> list[int]:
    return [row["id"] for row in page["results"]]


def _make_rows(n: int, team: m.Team, owner) -> None:
    system = SystemFactory(team=team, owner=owner)
    for _ in range(n):
        version = ModelVersionFactory(model__team=team, model__owner=owner)
        version.approved_by = owner
        version.save(update_fields=["approved_by"])
        dep = DeploymentFactory(
            model=version.model,
            observed_version=version,
            approved_version=version,
            system=system,
            owner=owner,
        )
        IdentityFactory(team=team, owner=owner, deployments=[dep])
        SystemFactory(team=team, owner=owner)


# Authentication (1) + the page (1) + the identities' deployments (1 prefetch).
MAX_QUERIES = 3


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("rows", [3, 30])
def test_query_count_is_constant_per_page(
    api, team_a, owner, django_assert_max_num_queries, endpoint, rows
):
    _make_rows(rows, team_a, owner)
    api("/api/v1/teams/")  # first use writes last_used_at; measure a steady call

    with django_assert_max_num_queries(MAX_QUERIES):
        response = api(f"/api/v1/{endpoint}/")

    assert response.status_code == 200
    assert len(response.json()["results"]) >= 1


def test_token_hash_never_leaves_the_api(client, api, inventory_rows):
    token, raw = services.api_token_issue(
        actor=None, name="leak-check", scopes=["read", "deploy"], days=5
    )
    bodies = [api(f"/api/v1/{endpoint}/").content for endpoint in ENDPOINTS]
    bodies.append(api(f"/api/v1/identities/{token.identity_id}/").content)
    bodies.append(client.get("/api/v1/openapi.json").content)

    for body in bodies:
        assert token.token_hash.encode() not in body
        assert b"token_hash" not in body
        assert raw.encode() not in body
    identity = api(f"/api/v1/identities/{token.identity_id}/").json()
    assert identity["kind"] == "runproof_token"


# ---------------------------------------------------------------------------
# OpenAPI
# ---------------------------------------------------------------------------
def test_openapi_document_is_public_valid_and_complete(client):
    response = client.get("/api/v1/openapi.json")

    assert response.status_code == 200
    schema = json.loads(response.content)
    validate_schema(schema)
    for endpoint in ENDPOINTS:
        assert f"/api/v1/{endpoint}/" in schema["paths"]
        assert f"/api/v1/{endpoint}/{{id}}/" in schema["paths"]
    assert schema["components"]["securitySchemes"][BEARER_SCHEME_NAME] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "rp_<prefix>_<secret>",
        "description": schema["components"]["securitySchemes"][BEARER_SCHEME_NAME][
            "description"
        ],
    }
    deployments = schema["paths"]["/api/v1/deployments/"]["get"]
    assert deployments["security"] == [{BEARER_SCHEME_NAME: []}]
    params = {p["name"] for p in deployments["parameters"]}
    assert {
        "team",
        "owner",
        "environment",
        "exposure",
        "status",
        "risk",
        "q",
        "cursor",
        "page_size",
    } <= params
    identity_params = {
        p["name"] for p in schema["paths"]["/api/v1/identities/"]["get"]["parameters"]
    }
    assert {"kind", "provider", "status", "risk", "q"} <= identity_params
    assert {"lifecycle", "kind"} <= {
        p["name"] for p in schema["paths"]["/api/v1/models/"]["get"]["parameters"]
    }
    assert "approval" in {
        p["name"] for p in schema["paths"]["/api/v1/versions/"]["get"]["parameters"]
    }


def test_openapi_document_ignores_a_bad_token(client):
    response = client.get(
        "/api/v1/openapi.json", headers={"Authorization": "Bearer nonsense"}
    )

    assert response.status_code == 200


def test_openapi_document_for_a_signed_in_user(login, auditor):
    response = login(auditor).get("/api/v1/openapi.json")

    assert response.status_code == 200
    assert "/api/v1/deployments/" in response.json()["paths"]


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["99999999999999999999", "-4.1e58", "1.5", "x"])
def test_api_refuses_ids_the_database_cannot_hold(value, db):
    """Found by schemathesis: /api/v1/versions/?model=-4.159890393981046e+58 answered 500."""
    from django.test import Client

    from inventory import services

    _, raw = services.api_token_issue(
        actor=None, actor_label="test", name="fuzz", scopes=["read"], days=1
    )
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    for path in (
        "/api/v1/versions/?model=",
        "/api/v1/deployments/?system=",
        "/api/v1/identities/?deployment=",
    ):
        response = client.get(path + value)
        assert response.status_code == 400, (path, value, response.content)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/deployments/abc/",
        "/api/v1/nothing-here/",
        "/api/v1/models/1/extra",
        "/api/v1/teams/%C3%B0%0A/",  # a newline in the path (schemathesis)
    ],
)
def test_unknown_api_paths_answer_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found."}


def test_a_missing_trailing_slash_still_redirects(client):
    response = client.get("/api/v1/deployments?environment=production")
    assert response.status_code == 301
    assert response["Location"] == "/api/v1/deployments/?environment=production"
