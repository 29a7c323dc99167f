"""The gate in the OpenAPI document, and the gate scope where tokens are issued."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from inventory import models as m

pytestmark = pytest.mark.django_db


def test_gate_is_in_the_openapi_document(client):
    schema = client.get("/api/v1/openapi.json").json()
    # The route takes both /gate and /gate/; the document names it once, as it does
    # /api/v1/deployment-events/.
    operation = schema["paths"]["/api/v1/gate/"]["post"]
    assert operation["operationId"] == "gate_decide"
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    name = request["$ref"].rsplit("/", 1)[-1]
    body = schema["components"]["schemas"][name]
    assert set(body["required"]) == {"model", "version", "environment"}
    assert {"deployment", "endpoint"} <= set(body["properties"])
    assert {"integer", "string"} == {
        branch["type"] for branch in body["properties"]["model"]["oneOf"]
    }
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
    answer = schema["components"]["schemas"][ok["$ref"].rsplit("/", 1)[-1]]
    assert set(answer["properties"]) == {"decision", "reasons", "decision_id"}
    assert {"400", "401", "403"} <= set(operation["responses"])


def test_token_form_offers_the_gate_scope(login, admin_user):
    page = login(admin_user).get(reverse("tokens:token_issue"))
    assert page.status_code == 200
    assert b'value="gate"' in page.content


def test_token_issued_through_the_form_has_the_gate_scope(login, admin_user):
    response = login(admin_user).post(
        reverse("tokens:token_issue"),
        {"name": "CI gate", "scopes": ["gate"], "days": 30},
    )
    assert response.status_code in (200, 302)
    assert m.APIToken.objects.get(name="CI gate").scopes == ["gate"]


def test_create_token_command_issues_a_gate_token(capsys):
    call_command("create_token", "--name", "pipeline", "--scopes", "gate")
    raw = capsys.readouterr().out.strip()
    assert raw.startswith("rp_")
    assert m.APIToken.objects.get(name="pipeline").scopes == ["gate"]
