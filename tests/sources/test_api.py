"""/api/v1/sources/ and /api/v1/sync-runs/: scopes, validation, secrets write-only, syncs."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from audit.models import AuditEvent
from sources import models as sm
from sources.sync import secrets

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-token-value"
SOURCES = "/api/v1/sources/"


@pytest.fixture
def api(token_for):
    """A client whose calls carry a token with the given scopes."""

    def make(*scopes: str) -> Client:
        _, raw = token_for(*scopes)
        return Client(headers={"Authorization": f"Bearer {raw}"})

    return make


def post(client, url, data):
    return client.post(url, json.dumps(data), content_type="application/json")


def patch(client, url, data):
    return client.patch(url, json.dumps(data), content_type="application/json")


def new_source(**overrides):
    body = {
        "name": "Registry",
        "kind": "test_api",
        "config": {"url": "https://registry.example.com", "page_size": 20},
        "secrets": {"token": TOKEN},
    }
    body.update(overrides)
    return body


def test_every_endpoint_needs_a_token_with_the_sources_scope(api, api_source):
    source = api_source()
    run = sm.SyncRun.objects.create(source=source, trigger="manual", status="succeeded")
    calls = [
        ("get", SOURCES),
        ("post", SOURCES),
        ("get", f"{SOURCES}{source.pk}/"),
        ("patch", f"{SOURCES}{source.pk}/"),
        ("delete", f"{SOURCES}{source.pk}/"),
        ("post", f"{SOURCES}{source.pk}/sync/"),
        ("get", f"{SOURCES}{source.pk}/runs/"),
        ("get", f"/api/v1/sync-runs/{run.pk}/"),
    ]
    anonymous = Client()
    bad = Client(headers={"Authorization": "Bearer rp_nope_nope"})
    reader = api("read", "deploy", "telemetry")
    for method, url in calls:
        assert getattr(anonymous, method)(url).status_code == 401, (method, url)
        assert getattr(bad, method)(url).status_code == 401, (method, url)
        response = getattr(reader, method)(url, content_type="application/json")
        assert response.status_code == 403, (method, url)
        assert response.json() == {"detail": "This token lacks the 'sources' scope."}
    assert sm.DataSource.objects.count() == 1
    assert sm.SyncRun.objects.count() == 1


def test_list_and_detail_show_secrets_only_as_set(api, api_source):
    source = api_source()
    client = api("sources")

    listing = client.get(SOURCES)
    one = client.get(f"{SOURCES}{source.pk}/")

    assert listing.status_code == one.status_code == 200
    assert [s["name"] for s in listing.json()["results"]] == ["Registry"]
    body = one.json()
    assert body["secrets"] == {"token": "set"}
    assert body["config"]["url"] == "https://registry.example.com"
    assert body["kind_label"] == "Test API"
    assert body["url"] == f"http://testserver/sources/{source.pk}/"
    for response in (listing, one):
        assert TOKEN.encode() not in response.content
        assert b"secrets_encrypted" not in response.content


def test_create_validates_and_never_echoes_secrets(api):
    client = api("sources")

    created = post(client, SOURCES, new_source())

    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secrets"] == {"token": "set"}
    assert body["config"] == {"url": "https://registry.example.com", "page_size": 20}
    assert TOKEN.encode() not in created.content
    source = sm.DataSource.objects.get()
    assert secrets.decrypt(source.secrets_encrypted) == {"token": TOKEN}
    event = AuditEvent.objects.get(action="datasource.create")
    assert event.actor_label.startswith("token:")
    assert (event.actor_kind, event.actor_id) == ("token", None)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            new_source(config={"url": "nope"}),
            {"config": {"url": ["Enter a URL starting with http:// or https://."]}},
        ),
        (
            new_source(secrets={}),
            {
                "secrets": {
                    "token": [
                        "This secret is required: enter it, or env:VARIABLE to read it "
                        "from the environment."
                    ]
                }
            },
        ),
        (new_source(kind="nonsense"), {"kind": None}),
        (new_source(name=""), {"name": None}),
        (new_source(config=["not", "a", "dict"]), {"config": None}),
        (new_source(schedule_minutes=-5), {"schedule_minutes": None}),
        (new_source(team="no-such-team"), {"team": None}),
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, body, errors):
    response = post(api("sources"), SOURCES, body)
    assert response.status_code == 400, response.content
    payload = response.json()
    for field, expected in errors.items():
        assert field in payload
        if expected is not None:
            assert payload[field] == expected
    assert not sm.DataSource.objects.exists()


def test_a_body_that_is_not_json_is_a_400(api):
    response = api("sources").post(
        SOURCES, "{not json", content_type="application/json"
    )
    assert response.status_code == 400


def test_patch_keeps_blank_secrets_merges_settings_and_keeps_the_kind(
    api, api_source, team_a
):
    source = api_source()
    client = api("sources")
    url = f"{SOURCES}{source.pk}/"

    response = patch(
        client,
        url,
        {
            "config": {"page_size": 5, "records": None},
            "secrets": {"token": "", "password": "pw-2"},
            "team": team_a.slug,
            "enabled": False,
        },
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["config"] == {"url": "https://registry.example.com", "page_size": 5}
    assert body["secrets"] == {"password": "set", "token": "set"}
    assert body["team"]["slug"] == team_a.slug and body["enabled"] is False
    source.refresh_from_db()
    assert secrets.decrypt(source.secrets_encrypted)["token"] == TOKEN
    cleared = patch(client, url, {"clear_secrets": ["password"]})
    assert cleared.json()["secrets"] == {"token": "set"}
    kind = patch(client, url, {"kind": "test_file"})
    assert kind.status_code == 400 and "kind" in kind.json()
    env = patch(client, url, {"secrets": {"token": "env:REG_TOKEN"}})
    assert env.json()["secrets"] == {"token": "env:REG_TOKEN"}


def test_delete_and_404s(api, api_source):
    source = api_source()
    client = api("sources")
    assert client.delete(f"{SOURCES}{source.pk}/").status_code == 204
    assert not sm.DataSource.objects.exists()
    for url in (
        f"{SOURCES}{source.pk}/",
        f"{SOURCES}99999999999999999999/",
        f"{SOURCES}{source.pk}/runs/",
        "/api/v1/sync-runs/12345/",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response["Content-Type"] == "application/json"
    assert client.post(f"{SOURCES}{source.pk}/sync/").status_code == 404


def test_sync_answers_202_then_200_with_the_active_run(api, api_source):
    source = api_source()
    client = api("sources")
    url = f"{SOURCES}{source.pk}/sync/"

    first = post(client, url, {})
    again = post(client, url, {"dry_run": False})
    dry = post(client, url, {"dry_run": True})

    assert first.status_code == 202 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert first.json()["status"] == "queued" and first.json()["trigger"] == "api"
    assert dry.status_code == 202 and dry.json()["dry_run"] is True
    assert sm.SyncRun.objects.count() == 2
    bad = post(client, url, {"dry_run": "perhaps"})
    assert bad.status_code == 400 and "dry_run" in bad.json()


def test_sync_with_an_uploaded_file_runs_and_reports_errors(
    api, file_source, django_capture_on_commit_callbacks
):
    source = file_source()
    client = api("sources")
    url = f"{SOURCES}{source.pk}/sync/"
    payload = json.dumps([{"id": "1", "name": "one"}, {"id": "2"}]).encode()

    missing = client.post(url, {"dry_run": "false"})
    assert missing.status_code == 400
    assert "choose one" in json.dumps(missing.json())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"file": SimpleUploadedFile("x.json", payload)})

    assert response.status_code == 202, response.content
    run_id = response.json()["id"]
    detail = client.get(f"/api/v1/sync-runs/{run_id}/").json()
    assert (detail["status"], detail["created"], detail["errors"]) == ("partial", 1, 1)
    assert detail["trigger"] == "upload"
    assert detail["error_rows"][0]["reason"] == "No name."
    assert detail["changes"][0]["action"] == "created"
    runs = client.get(f"{SOURCES}{source.pk}/runs/").json()["results"]
    assert [r["id"] for r in runs] == [run_id]


def test_upload_too_big_and_push_kinds_are_400s(api, file_source, settings):
    settings.SOURCE_UPLOAD_MAX_BYTES = 8
    source = file_source()
    client = api("sources")
    big = client.post(
        f"{SOURCES}{source.pk}/sync/",
        {"file": SimpleUploadedFile("x.json", b"[" + b" " * 30 + b"]")},
    )
    assert big.status_code == 400 and "file" in big.json()
    cicd = post(client, SOURCES, {"name": "CI", "kind": "cicd"})
    assert cicd.status_code == 201
    push = post(client, f"{SOURCES}{cicd.json()['id']}/sync/", {})
    assert push.status_code == 400
    assert "receive data by push" in json.dumps(push.json())
    assert not sm.SyncRun.objects.exists()


def test_runs_are_listed_newest_first_and_paged(api, api_source):
    source = api_source()
    runs = [
        sm.SyncRun.objects.create(source=source, trigger="schedule", status="succeeded")
        for _ in range(3)
    ]
    client = api("sources")
    page = client.get(f"{SOURCES}{source.pk}/runs/?page_size=2").json()
    assert [r["id"] for r in page["results"]] == [runs[2].pk, runs[1].pk]
    rest = client.get(page["next"]).json()
    assert [r["id"] for r in rest["results"]] == [runs[0].pk]


def test_the_schema_documents_sources_runs_and_events(client):
    schema = client.get("/api/v1/openapi.json").json()
    for path in (
        "/api/v1/sources/",
        "/api/v1/sources/{id}/",
        "/api/v1/sources/{id}/sync/",
        "/api/v1/sources/{id}/runs/",
        "/api/v1/sync-runs/{id}/",
        "/api/v1/deployment-events/",
    ):
        assert path in schema["paths"], path
    sync = schema["paths"]["/api/v1/sources/{id}/sync/"]["post"]
    assert {"202", "200", "400", "401", "403", "404"} <= set(sync["responses"])
    assert "multipart/form-data" in sync["requestBody"]["content"]
    write = schema["components"]["schemas"]["SourceWrite"]["properties"]
    assert write["secrets"]["writeOnly"] is True
