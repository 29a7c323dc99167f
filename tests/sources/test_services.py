"""sources.sync.services: who may, validation against settings_spec, secrets, audit."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from sources import models as sm
from sources.sync import secrets, services
from tests.sources.conftest import FORBIDDEN_HOST

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-token-value"


def create(actor, **kw):
    args = {
        "name": "Registry",
        "kind": "test_api",
        "config": {"url": "https://registry.example.com"},
        "secrets_given": {"token": TOKEN},
    }
    args.update(kw)
    return services.source_create(actor=actor, **args)


def errors_of(exc_info) -> dict[str, list[str]]:
    return exc_info.value.message_dict


def audit_text() -> str:
    return json.dumps(
        [(e.before, e.after, e.actor_label) for e in AuditEvent.objects.all()]
    )


def test_admin_creates_a_source_with_typed_settings_and_an_encrypted_secret(
    admin_user,
):
    source = create(
        admin_user,
        config={
            "url": "https://registry.example.com",
            "page_size": "50",
            "verify_tls": "false",
            "mode": "slow",
            "records": "",
        },
    )

    source.refresh_from_db()
    assert source.config == {
        "url": "https://registry.example.com",
        "page_size": 50,
        "verify_tls": False,
        "mode": "slow",
    }
    assert TOKEN not in source.secrets_encrypted
    assert secrets.decrypt(source.secrets_encrypted) == {"token": TOKEN}
    assert source.created_by == admin_user
    assert source.schedule_minutes == 60, "pull sources sync hourly by default"
    event = AuditEvent.objects.get(action="datasource.create")
    assert event.actor_id == admin_user.pk
    assert event.after["secrets_set"] == ["token"]
    assert event.after["secrets_changed"] == ["token"]
    assert TOKEN not in audit_text()
    assert "secrets_encrypted" not in event.after


@pytest.mark.parametrize("role", ["owner", "risk", "compliance", "auditor"])
def test_only_administrators_manage_sources(role, request, api_source):
    user = request.getfixturevalue(role)
    source = api_source()
    with pytest.raises(PermissionDenied):
        create(user, name="Other")
    with pytest.raises(PermissionDenied):
        services.source_update(actor=user, source=source, name="Renamed")
    with pytest.raises(PermissionDenied):
        services.source_delete(actor=user, source=source)
    with pytest.raises(PermissionDenied):
        services.sync_request(actor=user, source=source)
    assert not sm.SyncRun.objects.exists()
    assert sm.DataSource.objects.get().name == "Registry"


def test_tokens_need_the_sources_scope(token_for):
    reader, _ = token_for("read", "deploy")
    with pytest.raises(PermissionDenied):
        create(reader)
    manager, _ = token_for("sources")
    source = create(manager)
    event = AuditEvent.objects.get(action="datasource.create")
    assert event.actor_id is None
    assert event.actor_label == f"token:{manager.token.prefix}"
    assert source.created_by is None


@pytest.mark.parametrize(
    ("config", "secrets_given", "field", "message"),
    [
        ({}, {"token": "x"}, "config.url", services.SETTING_REQUIRED),
        ({"url": "ftp://x"}, {"token": "x"}, "config.url", services.NOT_A_URL),
        ({"url": "not a url"}, {"token": "x"}, "config.url", services.NOT_A_URL),
        (
            {"url": "https://forbidden.example.com"},
            {"token": "x"},
            "config.url",
            FORBIDDEN_HOST,
        ),
        (
            {"url": "https://a.example.com", "page_size": "many"},
            {"token": "x"},
            "config.page_size",
            services.NOT_A_NUMBER,
        ),
        (
            {"url": "https://a.example.com", "mode": "turbo"},
            {"token": "x"},
            "config.mode",
            "Choose one of: fast, slow.",
        ),
        (
            {"url": "https://a.example.com", "colour": "red"},
            {"token": "x"},
            "config.colour",
            services.UNKNOWN_SETTING,
        ),
        (
            {"url": "https://a.example.com", "records": ["a", "b"]},
            {"token": "x"},
            "config.records",
            services.NOT_TEXT,
        ),
        (
            {"url": "https://a.example.com"},
            {},
            "secrets.token",
            services.SECRET_REQUIRED,
        ),
        (
            {"url": "https://a.example.com"},
            {"token": "env:9-bad"},
            "secrets.token",
            services.BAD_ENV_NAME,
        ),
        (
            {"url": "https://a.example.com"},
            {"token": "x", "pin": "1"},
            "secrets.pin",
            services.UNKNOWN_SECRET,
        ),
    ],
)
def test_settings_and_secrets_are_checked_against_the_spec(
    admin_user, config, secrets_given, field, message
):
    with pytest.raises(ValidationError) as exc_info:
        create(admin_user, config=config, secrets_given=secrets_given)
    assert errors_of(exc_info)[field] == [message]
    assert not sm.DataSource.objects.exists()
    assert not AuditEvent.objects.exists()


def test_in_cluster_hosts_are_accepted_as_urls(admin_user):
    source = create(admin_user, config={"url": "http://mlflow:5000"})
    assert source.config["url"] == "http://mlflow:5000"


def test_unknown_kind_duplicate_name_and_bad_schedule(admin_user, api_source):
    api_source(name="Taken")
    with pytest.raises(ValidationError) as exc_info:
        create(admin_user, kind="nonsense")
    assert "kind" in errors_of(exc_info)
    with pytest.raises(ValidationError) as exc_info:
        create(admin_user, name="Taken", schedule_minutes=-1)
    assert errors_of(exc_info)["name"] == [services.NAME_TAKEN]
    assert errors_of(exc_info)["schedule_minutes"] == [services.SCHEDULE_RANGE]


def test_blank_secret_keeps_the_stored_one_and_changes_are_named_not_shown(
    admin_user, api_source
):
    source = api_source()

    services.source_update(
        actor=admin_user,
        source=source,
        name="Registry (prod)",
        secrets_given={"token": "", "password": "hunter2-pw"},
    )
    source.refresh_from_db()
    assert secrets.decrypt(source.secrets_encrypted) == {
        "token": TOKEN,
        "password": "hunter2-pw",
    }
    event = AuditEvent.objects.filter(action="datasource.update").get()
    assert event.before["name"] == "Registry"
    assert event.after["name"] == "Registry (prod)"
    assert event.after["secrets_changed"] == ["password"]
    assert event.after["secrets_set"] == ["password", "token"]

    services.source_update(
        actor=admin_user,
        source=source,
        secrets_given={"token": "env:REGISTRY_TOKEN"},
        clear_secrets=["password"],
    )
    source.refresh_from_db()
    assert services.describe_secrets(source) == {"token": "env:REGISTRY_TOKEN"}
    last = AuditEvent.objects.filter(action="datasource.update").order_by("-seq")[0]
    assert last.after["secrets_changed"] == ["password", "token"]
    text = audit_text()
    assert TOKEN not in text and "hunter2-pw" not in text


def test_clearing_a_required_secret_is_refused(admin_user, api_source):
    source = api_source()
    with pytest.raises(ValidationError) as exc_info:
        services.source_update(actor=admin_user, source=source, clear_secrets=["token"])
    assert errors_of(exc_info)["secrets.token"] == [services.SECRET_REQUIRED]
    source.refresh_from_db()
    assert secrets.decrypt(source.secrets_encrypted) == {"token": TOKEN}


def test_update_merges_settings_refuses_a_new_kind_and_records_nothing_unchanged(
    admin_user, api_source
):
    source = api_source()
    services.source_update(
        actor=admin_user, source=source, config={"page_size": 10, "records": None}
    )
    source.refresh_from_db()
    assert source.config == {"url": "https://registry.example.com", "page_size": 10}
    with pytest.raises(ValidationError) as exc_info:
        services.source_update(actor=admin_user, source=source, kind="test_file")
    assert errors_of(exc_info)["kind"] == [services.KIND_FIXED]
    before = AuditEvent.objects.count()
    services.source_update(actor=admin_user, source=source, config={})
    assert AuditEvent.objects.count() == before, "no change, no event"


def test_delete_is_audited_and_refused_while_a_run_is_active(admin_user, api_source):
    source = api_source()
    sm.SyncRun.objects.create(source=source, trigger="manual")
    with pytest.raises(ValidationError):
        services.source_delete(actor=admin_user, source=source)
    sm.SyncRun.objects.update(status="succeeded")
    services.source_delete(actor=admin_user, source=source)
    assert not sm.DataSource.objects.exists()
    event = AuditEvent.objects.get(action="datasource.delete")
    assert event.before["secrets_set"] == ["token"]
    assert TOKEN not in audit_text()


def test_sync_request_triggers_and_the_active_run_is_returned(
    admin_user, api_source, token_for
):
    source = api_source()
    run, created = services.sync_request(actor=admin_user, source=source)
    assert created and run.trigger == "manual" and run.requested_by == admin_user
    again, created = services.sync_request(actor=admin_user, source=source)
    assert (again.pk, created) == (run.pk, False)
    manager, _ = token_for("sources")
    dry, created = services.sync_request(actor=manager, source=source, dry_run=True)
    assert created and dry.trigger == "api" and dry.requested_by is None
    event = AuditEvent.objects.filter(action="datasource.sync_requested").order_by(
        "-seq"
    )[0]
    assert event.actor_label == f"token:{manager.token.prefix}"
    assert event.actor_kind == "token"
    sm.SyncRun.objects.update(status="succeeded")
    by_command, _ = services.sync_request(actor=None, source=source)
    assert by_command.trigger == "command"


def test_an_upload_over_the_limit_is_refused(admin_user, file_source, settings):
    settings.SOURCE_UPLOAD_MAX_BYTES = 10
    source = file_source()
    upload = SimpleUploadedFile("keys.json", b"[" + b" " * 20 + b"]")
    with pytest.raises(ValidationError) as exc_info:
        services.sync_request(actor=admin_user, source=source, upload=upload)
    assert errors_of(exc_info)["file"] == [
        services.UPLOAD_TOO_BIG.format(size="22\xa0bytes", limit="10\xa0bytes")
    ]
    assert not sm.SyncRun.objects.exists()


def test_a_secret_read_from_the_environment_when_the_sync_runs(
    admin_user, api_source, sync, monkeypatch
):
    source = api_source()
    services.source_update(
        actor=admin_user, source=source, secrets_given={"token": "env:RP_TEST_TOKEN"}
    )
    monkeypatch.delenv("RP_TEST_TOKEN", raising=False)
    failed = sync(source)
    assert failed.status == "failed" and "RP_TEST_TOKEN" in failed.error
    monkeypatch.setenv("RP_TEST_TOKEN", "from-env")
    ok = sync(source)
    assert (ok.status, ok.created) == ("succeeded", 2)


def test_file_sources_have_no_schedule(file_source):
    assert file_source().schedule_minutes == 0
