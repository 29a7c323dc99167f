"""The proof card pages, downloads, API and dashboard headline, through the HTTP stack."""

from __future__ import annotations

import json
import re
import zlib

import pytest
from django.urls import reverse
from pytest_django.asserts import assertTemplateUsed

from governance import views_proof
from inventory import models as m
from inventory import services
from tests.factories import AIModelFactory, DeploymentFactory
from tests.governance.proof_data import grow, ready_deployment

pytestmark = pytest.mark.django_db


def url(deployment, **params):
    base = reverse("governance:deployment_proof", args=[deployment.pk])
    return base + (
        "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
    )


def model_url(model, **params):
    base = reverse("governance:aimodel_proof", args=[model.pk])
    return base + (
        "?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else ""
    )


# ---------------------------------------------------------------------------
# Pages and permissions
# ---------------------------------------------------------------------------
def test_the_page_shows_the_three_answers(client, owner, team_a):
    deployment, identity = ready_deployment(team_a, owner=owner)
    client.force_login(owner)
    response = client.get(url(deployment))
    assert response.status_code == 200
    assertTemplateUsed(response, "governance/deployment_proof.html")
    html = response.content.decode()
    for testid in ("proof-running", "proof-invoke", "proof-withdraw"):
        assert f'data-testid="{testid}"' in html
    assert 'data-verdict="ready"' in html
    assert identity.name in html
    assert "vendor/bootstrap" in html  # the page's base, not the print one


def test_the_detail_pages_link_to_the_card(client, owner, team_a):
    deployment, _ = ready_deployment(team_a, owner=owner)
    client.force_login(owner)
    page = client.get(deployment.get_absolute_url()).content.decode()
    assert f'href="{url(deployment)}"' in page
    page = client.get(deployment.model.get_absolute_url()).content.decode()
    assert f'href="{model_url(deployment.model)}"' in page


@pytest.mark.parametrize("who", ["risk", "auditor", "compliance", "admin_user"])
def test_every_read_all_role_reads_any_card(request, client, who, team_b):
    deployment, _ = ready_deployment(team_b)
    client.force_login(request.getfixturevalue(who))
    assert client.get(url(deployment)).status_code == 200
    assert client.get(model_url(deployment.model)).status_code == 200


def test_another_teams_card_does_not_exist(client, owner, team_b):
    deployment, _ = ready_deployment(team_b)
    client.force_login(owner)
    for target in (
        url(deployment),
        url(deployment, format="json"),
        url(deployment, format="pdf"),
        model_url(deployment.model),
        model_url(deployment.model, format="json"),
    ):
        assert client.get(target).status_code == 404, target
    assert client.get("/governance/deployments/999999/proof/").status_code == 404


def test_signed_out_is_sent_to_sign_in(client, team_a):
    deployment, _ = ready_deployment(team_a)
    response = client.get(url(deployment))
    assert response.status_code == 302 and "login" in response["Location"]


def test_an_unknown_format_is_a_400(client, owner, team_a):
    deployment, _ = ready_deployment(team_a, owner=owner)
    client.force_login(owner)
    response = client.get(url(deployment, format="xml"))
    assert response.status_code == 400
    assert response.content.decode() == views_proof.BAD_FORMAT


def test_post_is_refused(client, owner, team_a):
    deployment, _ = ready_deployment(team_a, owner=owner)
    client.force_login(owner)
    assert client.post(url(deployment)).status_code == 405


@pytest.mark.parametrize("size", [2, 10])
def test_page_queries_do_not_grow(
    client, owner, team_a, size, django_assert_max_num_queries
):
    deployment, _ = ready_deployment(team_a, owner=owner)
    grow(deployment, size)
    client.force_login(owner)
    client.get(url(deployment))  # the first request stamps the session
    with django_assert_max_num_queries(13):
        assert client.get(url(deployment)).status_code == 200
    with django_assert_max_num_queries(10):
        assert client.get(model_url(deployment.model)).status_code == 200


