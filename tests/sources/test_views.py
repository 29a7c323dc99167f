"""Source pages: who sees what, forms per kind, sync / dry run / upload, runs, revoke,
and where synced rows came from in the inventory lists."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from pytest_django.asserts import assertTemplateUsed

from audit.models import AuditEvent
from inventory import models as m
from sources import models as sm
from sources.sync import runner, secrets, services
from sources.views import RUN_ALREADY_ACTIVE
from tests.factories import IdentityFactory

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-token-value"
READ_ONLY = ["owner", "risk", "compliance", "auditor"]
LIST = reverse("sources:source_list")


def detail(source) -> str:
    return reverse("sources:source_detail", args=[source.pk])


def sync_url(source) -> str:
    return reverse("sources:source_sync", args=[source.pk])


def form_data(**overrides) -> dict:
    data = {
        "name": "Registry",
        "enabled": "on",
        "schedule_minutes": "30",
        "team": "",
        "cfg_url": "https://registry.example.com",
        "cfg_records": "a=alpha",
        "cfg_page_size": "100",
        "cfg_verify_tls": "on",
        "cfg_mode": "fast",
        "secret_token": TOKEN,
        "secret_password": "",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# ---------------------------------------------------------------------------
# Reading: everyone signed in; settings for administrators; secrets never
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("role", [*READ_ONLY, "admin_user"])
def test_everyone_reads_sources_but_only_administrators_see_settings(
    role, request, login, api_source
):
    user = request.getfixturevalue(role)
    source = api_source()
    sm.DataSource.objects.filter(pk=source.pk).update(
        health="failing", last_error="<script>alert('x')</script> refused"
    )
    client = login(user)

    listing = client.get(LIST)
    page = client.get(detail(source))

    assert listing.status_code == page.status_code == 200
    for body in (listing.content.decode(), page.content.decode()):
        assert "Registry" in body
        assert "<script>alert" not in body
        assert "&lt;script&gt;alert" in body
        assert TOKEN not in body
    is_admin = role == "admin_user"
    body = page.content.decode()
    assert ("https://registry.example.com" in body) is is_admin
    assert ('data-testid="sync-form"' in body) is is_admin
    assert ("New source" in listing.content.decode()) is is_admin
    assert "https://registry.example.com" not in listing.content.decode()


def test_stored_secrets_are_described_never_shown(login, admin_user, api_source):
    source = api_source()
    services.source_update(
        actor=None, source=source, secrets_given={"password": "env:REG_PASSWORD"}
    )
    body = login(admin_user).get(detail(source)).content.decode()
    assert TOKEN not in body
    assert re.search(r'data-testid="secret-token">set<', body)
    assert "from the environment variable REG_PASSWORD" in body
    edit = login(admin_user).get(reverse("sources:source_edit", args=[source.pk]))
    text = edit.content.decode()
    assert TOKEN not in text and "secrets_encrypted" not in text
    assert source.secrets_encrypted not in text


def test_list_filters_sorts_exports_and_answers_htmx(
    login, admin_user, api_source, file_source
):
    healthy = api_source(name="Alpha registry")
    sm.DataSource.objects.filter(pk=healthy.pk).update(health="healthy")
    file_source(name="Beta uploads")
    disabled = api_source(name="Gamma registry", enabled=False)
    client = login(admin_user)

    def names(url):
        body = client.get(url).content.decode()
        return re.findall(r'href="/sources/\d+/">([^<]+)</a>', body)

    assert names(LIST) == ["Alpha registry", "Beta uploads", "Gamma registry"]
    assert names(LIST + "?sort=-name") == [
        "Gamma registry",
        "Beta uploads",
        "Alpha registry",
    ]
    assert names(LIST + "?health=healthy") == ["Alpha registry"]
    assert names(LIST + "?enabled=false") == ["Gamma registry"]
    assert names(LIST + "?q=upload") == ["Beta uploads"]
    fragment = client.get(LIST + "?enabled=false", headers={"HX-Request": "true"})
    assert "<html" not in fragment.content.decode()
    export = client.get(LIST + "?export=csv")
    assert export["Content-Type"].startswith("text/csv")
    csv_text = b"".join(export.streaming_content).decode()
    assert csv_text.lstrip("\ufeff").startswith("id,name,kind,enabled,health")
    assert f"{disabled.pk},Gamma registry,test_api,false" in csv_text
    assert TOKEN not in csv_text


def test_list_shows_the_last_run(login, auditor, api_source, sync):
    source = api_source()
    run = sync(source)
    body = login(auditor).get(LIST).content.decode()
    assert reverse("sources:run_detail", args=[run.pk]) in body
    assert "Succeeded" in body and "every 60 min" in body


# ---------------------------------------------------------------------------
# Create and edit
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("role", READ_ONLY)
def test_read_only_roles_cannot_open_the_forms(role, request, login, api_source):
    source = api_source()
    client = login(request.getfixturevalue(role))
    for url in (
        reverse("sources:source_new"),
        reverse("sources:source_create", args=["test_api"]),
        reverse("sources:source_edit", args=[source.pk]),
        reverse("sources:source_delete", args=[source.pk]),
    ):
        assert client.get(url).status_code == 403
    assert (
        client.post(
            reverse("sources:source_create", args=["test_api"]), form_data(name="X")
        ).status_code
        == 403
    )
    assert sm.DataSource.objects.count() == 1


def test_admin_creates_a_source_from_the_form(login, admin_user):
    client = login(admin_user)
    kinds = client.get(reverse("sources:source_new")).content.decode()
    assert (
        "Test API" in kinds
        and reverse("sources:source_create", args=["test_api"]) in kinds
    )
    assert (
        client.get(reverse("sources:source_create", args=["nope"])).status_code == 404
    )

    response = client.post(
        reverse("sources:source_create", args=["test_api"]), form_data()
    )

    source = sm.DataSource.objects.get()
    assert response.status_code == 302 and response["Location"] == detail(source)
    assert source.config == {
        "url": "https://registry.example.com",
        "records": "a=alpha",
        "page_size": 100,
        "verify_tls": True,
        "mode": "fast",
    }
    assert source.schedule_minutes == 30
    assert secrets.decrypt(source.secrets_encrypted) == {"token": TOKEN}
    assert AuditEvent.objects.filter(action="datasource.create").count() == 1


def test_invalid_settings_come_back_with_422_beside_their_fields(login, admin_user):
    client = login(admin_user)
    url = reverse("sources:source_create", args=["test_api"])

    response = client.post(
        url,
        form_data(
            cfg_url="https://forbidden.example.com", cfg_page_size="x", cfg_mode="turbo"
        ),
    )

    assert response.status_code == 422
    body = response.content.decode()
    assert "This host is forbidden." in body
    assert "Enter a whole number." in body
    assert TOKEN not in body, "a typed secret is never echoed back"
    assert not sm.DataSource.objects.exists()
    missing = client.post(url, form_data(secret_token=""))
    assert missing.status_code == 422
    assert "This field is required." in missing.content.decode()
    fragment = client.post(
        url, form_data(cfg_url="ftp://x"), headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 422
    assert "<html" not in fragment.content.decode()
    assert services.NOT_A_URL in fragment.content.decode()


def test_edit_keeps_a_blank_secret_and_clears_on_request(login, admin_user, api_source):
    source = api_source()
    services.source_update(
        actor=None, source=source, secrets_given={"password": "pw-1"}
    )
    client = login(admin_user)
    url = reverse("sources:source_edit", args=[source.pk])
    form = client.get(url).content.decode()
    assert 'name="clear_password"' in form and "pw-1" not in form

    response = client.post(
        url, form_data(name="Registry 2", secret_token="", clear_password="on")
    )

    assert response.status_code == 302
    source.refresh_from_db()
    assert source.name == "Registry 2"
    assert secrets.decrypt(source.secrets_encrypted) == {"token": TOKEN}
    event = AuditEvent.objects.filter(action="datasource.update").order_by("-seq")[0]
    assert event.after["secrets_changed"] == ["password"]


def test_admin_deletes_a_source(login, admin_user, api_source):
    source = api_source()
    client = login(admin_user)
    url = reverse("sources:source_delete", args=[source.pk])
    assert "Delete the source" in client.get(url).content.decode()
    response = client.post(url)
    assert response.status_code == 302 and response["Location"] == LIST
    assert not sm.DataSource.objects.exists()


# ---------------------------------------------------------------------------
# Sync now, dry run, upload
# ---------------------------------------------------------------------------
def test_sync_now_redirects_to_the_finished_run(
    login, admin_user, api_source, django_capture_on_commit_callbacks
):
    source = api_source()
    client = login(admin_user)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(sync_url(source), {"dry_run": "false"})

    run = sm.SyncRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("sources:run_detail", args=[run.pk])
    assert (run.status, run.trigger, run.created, run.dry_run) == (
        "succeeded",
        "manual",
        2,
        False,
    )
    page = client.get(response["Location"])
    assertTemplateUsed(page, "sources/run_detail.html")
    body = page.content.decode()
    assert 'data-testid="count-created">2<' in body
    assert 'hx-trigger="every' not in body, "a finished run is not polled"


def test_sync_while_a_run_is_active_lands_on_that_run(login, admin_user, api_source):
    source = api_source()
    active = sm.SyncRun.objects.create(source=source, trigger="schedule")
    client = login(admin_user)

    response = client.post(sync_url(source), {"dry_run": "false"}, follow=True)

    assert response.redirect_chain[-1][0] == reverse(
        "sources:run_detail", args=[active.pk]
    )
    assert RUN_ALREADY_ACTIVE in response.content.decode()
    assert sm.SyncRun.objects.count() == 1
    hx = client.post(
        sync_url(source), {"dry_run": "false"}, headers={"HX-Request": "true"}
    )
    assert hx["HX-Redirect"] == reverse("sources:run_detail", args=[active.pk])


@pytest.mark.parametrize("role", READ_ONLY)
def test_read_only_roles_cannot_sync(role, request, login, api_source):
    source = api_source()
    client = login(request.getfixturevalue(role))
    assert client.post(sync_url(source), {"dry_run": "false"}).status_code == 403
    assert client.post(sync_url(source), {"dry_run": "true"}).status_code == 403
    assert not sm.SyncRun.objects.exists()


def test_dry_run_keeps_nothing(
    login, admin_user, api_source, django_capture_on_commit_callbacks
):
    source = api_source()
    with django_capture_on_commit_callbacks(execute=True):
        login(admin_user).post(sync_url(source), {"dry_run": "true"})
    run = sm.SyncRun.objects.get()
    assert run.dry_run and run.status == "succeeded" and run.created == 2
    assert not m.AIModel.objects.exists()
    body = login(admin_user).get(run.get_absolute_url()).content.decode()
    assert "What would change" in body and 'data-testid="dry-run-flag"' in body


def test_upload_sync_counts_and_records_errors(
    login, admin_user, file_source, django_capture_on_commit_callbacks
):
    source = file_source()
    client = login(admin_user)
    page = client.get(detail(source)).content.decode()
    assert "A JSON list of objects with id and name." in page
    assert "Upload and sync" in page
    payload = json.dumps(
        [
            {"id": "k1", "name": "one"},
            {"id": "k2"},
            {"id": "<b>k3</b>", "name": "three"},
        ]
    ).encode()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            sync_url(source),
            {"dry_run": "false", "file": SimpleUploadedFile("list.json", payload)},
        )

    run = sm.SyncRun.objects.get()
    assert response.status_code == 302
    assert (run.status, run.trigger, run.created, run.errors) == (
        "partial",
        "upload",
        2,
        1,
    )
    body = client.get(run.get_absolute_url()).content.decode()
    assert "No name." in body
    assert "&lt;b&gt;k3&lt;/b&gt;" in body and "<b>k3</b>" not in body
    assert 'data-testid="count-errors">1<' in body
    # The counters say what they count, in the same words as the runs list's headers.
    assert (
        'title="records the source sent this run, skipped ones included">Seen<' in body
    )
    assert "count rows of models, the same on every run" in body


def test_upload_missing_or_too_big_is_a_clear_form_error(
    login, admin_user, file_source, settings
):
    source = file_source()
    client = login(admin_user)
    missing = client.post(sync_url(source), {"dry_run": "false"})
    assert missing.status_code == 422
    assert "This field is required." in missing.content.decode()

    settings.SOURCE_UPLOAD_MAX_BYTES = 16
    big = client.post(
        sync_url(source),
        {"dry_run": "false", "file": SimpleUploadedFile("big.json", b"[]" + b" " * 40)},
    )
    assert big.status_code == 422
    assert "the limit is 16" in big.content.decode()
    assert 'data-testid="upload-error"' in big.content.decode()
    assert not sm.SyncRun.objects.exists()


def test_push_sources_explain_how_to_send_instead_of_syncing(login, admin_user):
    source = services.source_create(actor=None, name="CI", kind="cicd")
    client = login(admin_user)
    body = client.get(detail(source)).content.decode()
    assert "curl -fsS -X POST http://testserver/api/v1/deployment-events" in body
    assert 'data-testid="sync-form"' not in body
    refused = client.post(sync_url(source), {"dry_run": "false"})
    assert refused.status_code == 422
    assert "receive data by push" in refused.content.decode()
    assert not sm.SyncRun.objects.exists()


# ---------------------------------------------------------------------------
# Run page and its progress fragment
# ---------------------------------------------------------------------------
def test_progress_fragment_polls_while_running_and_answers_286_at_the_end(
    login, auditor, api_source
):
    source = api_source()
    run = sm.SyncRun.objects.create(
        source=source, trigger="manual", status="running", seen=7, phase="applying"
    )
    client = login(auditor)
    url = reverse("sources:run_progress", args=[run.pk])

    running = client.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200
    body = running.content.decode()
    assert 'hx-trigger="every 1s"' in body and f'hx-get="{url}"' in body
    assert "7 records so far" in body
    assert "<progress" in body and 'value="' not in body, (
        "indeterminate without an estimate"
    )

    sm.SyncRun.objects.filter(pk=run.pk).update(expected=28)
    body = client.get(url).content.decode()
    assert 'value="25"' in body

    sm.SyncRun.objects.filter(pk=run.pk).update(
        status="succeeded", finished_at=timezone.now(), created=7, seen=7
    )
    done = client.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286
    text = done.content.decode()
    assert "hx-trigger" not in text
    assert 'data-testid="count-created">7<' in text and 'value="100"' in text


def test_run_page_shows_the_sample_of_changes(login, risk, api_source, sync):
    source = api_source()
    sync(source)
    services.source_update(actor=None, source=source, config={"records": "a=ALPHA"})
    run = sync(source)
    body = login(risk).get(run.get_absolute_url()).content.decode()
    assert run.gone == 1 and run.updated == 1
    assert "<code>name</code>: alpha → ALPHA" in body
    assert "gone" in body


# ---------------------------------------------------------------------------
# Query counts do not grow with runs or sources
# ---------------------------------------------------------------------------
def _runs(source, n):
    now = timezone.now()
    sm.SyncRun.objects.bulk_create(
        [
            sm.SyncRun(
                source=source,
                trigger="schedule",
                status="succeeded",
                requested_at=now - timedelta(minutes=i),
                started_at=now - timedelta(minutes=i),
                finished_at=now - timedelta(minutes=i) + timedelta(seconds=3),
                created=i,
                requested_by=None,
            )
            for i in range(n)
        ]
    )


def test_query_counts_stay_constant(
    login, admin_user, api_source, django_assert_max_num_queries
):
    client = login(admin_user)
    client.get(LIST)  # the first request stamps the session
    first = api_source(name="s-000")
    _runs(first, 3)
    for i in range(1, 3):
        _runs(api_source(name=f"s-{i:03d}"), 1)

    def count(url):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx)

    small = (count(LIST), count(detail(first)))
    _runs(first, 27)
    for i in range(3, 30):
        _runs(api_source(name=f"s-{i:03d}"), 1)
    large = (count(LIST), count(detail(first)))
    assert small == large
    with django_assert_max_num_queries(8):
        client.get(LIST)
    with django_assert_max_num_queries(8):
        client.get(detail(first))


# ---------------------------------------------------------------------------
# Revoke at source
# ---------------------------------------------------------------------------
@pytest.fixture
def synced_identity(api_source):
    source = api_source()
    identity = IdentityFactory(
        name="svc-scorer", source=source.source_label, external_id="key-1"
    )
    return source, identity


def test_admin_revokes_a_synced_identity_after_confirming(
    login, admin_user, synced_identity
):
    source, identity = synced_identity
    client = login(admin_user)
    page = client.get(identity.get_absolute_url()).content.decode()
    url = reverse("sources:revoke", args=["identity", identity.pk])
    assert f'action="{url}"' in page and "Revoke at source" in page
    assert "Reported by" in page and source.name in page

    confirm = client.get(url)
    assert confirm.status_code == 200
    assert 'data-testid="confirm-revoke"' in confirm.content.decode()
    identity.refresh_from_db()
    assert identity.status == "active", "the confirmation page changes nothing"

    response = client.post(url, follow=True)

    identity.refresh_from_db()
    assert identity.status == "revoked"
    assert "Disabled key-1 at the test source." in response.content.decode()
    assert AuditEvent.objects.filter(
        action="nonhumanidentity.revoke_at_source"
    ).exists()


def test_a_refused_revoke_is_shown_and_changes_nothing(login, admin_user, api_source):
    source = api_source()
    identity = IdentityFactory(
        name="svc-refuse-me", source=source.source_label, external_id="key-2"
    )
    response = login(admin_user).post(
        reverse("sources:revoke", args=["identity", identity.pk]), follow=True
    )
    identity.refresh_from_db()
    assert identity.status == "active"
    assert "The test source refused." in response.content.decode()


@pytest.mark.parametrize("role", ["risk", "auditor"])
def test_non_admins_get_no_revoke_button_and_403(role, request, login, synced_identity):
    _, identity = synced_identity
    client = login(request.getfixturevalue(role))
    assert (
        "Revoke at source"
        not in client.get(identity.get_absolute_url()).content.decode()
    )
    url = reverse("sources:revoke", args=["identity", identity.pk])
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403
    identity.refresh_from_db()
    assert identity.status == "active"


def test_hand_entered_and_unrevocable_objects_have_no_revoke(
    login, admin_user, file_source
):
    manual = IdentityFactory(name="typed-in")
    source = file_source()
    from_file = IdentityFactory(
        name="from-file", source=source.source_label, external_id="x"
    )
    client = login(admin_user)
    for obj in (manual, from_file):
        assert (
            "Revoke at source"
            not in client.get(obj.get_absolute_url()).content.decode()
        )
        assert (
            client.get(reverse("sources:revoke", args=["identity", obj.pk])).status_code
            == 404
        )
    assert client.get(reverse("sources:revoke", args=["team", 1])).status_code == 404


# ---------------------------------------------------------------------------
# Where inventory rows came from
# ---------------------------------------------------------------------------
def test_inventory_lists_show_and_filter_by_source_and_gone(
    login, auditor, api_source, sync
):
    source = api_source(records="a=alpha\nb=beta")
    sync(source)
    services.source_update(actor=None, source=source, config={"records": "a=alpha"})
    sync(source)
    m.AIModel.objects.create(name="typed-model")
    client = login(auditor)
    url = reverse("inventory:aimodel_list")

    def names(query):
        body = client.get(url + query).content.decode()
        return sorted(re.findall(r'href="/inventory/models/\d+/">([^<]+)</a>', body))

    assert names("") == ["alpha", "beta", "typed-model"]
    assert names(f"?source={source.source_label}") == ["alpha", "beta"]
    assert names("?source=manual") == ["typed-model"]
    assert names("?gone=gone") == ["beta"]
    assert names("?gone=present") == ["alpha", "typed-model"]
    body = client.get(url).content.decode()
    assert f'<a href="{detail(source)}">Registry</a>' in body
    assert "typed in" in body and ">gone</span>" in body
    assert f'<option value="{source.source_label}">Registry</option>' in body
    beta = m.AIModel.objects.get(name="beta")
    header = client.get(beta.get_absolute_url()).content.decode()
    assert "Reported by" in header and "gone</span> since" in header


def test_source_column_costs_one_query_whatever_the_rows(
    login, admin_user, api_source, sync, django_assert_max_num_queries
):
    source = api_source(records="\n".join(f"m{i}=model-{i}" for i in range(40)))
    sync(source)
    client = login(admin_user)
    client.get(reverse("inventory:aimodel_list"))
    with django_assert_max_num_queries(10):
        response = client.get(reverse("inventory:aimodel_list"))
    assert response.content.decode().count(f'href="{detail(source)}"') == 40


def test_runner_connector_class_is_the_registered_one(api_source):
    assert runner.connector_class("test_api").label == "Test API"


# ---------------------------------------------------------------------------
# /admin/: sources through the services; runs, usage and events read-only
# ---------------------------------------------------------------------------
def test_admin_site_writes_sources_through_the_services(login, admin_user):
    client = login(admin_user)
    add = "/admin/sources/datasource/add/"
    assert client.get(add).status_code == 200
    data = {
        "name": "MLflow prod",
        "kind": "mlflow",
        "enabled": "on",
        "schedule_minutes": "30",
        "team": "",
        "config": json.dumps({"tracking_uri": "http://mlflow:5000/"}),
        "secrets_input": f"token={TOKEN}\n",
        "clear_secrets": "",
    }

    bad = client.post(add, {**data, "config": json.dumps({"tracking_uri": "nope"})})
    assert (
        bad.status_code == 200 and "tracking_uri: Enter a URL" in bad.content.decode()
    )
    assert not sm.DataSource.objects.exists()
    response = client.post(add, data)

    assert response.status_code == 302, response.content.decode()[-2000:]
    source = sm.DataSource.objects.get()
    assert source.config["tracking_uri"] == "http://mlflow:5000"
    assert secrets.decrypt(source.secrets_encrypted) == {"token": TOKEN}
    create = AuditEvent.objects.get(action="datasource.create")
    assert create.actor_id == admin_user.pk and TOKEN not in json.dumps(create.after)

    change = f"/admin/sources/datasource/{source.pk}/change/"
    page = client.get(change).content.decode()
    assert TOKEN not in page and "token: set" in page
    edited = client.post(
        change, {**data, "name": "MLflow", "secrets_input": "", "kind": "vault"}
    )
    assert edited.status_code == 302
    source.refresh_from_db()
    assert (source.name, source.kind) == ("MLflow", "mlflow"), "kind is read-only"
    assert secrets.decrypt(source.secrets_encrypted) == {"token": TOKEN}
    assert AuditEvent.objects.filter(action="datasource.update").count() == 1

    deleted = client.post(
        f"/admin/sources/datasource/{source.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 302
    assert AuditEvent.objects.filter(action="datasource.delete").count() == 1


def test_admin_site_shows_runs_usage_and_events_read_only(
    login, admin_user, auditor, file_source, django_capture_on_commit_callbacks
):
    source = file_source()
    payload = json.dumps([{"id": "1"}]).encode()
    with django_capture_on_commit_callbacks(execute=True):
        login(admin_user).post(
            sync_url(source),
            {"dry_run": "false", "file": SimpleUploadedFile("x.json", payload)},
        )
    run = sm.SyncRun.objects.get()
    client = login(admin_user)
    page = client.get(f"/admin/sources/syncrun/{run.pk}/change/")
    assert page.status_code == 200 and "No name." in page.content.decode()
    for app, name in (
        ("sources", "syncrun"),
        ("sources", "syncerror"),
        ("inventory", "usagehour"),
        ("sources", "deploymentevent"),
    ):
        url = f"/admin/{app}/{name}/"
        expected = 404 if name == "syncerror" else 200
        assert client.get(url).status_code == expected, url
    assert client.get("/admin/sources/syncrun/add/").status_code == 403
    assert login(auditor).get("/admin/sources/datasource/").status_code == 302


def test_versions_from_a_registry_that_can_revoke_get_the_button(
    login, admin_user, api_source
):
    registry = services.source_create(
        actor=None,
        name="MLflow",
        kind="mlflow",
        config={"tracking_uri": "http://mlflow:5000"},
    )
    from tests.factories import ModelVersionFactory

    synced = ModelVersionFactory(source=registry.source_label, external_id="fraud/3")
    other = ModelVersionFactory(source=api_source().source_label, external_id="x/1")
    client = login(admin_user)
    url = reverse("sources:revoke", args=["modelversion", synced.pk])
    page = client.get(synced.get_absolute_url()).content.decode()
    assert f'action="{url}"' in page and "Reported by" in page
    confirm = client.get(url).content.decode()
    assert "MLflow Model Registry" in confirm and "fraud/3" in confirm
    assert (
        "Revoke at source" not in client.get(other.get_absolute_url()).content.decode()
    )


@pytest.mark.django_db
def test_old_admin_addresses_of_sources_redirect_to_the_sources_app(login, admin_user):
    """Sources moved from the inventory app to their own: bookmarks keep working."""
    client = login(admin_user)
    response = client.get("/admin/inventory/syncrun/7/change/?x=1")
    assert response.status_code == 301
    assert response["Location"] == "/admin/sources/syncrun/7/change/?x=1"
    assert client.get("/admin/inventory/datasource/").status_code == 301


def test_a_disabled_source_offers_no_sync_and_says_how_to_enable_it(
    login, admin_user, api_source
):
    source = api_source(enabled=False)
    page = login(admin_user).get(detail(source)).content.decode()
    assert 'data-testid="sync-now"' not in page
    assert 'data-testid="sync-disabled"' in page
    # The runner refuses it too, so the button would only have led to an error.
    response = login(admin_user).post(sync_url(source), {"dry_run": "false"})
    assert sm.SyncRun.objects.filter(source=source).count() == 0
    assert response.status_code in (302, 400, 409, 422)
