"""The probe's hostile inputs (issue 8, items 3 to 9): each answers 4xx, never 500.

Every test here failed before its fix (a 500, an exception, or a session that lived on).
"""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from inventory import jsonsafe, services
from inventory import models as m
from inventory.middleware import LAST_SEEN_KEY, LOGIN_AT_KEY
from sources import models as sm
from sources.receivers.cicd import IDEMPOTENCY_KEY_NOT_PRINTABLE
from tests.factories import AIModelFactory, UserFactory

pytestmark = pytest.mark.django_db

API_LISTS = [
    "/api/v1/models/",
    "/api/v1/versions/",
    "/api/v1/systems/",
    "/api/v1/deployments/",
    "/api/v1/identities/",
    "/api/v1/teams/",
    "/api/v1/sources/",
    "/api/v1/sync-runs/",
]


def cursor(query: str) -> str:
    return quote(base64.b64encode(query.encode()).decode())


FORGED_CURSORS = [
    cursor("p=abc"),
    cursor("p=1.5"),
    cursor("p=2024-01-01"),
    cursor("p=99999999999999999999999"),
    cursor("p=%00"),
    cursor("r=1&p=abc"),
    "cD1hYmM%3D",
]


@pytest.fixture
def machine(db):
    _, raw = services.api_token_issue(
        actor=None,
        name="probe",
        scopes=[s.value for s in m.APIToken.Scope],
        days=1,
    )
    return Client(headers={"Authorization": f"Bearer {raw}"})


# -- item 3: forged API cursors ---------------------------------------------------------
@pytest.mark.parametrize("url", API_LISTS)
def test_a_forged_api_cursor_is_a_json_404_on_every_list(machine, url, team_a):
    AIModelFactory(team=team_a)
    for forged in FORGED_CURSORS:
        response = machine.get(f"{url}?cursor={forged}")
        assert response.status_code == 404, (url, forged, response.content[:200])
        assert response["Content-Type"].startswith("application/json")
    # An honest cursor still pages.
    first = machine.get(url, {"page_size": 1}).json()
    if first.get("next"):
        assert machine.get(first["next"]).status_code == 200


# -- item 4: JSON in forms --------------------------------------------------------------
HOSTILE_JSON = [
    '{"max_error_rate": NaN}',
    '{"max_error_rate": Infinity}',
    '{"max_error_rate": -Infinity}',
    '{"max_error_rate": 1e999}',
    '{"a": ' + "[" * 5000 + "]" * 5000 + "}",
    '{"label": "\\ud800"}',
    '{"label": "\\u0000"}',
    '{"\\udfff": 1}',
]


@pytest.mark.parametrize("text", HOSTILE_JSON)
def test_hostile_approved_bounds_are_a_form_error_and_nothing_is_written(
    login, admin_user, team_a, text
):
    model = AIModelFactory(team=team_a)
    events = AuditEvent.objects.count()
    response = login(admin_user).post(
        reverse("inventory:modelversion_create"),
        {
            "model": model.pk,
            "version": "1",
            "approved_bounds": text,
            "approval": "pending",
        },
    )
    assert response.status_code in {200, 422}
    assert not m.ModelVersion.objects.filter(model=model).exists()
    assert AuditEvent.objects.count() == events


def test_honest_approved_bounds_still_save(login, admin_user, team_a):
    model = AIModelFactory(team=team_a)
    response = login(admin_user).post(
        reverse("inventory:modelversion_create"),
        {
            "model": model.pk,
            "version": "1",
            "approved_bounds": '{"max_error_rate": 0.02, "p95_ms": 300}',
            "approval": "pending",
        },
    )
    assert response.status_code == 302
    version = m.ModelVersion.objects.get(model=model)
    assert version.approved_bounds == {"max_error_rate": 0.02, "p95_ms": 300}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[NaN]", jsonsafe.JSON_NOT_FINITE),
        ("[1e999]", jsonsafe.JSON_NOT_FINITE),
        ('["\\ud800"]', jsonsafe.JSON_BAD_TEXT),
        ('{"a\\u0000": 1}', jsonsafe.JSON_BAD_TEXT),
        ("[" * 40 + "]" * 40, jsonsafe.JSON_TOO_DEEP.format(limit=jsonsafe.MAX_DEPTH)),
        ("[" * 100_000, jsonsafe.JSON_TOO_DEEP.format(limit=jsonsafe.MAX_DEPTH)),
        ("{", jsonsafe.JSON_INVALID),
        (b"\xff\xfe", jsonsafe.JSON_INVALID),
        ("1" * 5000, jsonsafe.JSON_INVALID),
    ],
)
def test_jsonsafe_refuses_each_hostile_value_with_its_reason(text, message):
    with pytest.raises(jsonsafe.UnsafeJSON) as caught:
        jsonsafe.loads(text)
    assert str(caught.value) == message


# -- items 4 and 5: hostile API bodies --------------------------------------------------
def hostile_bodies(valid: dict) -> list[str]:
    deep = '{"model": ' + "[" * 100_000 + "]" * 100_000 + "}"
    first_key = next(iter(valid))
    return [
        deep,
        json.dumps(valid)[:-1] + ', "x": NaN}',
        json.dumps(valid)[:-1] + ', "x": 1e999}',
        json.dumps({**valid, first_key: "\ud800"}, ensure_ascii=True),
        json.dumps({**valid, first_key: "a\u0000b"}),
        json.dumps({**valid, "environment": "\udc80"}, ensure_ascii=True),
    ]


