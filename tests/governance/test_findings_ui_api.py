"""GET /api/v1/findings and /api/v1/findings/{id}: filters, cursor pages, scope, 401/403,
400 for bad filters, the OpenAPI document."""

from __future__ import annotations

import pytest

from governance import services_findings as services
from inventory import models as m
from inventory import services as inventory_services
from tests.factories import IdentityFactory
from tests.governance.findings_ui_helpers import make_finding

pytestmark = pytest.mark.django_db
LIST = "/api/v1/findings/"


def _token(*scopes):
    _, raw = inventory_services.api_token_issue(
        actor=None, name="reader", scopes=list(scopes), days=30
    )
    return raw


@pytest.fixture
def api(client):
    raw = _token(m.APIToken.Scope.READ)

    def _get(url: str, **params):
        return client.get(url, params, headers={"Authorization": f"Bearer {raw}"})

    return _get


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_list_and_detail(api, team_a, owner, risk):
    finding = make_finding(team=team_a, owner=owner, severity=4, tier=1)
    services.finding_acknowledge(actor=risk, finding=finding)
    response = api(LIST)
    assert _ids(response) == [finding.pk]
    row = response.json()["results"][0]
    assert row["kind"] == "missing_owner" and row["severity"] == "critical"
    assert row["severity_level"] == 4 and row["tier"] == 1
    assert row["status"] == "acknowledged"
    assert row["subject"] == {
        "type": "deployment",
        "id": finding.subject_id,
        "name": finding.deployment.name,
    }
    assert row["team"]["id"] == team_a.pk and row["owner"]["username"] == "olivia"
    assert row["evidence"]["facts"]["owner"] is None
    assert row["url"] == f"/governance/findings/{finding.pk}/"
    assert "events" not in row
    detail = api(f"/api/v1/findings/{finding.pk}/")
    assert detail.status_code == 200
    body = detail.json()
    assert body["id"] == finding.pk
    assert [e["action"] for e in body["events"]] == ["acknowledged", "opened"]
    assert body["events"][0]["actor_label"] == "rita"


def test_without_trailing_slash_too(client):
    raw = _token(m.APIToken.Scope.READ)
    response = client.get(
        "/api/v1/findings", headers={"Authorization": f"Bearer {raw}"}
    )
    assert response.status_code in {200, 301}


def test_filters(api, team_a, team_b):
    shadow = make_finding(team=team_b, kind="shadow_deployment", severity=3, tier=2)
    low = make_finding(team=team_a, severity=1, tier=4)
    gone = make_finding(team=team_a, status="resolved")
    identity = IdentityFactory(team=team_a)
    on_identity = make_finding(team=team_a)
    type(on_identity).objects.filter(pk=on_identity.pk).update(
        subject_type="identity",
        subject_id=identity.pk,
        deployment=None,
        identity=identity,
    )
    assert set(_ids(api(LIST))) == {shadow.pk, low.pk, gone.pk, on_identity.pk}
    assert _ids(api(LIST, kind="shadow_deployment")) == [shadow.pk]
    assert _ids(api(LIST, status="resolved")) == [gone.pk]
    assert gone.pk not in _ids(api(LIST, status="unresolved"))
    assert _ids(api(LIST, severity="low")) == [low.pk]
    assert set(_ids(api(LIST, min_severity="high"))) == {shadow.pk}
    assert _ids(api(LIST, tier="2")) == [shadow.pk]
    assert _ids(api(LIST, team=team_b.pk)) == [shadow.pk]
    assert _ids(api(LIST, subject_type="identity")) == [on_identity.pk]
    assert _ids(api(LIST, subject_type="identity", subject_id=identity.pk)) == [
        on_identity.pk
    ]
    assert _ids(api(LIST, subject_type="deployment", subject_id=shadow.subject_id)) == [
        shadow.pk
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"kind": "nope"}, "kind"),
        ({"status": "closed"}, "status"),
        ({"severity": "5"}, "severity"),
        ({"tier": "0"}, "tier"),
        ({"team": "abc"}, "team"),
        ({"team": "99999999999999999999999"}, "team"),
        ({"subject_id": "3"}, "subject_id"),
        ({"subject_type": "robot"}, "subject_type"),
    ],
)
def test_bad_filters_are_400(api, team_a, params, field):
    make_finding(team=team_a)
    response = api(LIST, **params)
    assert response.status_code == 400
    assert field in response.json()


def test_cursor_pages(api, team_a):
    made = [make_finding(team=team_a) for _ in range(5)]
    first = api(LIST, page_size=2).json()
    assert [r["id"] for r in first["results"]] == [f.pk for f in made[:2]]
    url = first["next"]
    second = api(url).json()
    assert [r["id"] for r in second["results"]] == [f.pk for f in made[2:4]]
    assert api(LIST, cursor="bogus").status_code == 404


def test_auth(client, team_a):
    finding = make_finding(team=team_a)
    assert client.get(LIST).status_code == 401
    bad = client.get(LIST, headers={"Authorization": "Bearer rp_nope_nope"})
    assert bad.status_code == 401
    raw = _token(m.APIToken.Scope.TELEMETRY)
    wrong_scope = client.get(LIST, headers={"Authorization": f"Bearer {raw}"})
    assert wrong_scope.status_code == 403
    assert "read" in wrong_scope.json()["detail"]
    assert (
        client.get(
            f"/api/v1/findings/{finding.pk}/",
            headers={"Authorization": f"Bearer {raw}"},
        ).status_code
        == 403
    )


def test_missing_and_read_only(api, client, team_a):
    finding = make_finding(team=team_a)
    assert api("/api/v1/findings/999999/").status_code == 404
    raw = _token(m.APIToken.Scope.READ)
    response = client.post(
        LIST,
        {},
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 405
    response = client.delete(
        f"/api/v1/findings/{finding.pk}/", headers={"Authorization": f"Bearer {raw}"}
    )
    assert response.status_code == 405


def test_a_read_token_reads_every_team_as_finding_scope_says(api, team_a, team_b):
    """finding_scope for a machine: a token with the read scope reads every finding (as
    it reads every team's inventory); people read theirs on the pages."""
    ours, theirs = make_finding(team=team_a), make_finding(team=team_b)
    assert set(_ids(api(LIST))) == {ours.pk, theirs.pk}
    assert api(f"/api/v1/findings/{theirs.pk}/").status_code == 200


def test_openapi_document_has_the_endpoints(client):
    doc = client.get("/api/v1/openapi.json").json()
    paths = doc["paths"]
    assert "/api/v1/findings/" in paths and "/api/v1/findings/{id}/" in paths
    params = {p["name"] for p in paths["/api/v1/findings/"]["get"]["parameters"]}
    assert {
        "kind",
        "status",
        "severity",
        "tier",
        "team",
        "subject_type",
        "subject_id",
        "cursor",
    } <= params
    assert paths["/api/v1/findings/"]["get"]["security"]


def test_query_count_constant(api, team_a, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        make_finding(team=team_a)
    api(LIST)
    with CaptureQueriesContext(connection) as few:
        assert len(_ids(api(LIST))) == 3
    for _ in range(30):
        make_finding(team=team_a)
    with django_assert_max_num_queries(len(few)):
        assert len(_ids(api(LIST))) == 33
