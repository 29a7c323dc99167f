"""manage.py sources: the same services as the UI, acting as the operator ("command")."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from sources import models as sm
from sources.sync import secrets

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-token-value"


def run(*args) -> str:
    out = io.StringIO()
    call_command("sources", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def stdin(monkeypatch):
    def feed(text: str) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO(text))

    return feed


def test_add_show_and_list(stdin, team_a):
    stdin(TOKEN + "\n")
    out = run(
        "add",
        "--kind", "test_api",
        "--name", "Registry",
        "--set", "url=https://registry.example.com",
        "--set", "page_size=25",
        "--secret", "token=-",
        "--secret", "password=env:REG_PASSWORD",
        "--schedule", "15",
        "--team", team_a.slug,
    )  # fmt: skip
    source = sm.DataSource.objects.get()
    assert f"Added source 'Registry' (id {source.pk}, test_api)." in out
    assert source.config == {"url": "https://registry.example.com", "page_size": 25}
    assert secrets.decrypt(source.secrets_encrypted) == {
        "token": TOKEN,
        "password": "env:REG_PASSWORD",
    }
    assert (source.schedule_minutes, source.team) == (15, team_a)
    event = AuditEvent.objects.get(action="datasource.create")
    assert event.actor_label == "command" and event.actor_id is None

    shown = run("show", "Registry")
    assert "url = https://registry.example.com" in shown
    assert "token: set" in shown and "password: env:REG_PASSWORD" in shown
    assert TOKEN not in shown
    listed = run("list")
    assert "Registry" in listed and "every 15 min" in listed
    assert run("show", str(source.pk)).startswith("Registry")


def test_invalid_input_is_a_command_error_naming_the_setting():
    with pytest.raises(CommandError, match=r"config.url: Enter a URL"):
        run(
            "add",
            "--kind",
            "test_api",
            "--name",
            "R",
            "--set",
            "url=nope",
            "--secret",
            "token=x",
        )
    with pytest.raises(CommandError, match="key=value"):
        run("add", "--kind", "test_api", "--name", "R", "--set", "url")
    with pytest.raises(CommandError, match="kind: Unknown kind 'nope'"):
        run("add", "--kind", "nope", "--name", "R")
    with pytest.raises(CommandError, match="No source named 'ghost'"):
        run("show", "ghost")
    with pytest.raises(CommandError, match="No team"):
        run("add", "--kind", "test_file", "--name", "F", "--team", "x")
    assert not sm.DataSource.objects.exists()


def test_set_changes_settings_secrets_and_state(api_source, team_a):
    api_source()
    out = run(
        "set", "Registry",
        "--name", "Registry 2",
        "--set", "mode=slow",
        "--unset", "records",
        "--secret", "password=pw",
        "--schedule", "0",
        "--team", team_a.slug,
        "--disable",
    )  # fmt: skip
    assert "Saved source 'Registry 2'." in out
    source = sm.DataSource.objects.get()
    assert source.name == "Registry 2"
    assert source.config == {"url": "https://registry.example.com", "mode": "slow"}
    assert (source.schedule_minutes, source.enabled, source.team) == (0, False, team_a)
    assert secrets.decrypt(source.secrets_encrypted) == {
        "token": TOKEN,
        "password": "pw",
    }
    run("set", "Registry 2", "--clear-secret", "password", "--no-team", "--enable")
    source.refresh_from_db()
    assert secrets.decrypt(source.secrets_encrypted) == {"token": TOKEN}
    assert source.team is None and source.enabled
    event = AuditEvent.objects.filter(action="datasource.update").order_by("-seq")[0]
    assert event.actor_label == "command"
    assert event.after["secrets_changed"] == ["password"]


def test_sync_wait_runs_in_process_and_prints_the_counts(api_source):
    source = api_source()
    out = run("sync", "Registry", "--wait")
    runs = list(sm.SyncRun.objects.all())
    assert len(runs) == 1 and runs[0].status == "succeeded"
    assert runs[0].trigger == "command"
    assert f"Queued run #{runs[0].pk} of 'Registry'." in out
    assert "seen 2 created 2 updated 0 unchanged 0 gone 0 errors 0" in out
    source.refresh_from_db()
    assert source.health == "healthy"
    assert "created 2" in run("runs", "Registry")


def test_sync_without_wait_only_queues_and_a_second_ask_gets_the_same_run(api_source):
    api_source()
    first = run("sync", "Registry", "--dry-run")
    second = run("sync", "Registry", "--dry-run")
    run_row = sm.SyncRun.objects.get()
    assert f"Queued run #{run_row.pk} of 'Registry' (dry run)." in first
    assert f"Already queued or running: run #{run_row.pk}" in second


def test_sync_from_a_file(file_source, tmp_path):
    file_source()
    path = tmp_path / "list.json"
    path.write_text(
        json.dumps([{"id": "1", "name": "one"}, {"id": "2", "name": "two"}])
    )
    out = run("sync", "Upload", "--file", str(path), "--wait")
    assert "created 2" in out
    assert sm.SyncRun.objects.get().trigger == "upload"
    with pytest.raises(CommandError, match="No such file"):
        run("sync", "Upload", "--file", str(tmp_path / "missing.json"))
    with pytest.raises(CommandError, match="choose one"):
        run("sync", "Upload")


def test_a_failed_run_is_a_command_error(api_source):
    source = api_source()
    from sources.sync import services

    services.source_update(
        actor=None, source=source, secrets_given={"token": "env:RP_MISSING_VAR"}
    )
    with pytest.raises(CommandError, match="failed"):
        run("sync", "Registry", "--wait")
    assert sm.SyncRun.objects.get().status == "failed"


def test_tick_asks_for_due_syncs(api_source, file_source):
    api_source()
    file_source()
    out = run("tick")
    assert "scheduled=1" in out
    assert sm.SyncRun.objects.filter(trigger="schedule").count() == 1
    assert "No runs yet." in run("runs", "Upload")
