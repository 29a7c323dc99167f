"""Two test connectors (registered like tests/sync/conftest.py does) and helpers.

`test_api` is a pull source whose records are listed in its own settings, with settings of
every kind and two secrets; `test_file` syncs from an uploaded JSON list only. Both are
real Connector subclasses run by the real engine; nothing is mocked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from django.core.exceptions import ValidationError

from inventory import models as m
from inventory.api.authentication import TokenPrincipal
from inventory.services import api_token_issue
from sources.connectors import CONNECTORS
from sources.sync import runner, services
from sources.sync.base import (
    Connector,
    FetchContext,
    Malformed,
    Record,
    RevokeError,
    Setting,
    SourceConfigError,
)

FORBIDDEN_HOST = "This host is forbidden."


class ApiTestConnector(Connector):
    kind = "test_api"
    label = "Test API"
    description = "Records listed in the source's own settings: one 'id=name' a line."
    settings_spec = (
        Setting("url", "Base URL", required=True, kind="url"),
        Setting("records", "Records", kind="textarea", default=""),
        Setting("page_size", "Page size", kind="int", default=100),
        Setting("verify_tls", "Verify TLS", kind="bool", default=True),
        Setting(
            "mode",
            "Mode",
            kind="choice",
            choices=(("fast", "Fast"), ("slow", "Slow")),
            default="fast",
        ),
        Setting("token", "API token", secret=True, required=True),
        Setting("password", "Password", secret=True),
    )
    owns = (m.AIModel,)
    revocable = (m.NonHumanIdentity,)

    @classmethod
    def validate_settings(cls, settings):
        if "forbidden" in settings.get("url", ""):
            raise ValidationError({"url": FORBIDDEN_HOST})
        return settings

    def fetch(self, ctx: FetchContext) -> Iterator[Record | Malformed]:
        if not ctx.secrets.get("token"):
            raise SourceConfigError("No token.")
        lines = (ctx.settings.get("records") or "").splitlines()
        ctx.expect(len(lines))
        for line in lines:
            ext, _, name = line.partition("=")
            if name == "!":
                yield Malformed(ext, "Not a record.", line)
            else:
                yield Record(ext, name)

    def apply(self, batch, ctx) -> None:
        ctx.upsert(m.AIModel, [(r.external_id, {"name": r.payload}) for r in batch])

    def revoke(self, obj, ctx: FetchContext) -> str:
        if "refuse" in obj.name:
            raise RevokeError("The test source refused.")
        return f"Disabled {obj.external_id} at the test source."


class FileTestConnector(Connector):
    kind = "test_file"
    label = "Test file"
    description = "A JSON list of {id, name} uploaded by hand."
    pull = False
    upload = "required"
    upload_help = "A JSON list of objects with id and name."
    owns = (m.AIModel,)

    def fetch(self, ctx: FetchContext) -> Iterator[Record | Malformed]:
        with open(ctx.upload_path, "rb") as fp:
            items = json.load(fp)
        for item in items:
            if "name" not in item:
                yield Malformed(str(item.get("id", "")), "No name.", json.dumps(item))
            else:
                yield Record(str(item["id"]), item["name"])

    def apply(self, batch, ctx) -> None:
        ctx.upsert(m.AIModel, [(r.external_id, {"name": r.payload}) for r in batch])


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    """Uploaded source files go to the test's own folder, not the project's var/."""
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture(autouse=True)
def test_connectors(monkeypatch):
    monkeypatch.setitem(CONNECTORS, "test_api", f"{__name__}.ApiTestConnector")
    monkeypatch.setitem(CONNECTORS, "test_file", f"{__name__}.FileTestConnector")


@pytest.fixture
def api_source(db):
    """A test_api source with two records and a stored token."""

    def make(name="Registry", records="a=alpha\nb=beta", **kw):
        return services.source_create(
            actor=None,
            name=name,
            kind="test_api",
            config={"url": "https://registry.example.com", "records": records},
            secrets_given={"token": "s3cret-token-value"},
            **kw,
        )

    return make


@pytest.fixture
def file_source(db):
    def make(name="Upload"):
        return services.source_create(actor=None, name=name, kind="test_file")

    return make


@pytest.fixture
def sync(django_capture_on_commit_callbacks):
    """Ask for a run and let the (eager) task run when the request commits."""

    def do(source, **kw):
        with django_capture_on_commit_callbacks(execute=True):
            run, _ = runner.request_sync(source=source, trigger="command", **kw)
        run.refresh_from_db()
        return run

    return do


@pytest.fixture
def token_for(db):
    """(principal, raw token) for a new API token with the given scopes."""

    def make(*scopes: str):
        token, raw = api_token_issue(
            actor=None, actor_label="test", name="t", scopes=list(scopes), days=1
        )
        return TokenPrincipal(token), raw

    return make