# ---------------------------------------------------------------------------
# Downloads
# ---------------------------------------------------------------------------
def test_json_download_is_the_card(client, owner, team_a):
    deployment, identity = ready_deployment(team_a, owner=owner)
    client.force_login(owner)
    response = client.get(url(deployment, format="json"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert re.match(
        rf'attachment; filename="proof-deployment-{deployment.pk}-scorer-prod-\d{{8}}T\d{{4}}\.json"',
        response["Content-Disposition"],
    )
    body = json.loads(response.content)
    assert body["kind"] == "deployment"
    assert body["subject"]["id"] == deployment.pk
    assert body["withdraw"]["verdict"] == "ready"
    assert body["invoke"]["identities"][0]["name"] == identity.name
    assert body["complete"] is True

    model = client.get(model_url(deployment.model, format="json")).json()
    assert model["kind"] == "model"
    assert [d["id"] for d in model["deployments"]] == [deployment.pk]


def _pdf_pages(pdf: bytes) -> int:
    """Page objects in the PDF, its compressed object streams opened (no PDF library)."""
    text = pdf
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", pdf, re.DOTALL):
        try:
            text += zlib.decompress(stream)
        except zlib.error:
            continue
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", text))


def test_pdf_download_renders_the_same_template(client, owner, team_a):
    deployment, identity = ready_deployment(team_a, owner=owner)
    client.force_login(owner)
    response = client.get(url(deployment, format="pdf"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].endswith('.pdf"')
    pdf = response.content
    assert pdf.startswith(b"%PDF-")
    assert pdf.rstrip().endswith(b"%%EOF")
    assert _pdf_pages(pdf) >= 1
    assertTemplateUsed(response, "governance/deployment_proof.html")
    assertTemplateUsed(response, "governance/_proof_print.html")

    model_pdf = client.get(model_url(deployment.model, format="pdf"))
    assert model_pdf.status_code == 200 and model_pdf.content.startswith(b"%PDF-")


def test_pdf_without_its_libraries_is_a_clear_503(client, owner, team_a, monkeypatch):
    deployment, _ = ready_deployment(team_a, owner=owner)
    client.force_login(owner)

    def missing(html):
        raise OSError("cannot load library 'libpango-1.0-0'")

    monkeypatch.setattr(views_proof, "render_pdf", missing)
    response = client.get(url(deployment, format="pdf"))
    assert response.status_code == 503
    assert response.content.decode() == views_proof.PDF_UNAVAILABLE


def test_pdf_fetches_static_files_only():
    html = (
        '<link rel="stylesheet" href="/static/css/proof_print.css">'
        '<img src="https://example.com/tracker.png">'
        '<img src="file:///etc/passwd">'
        '<img src="/static/../config/settings.py">'
        "<p>proof</p>"
    )
    pdf, fetcher = views_proof.render_pdf(html)
    assert pdf.startswith(b"%PDF-")
    assert fetcher.refused == [
        "https://example.com/tracker.png",
        "file:///etc/passwd",
        "https://runproof.invalid/config/settings.py",  # the URL resolves the ..
    ]


# ---------------------------------------------------------------------------
# API
# ---------------------------------------------------------------------------
def _token(*scopes):
    _, raw = services.api_token_issue(actor=None, name="t", scopes=scopes, days=30)
    return {"Authorization": f"Bearer {raw}"}


def test_api_serves_both_cards_with_the_read_scope(client, team_a):
    deployment, _ = ready_deployment(team_a)
    headers = _token(m.APIToken.Scope.READ)
    response = client.get(f"/api/v1/deployments/{deployment.pk}/proof", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "deployment" and body["withdraw"]["verdict"] == "ready"
    assert set(body) >= {"running", "invoke", "withdraw", "complete"}
    model = client.get(f"/api/v1/models/{deployment.model_id}/proof", headers=headers)
    assert model.status_code == 200 and model.json()["kind"] == "model"
    # The router's own deployment routes still answer beside it.
    detail = client.get(f"/api/v1/deployments/{deployment.pk}/", headers=headers)
    assert detail.status_code == 200 and detail.json()["id"] == deployment.pk


def test_api_refuses_bad_tokens_wrong_scopes_and_missing_objects(client, team_a):
    deployment, _ = ready_deployment(team_a)
    path = f"/api/v1/deployments/{deployment.pk}/proof"
    assert client.get(path).status_code == 401
    bad = client.get(path, headers={"Authorization": "Bearer rp_nope_nope"})
    assert bad.status_code == 401
    wrong = client.get(path, headers=_token(m.APIToken.Scope.TELEMETRY))
    assert wrong.status_code == 403
    assert "read" in wrong.json()["detail"]
    headers = _token(m.APIToken.Scope.READ)
    missing = client.get("/api/v1/deployments/999999/proof", headers=headers)
    assert missing.status_code == 404 and "detail" in missing.json()
    assert client.get("/api/v1/models/999999/proof", headers=headers).status_code == 404


def test_api_is_scoped_like_the_pages(rf, owner, team_a, team_b):
    """The views ask inventory.permissions with the request's principal: a person of
    another team gets 404 (tokens, with the read scope, read everything)."""
    from rest_framework.test import force_authenticate

    from governance import api_proof

    theirs, _ = ready_deployment(team_b)
    mine, _ = ready_deployment(team_a, owner=owner, name="mine")
    view = api_proof.DeploymentProofView.as_view(permission_classes=[])
    request = rf.get("/")
    force_authenticate(request, user=owner)
    assert view(request, pk=theirs.pk).status_code == 404
    request = rf.get("/")
    force_authenticate(request, user=owner)
    assert view(request, pk=mine.pk).status_code == 200


def test_openapi_documents_the_proof_endpoints(client):
    schema = client.get("/api/v1/openapi.json").json()
    for path in ("/api/v1/deployments/{id}/proof", "/api/v1/models/{id}/proof"):
        operation = schema["paths"][path]["get"]
        assert operation["security"] == [{"bearerAuth": []}]
        assert (
            "verdict" in operation["description"]
            or "versions" in operation["description"]
        )
        assert {"200", "401", "403", "404"} <= set(operation["responses"])


# ---------------------------------------------------------------------------
# Dashboard headline
# ---------------------------------------------------------------------------
def test_dashboard_loads_the_proof_headline(client, owner, team_a, team_b):
    ready_deployment(team_a, owner=owner, name="good")
    bad, _ = ready_deployment(team_a, owner=owner, name="bad")
    bad.owner = None
    bad.save(update_fields=["owner"])
    ready_deployment(team_b, name="theirs")
    DeploymentFactory(
        model=AIModelFactory(team=team_a), team=team_a, environment="staging"
    )
    client.force_login(owner)
    page = client.get("/").content.decode()
    card_url = reverse("governance:dashboard_proof_card")
    assert f'hx-get="{card_url}"' in page
    card = client.get(card_url)
    assert card.context["proof_headline"]["complete"] == 1
    assert card.context["proof_headline"]["total"] == 2
    assert card.context["proof_headline"]["percent"] == 50
    html = card.content.decode()
    assert 'data-complete="1" data-total="2"' in html and "50% complete" in html
    link = card.context["proof_headline"]["url"]
    listed = client.get(link)
    assert listed.status_code == 200
    assert len(listed.context["page"].rows) == 2  # the total it counts


def test_ids_out_of_range_are_404_not_500(client, owner, team_a):
    client.force_login(owner)
    huge = "9" * 30
    assert client.get(f"/governance/deployments/{huge}/proof/").status_code == 404
    assert (
        client.get(f"/governance/models/{huge}/proof/?format=json").status_code == 404
    )
    headers = _token(m.APIToken.Scope.READ)
    assert (
        client.get(f"/api/v1/deployments/{huge}/proof", headers=headers).status_code
        == 404
    )