EVENT = {
    "model": "fraud-scorer",
    "version": "3",
    "environment": "production",
    "endpoint": "https://fraud.internal/v1/score",
}


@pytest.mark.parametrize("index", range(6))
def test_hostile_deployment_event_bodies_answer_400_and_write_nothing(machine, index):
    body = hostile_bodies(EVENT)[index]
    response = machine.post(
        "/api/v1/deployment-events", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content[:300]
    response.json()  # a JSON error, whose text encodes
    assert not sm.DeploymentEvent.objects.exists()
    assert not m.Deployment.objects.exists()


@pytest.mark.parametrize("index", range(6))
def test_hostile_source_bodies_answer_400_and_write_nothing(machine, index):
    valid = {"name": "k8s", "kind": "kubernetes", "config": {"api_url": "https://k"}}
    body = hostile_bodies(valid)[index]
    if index in (1, 2):  # the hostile number inside the settings, too
        body = body.replace('"x":', '"config": {"page_size":', 1)[:-1] + "}}"
    response = machine.post("/api/v1/sources/", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    response.json()
    assert not sm.DataSource.objects.exists()


# -- item 6: long keys and NUL bytes ----------------------------------------------------
def test_a_valid_500_character_endpoint_records_its_deployment(machine):
    endpoint = "https://e.internal/" + "x" * (500 - len("https://e.internal/"))
    body = {**EVENT, "endpoint": endpoint}
    first = machine.post(
        "/api/v1/deployment-events", json.dumps(body), content_type="application/json"
    )
    assert first.status_code == 201, first.content[:300]
    deployment = m.Deployment.objects.get()
    assert deployment.endpoint == endpoint and len(deployment.external_id) <= 500
    again = machine.post(
        "/api/v1/deployment-events",
        json.dumps({**body, "commit": "second"}),
        content_type="application/json",
    )
    assert again.status_code in {200, 201}
    assert m.Deployment.objects.count() == 1


def test_a_nul_in_the_idempotency_key_is_a_400(machine):
    response = machine.post(
        "/api/v1/deployment-events",
        json.dumps(EVENT),
        content_type="application/json",
        headers={"Idempotency-Key": "abc\x00def"},
    )
    assert response.status_code == 400
    assert response.json()["Idempotency-Key"] == [IDEMPOTENCY_KEY_NOT_PRINTABLE]
    assert not sm.DeploymentEvent.objects.exists()


@pytest.mark.parametrize("url", ["/api/v1/models/", "/v1/traces"])
def test_a_nul_in_a_bearer_token_is_a_401_not_a_retry(url):
    client = Client(headers={"Authorization": "Bearer rp_ab\x00cd_secret"})
    response = (
        client.post(url, b"{}", content_type="application/json")
        if url == "/v1/traces"
        else client.get(url)
    )
    assert response.status_code == 401
    assert "Retry-After" not in response


def test_a_nul_in_a_lookup_query_answers(login, owner, team_a):
    AIModelFactory(name="fraud-scorer", team=team_a)
    response = login(owner).get(
        reverse("inventory:lookup", args=["aimodel"]), {"q": "fraud\x00"}
    )
    assert response.status_code == 200
    assert "fraud-scorer" in response.content.decode()


# -- item 7: ids past a 64-bit integer --------------------------------------------------
def test_a_team_member_id_past_64_bits_is_a_form_error(login, admin_user, team_a):
    response = login(admin_user).post(
        reverse("inventory:team_edit", args=[team_a.pk]),
        {
            "name": team_a.name,
            "slug": team_a.slug,
            "members": ["99999999999999999999999"],
        },
    )
    assert response.status_code in {200, 422}
    assert "not one of the available choices" in response.content.decode()
    assert not team_a.members.exists()


def test_a_model_id_past_64_bits_is_a_form_error(login, admin_user):
    response = login(admin_user).post(
        reverse("inventory:modelversion_create"),
        {"model": "99999999999999999999999", "version": "1", "approval": "pending"},
    )
    assert response.status_code in {200, 422}
    assert not m.ModelVersion.objects.exists()


# -- item 8: unknown API paths ----------------------------------------------------------
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_unknown_api_paths_answer_every_method_with_the_json_404(method, owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = getattr(client, method)("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")


# -- item 9: an absolute session lifetime -----------------------------------------------
def test_a_session_ends_12_hours_after_login_however_busy(client, password, settings):
    from freezegun import freeze_time

    UserFactory(username="busy")
    with freeze_time("2026-12-01 08:00:00") as frozen:
        assert (
            client.post(
                reverse("login"), {"username": "busy", "password": password}
            ).status_code
            == 302
        )
        assert client.session[LOGIN_AT_KEY] == int(time.time())
        # A request every ten minutes: never idle, and the session is saved each time.
        for _ in range(settings.SESSION_COOKIE_AGE // 600):
            frozen.tick(600)
            response = client.get(reverse("dashboard"))
            assert response.status_code == 200, "signed out before 12 hours"
            assert client.session[LAST_SEEN_KEY] == int(time.time())
        frozen.tick(61)
        response = client.get(reverse("dashboard"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_a_bearer_token_api_call_creates_no_session(client):
    """The absolute session lifetime starts at a session's login; an API call made with a
    token has no session and must not be given one."""
    from inventory import services as inventory_services

    _, raw = inventory_services.api_token_issue(
        actor=None, name="no-session", scopes=["read"], days=1
    )
    response = client.get("/api/v1/teams/", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 200
    assert "sessionid" not in response.cookies
    assert "__Host-sessionid" not in response.cookies
