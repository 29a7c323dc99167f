"""POST /api/v1/gate through the real HTTP stack: a live server, `requests`, and tokens
issued by the inventory's token service."""

from __future__ import annotations

import json

import pytest
import requests

from audit.models import AuditEvent
from governance.models import GateDecision
from inventory import models as m
from inventory.api.authentication import INVALID_TOKEN
from inventory.api.parsers import BODY_TOO_LARGE
from tests.governance.gate_helpers import clean_release, expire, finding, gate_token

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {
    "model": "fraud-scorer",
    "version": "4",
    "environment": "production",
    "deployment": "fraud-scorer-prod",
}


@pytest.fixture
def gate_url(live_server):
    return f"{live_server.url}/api/v1/gate"


@pytest.fixture
def release(transactional_db):
    return clean_release()


@pytest.fixture
def token(transactional_db):
    return gate_token()


def post(url, raw_token, body=None, *, data=None, headers=None):
    sent = {"Authorization": f"Bearer {raw_token}"} if raw_token else {}
    if body is not None:
        data = json.dumps(body)
        sent["Content-Type"] = "application/json"
    sent.update(headers or {})
    return requests.post(url, data=data, headers=sent, timeout=10)


def test_allow(gate_url, release, token):
    row, raw = token
    response = post(gate_url, raw, BODY)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["decision"] == "allow"
    assert answer["reasons"] == []
    decision = GateDecision.objects.get(pk=answer["decision_id"])
    assert decision.allowed is True
    assert decision.actor_label == f"token:{row.prefix}"
    assert AuditEvent.objects.filter(
        action="gatedecision.allow", object_id=str(decision.pk)
    ).exists()


def test_with_a_trailing_slash_too(gate_url, release, token):
    response = post(gate_url + "/", token[1], BODY)
    assert response.status_code == 200, response.text
    assert response.json()["decision"] == "allow"


def test_deny_with_every_reason(gate_url, release, token):
    m.ModelVersion.objects.filter(pk=release["version"].pk).update(
        approval=m.ModelVersion.Approval.PENDING
    )
    m.Deployment.objects.filter(pk=release["deployment"].pk).update(
        status=m.Deployment.Status.QUARANTINED
    )
    found = finding(release["deployment"])
    response = post(gate_url, token[1], BODY)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["decision"] == "deny"
    assert [r["code"] for r in answer["reasons"]] == [
        "version_not_approved",
        "deployment_quarantined",
        "critical_finding",
    ]
    assert answer["reasons"][2]["finding_id"] == found.pk
    assert all(r["message"] for r in answer["reasons"])
    decision = GateDecision.objects.get(pk=answer["decision_id"])
    assert decision.allowed is False
    assert decision.reasons == answer["reasons"]


@pytest.mark.parametrize(
    "auth",
    [None, "rp_nope_nope", "Bearer", "garbage"],
    ids=["no header", "unknown token", "keyword only", "not bearer"],
)
def test_401_without_a_valid_token(gate_url, release, auth):
    headers = {"Content-Type": "application/json"}
    if auth == "Bearer":
        headers["Authorization"] = "Bearer"
    elif auth == "garbage":
        headers["Authorization"] = "Basic Zm9vOmJhcg=="
    elif auth:
        headers["Authorization"] = f"Bearer {auth}"
    response = requests.post(
        gate_url, data=json.dumps(BODY), headers=headers, timeout=10
    )
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["detail"]
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert not GateDecision.objects.exists()


def test_401_expired_token(gate_url, release, token):
    row, raw = token
    expire(row)
    response = post(gate_url, raw, BODY)
    assert response.status_code == 401
    assert response.json() == {"detail": INVALID_TOKEN}
    assert not GateDecision.objects.exists()


def test_401_revoked_token(gate_url, release, token):
    from inventory import services

    row, raw = token
    services.api_token_revoke(actor=None, token=row, actor_label="tests")
    assert post(gate_url, raw, BODY).status_code == 401


def test_403_wrong_scope(gate_url, release):
    _, raw = gate_token(scopes=("read", "deploy"))
    response = post(gate_url, raw, BODY)
    assert response.status_code == 403
    assert response.json() == {"detail": "This token lacks the 'gate' scope."}
    assert not GateDecision.objects.exists()


@pytest.mark.parametrize(
    ("data", "content_type", "key", "text"),
    [
        ("{not json", "application/json", "detail", "JSON parse error"),
        ("[1, 2]", "application/json", "non_field_errors", "dictionary"),
        ('"text"', "application/json", "non_field_errors", "dictionary"),
        ("{}", "application/json", "model", "required"),
        (
            json.dumps({"model": "fraud-scorer", "environment": "production"}),
            "application/json",
            "version",
            "required",
        ),
        (
            json.dumps({**BODY, "model": ["fraud-scorer"]}),
            "application/json",
            "model",
            "A name (text) or an id",
        ),
        (
            json.dumps({**BODY, "model": True}),
            "application/json",
            "model",
            "A name (text) or an id",
        ),
        (
            json.dumps({**BODY, "model": -3}),
            "application/json",
            "model",
            "A name (text) or an id",
        ),
        (
            json.dumps({**BODY, "version": {"v": 4}}),
            "application/json",
            "version",
            "Not a valid string",
        ),
        (
            json.dumps({**BODY, "environment": "prod"}),
            "application/json",
            "environment",
            "not a valid choice",
        ),
        (
            json.dumps({**BODY, "deploymnet": "x"}),
            "application/json",
            "deploymnet",
            "Unknown field",
        ),
        (
            json.dumps({**BODY, "model": "no-such-model"}),
            "application/json",
            "model",
            "No model 'no-such-model'",
        ),
        (
            json.dumps({**BODY, "deployment": "no-such-deployment"}),
            "application/json",
            "deployment",
            "No deployment 'no-such-deployment'",
        ),
        (
            json.dumps({**BODY, "version": "x" * 101}),
            "application/json",
            "version",
            "no more than 100",
        ),
        (
            json.dumps({**BODY, "model": "x\u0000y"}),
            "application/json",
            "model",
            "",
        ),
        ('{"model": NaN}', "application/json", "detail", "JSON parse error"),
        ("[" * 5000 + "]" * 5000, "application/json", "detail", "JSON parse error"),
    ],
    ids=[
        "not json",
        "a list",
        "a string",
        "empty object",
        "missing version",
        "model a list",
        "model a bool",
        "model negative",
        "version an object",
        "unknown environment",
        "unknown field",
        "unknown model",
        "unknown deployment",
        "version too long",
        "NUL in a name",
        "NaN",
        "deep nesting",
    ],
)
def test_400_malformed_bodies(gate_url, release, token, data, content_type, key, text):
    response = post(
        gate_url, token[1], data=data, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400, response.text
    answer = response.json()
    assert key in answer, answer
    message = answer[key] if isinstance(answer[key], str) else " ".join(answer[key])
    assert text in message
    assert not GateDecision.objects.exists()


def test_400_oversized_body(gate_url, release, token, settings):
    too_big = json.dumps({**BODY, "endpoint": "x" * (3 * 1024 * 1024)})
    response = post(
        gate_url, token[1], data=too_big, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"detail": BODY_TOO_LARGE}
    assert not GateDecision.objects.exists()


def test_415_not_json(gate_url, release, token):
    response = post(
        gate_url,
        token[1],
        data="model=fraud-scorer&version=4",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]


def test_get_is_not_allowed(gate_url, release, token):
    response = requests.get(
        gate_url, headers={"Authorization": f"Bearer {token[1]}"}, timeout=10
    )
    assert response.status_code == 405
    assert response.json()["detail"]
