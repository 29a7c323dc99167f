"""The GCP key and GitHub token connectors on uploaded exports (fixtures from the APIs' shapes)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from inventory import models as m
from sources import models as sm
from sources.sync import runner
from sources.sync.base import RevokeError
from sources.sync.revoke import revoke_at_source
from tests.factories import AIModelFactory, DeploymentFactory

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent.parent / "fixtures" / "credentials"
SA = "projects/acme-ml/serviceAccounts/{}@acme-ml.iam.gserviceaccount.com/keys/{}"


@pytest.fixture
def upload(django_capture_on_commit_callbacks, settings, tmp_path):
    """Sync `source` from a fixture file (or raw bytes), as an administrator's upload."""
    settings.MEDIA_ROOT = str(tmp_path / "media")

    def do(source, fixture: str | bytes):
        content = (
            fixture if isinstance(fixture, bytes) else (FIXTURES / fixture).read_bytes()
        )
        with django_capture_on_commit_callbacks(execute=True):
            run, created = runner.request_sync(
                source=source,
                trigger="upload",
                upload=SimpleUploadedFile("export.json", content),
            )
        assert created
        run.refresh_from_db()
        return run

    return do


def gcp_source(**config) -> sm.DataSource:
    return sm.DataSource.objects.create(
        name="GCP keys",
        kind="gcp_keys",
        config={
            "rules": "^svc-(?P<model>[a-z0-9-]+)$ => model\n"
            "^deploy-(?P<deployment>[a-z0-9-]+)$ => deployment",
            **config,
        },
    )


def github_source(**config) -> sm.DataSource:
    return sm.DataSource.objects.create(
        name="GitHub acme",
        kind="github_tokens",
        config={
            "rules": "^svc-(?P<model>[a-z0-9-]+)$ => model\n"
            "^(?P<deployment>deploy-[a-z0-9-]+)$ => deployment",
            **config,
        },
    )


# ---------------------------------------------------------------------------
# GCP
# ---------------------------------------------------------------------------
def test_gcp_rest_answer_skips_system_keys_and_reads_validity(upload):
    fraud = AIModelFactory(name="fraud-scorer")
    run = upload(gcp_source(), "gcp_keys_rest.json")

    assert (run.status, run.seen, run.created, run.errors) == ("succeeded", 2, 2, 0)
    forever = m.NonHumanIdentity.objects.get(
        external_id=SA.format(
            "svc-fraud-scorer", "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
        )
    )
    assert (
        forever.name == "svc-fraud-scorer@acme-ml.iam.gserviceaccount.com key 1a2b3c4d"
    )
    assert (forever.kind, forever.provider, forever.status) == (
        "access_key",
        "gcp",
        "active",
    )
    assert forever.issued_at == datetime(2023, 1, 15, 10, tzinfo=UTC)
    assert forever.expires_at is None, "valid until 9999 means it never expires"
    assert forever.model == fraud
    exposed = m.NonHumanIdentity.objects.get(name__endswith="key 9f8e7d6c")
    assert exposed.status == "disabled"
    assert exposed.expires_at == datetime(2099, 6, 1, tzinfo=UTC)
    assert not m.NonHumanIdentity.objects.filter(name__endswith="key 5c5c5c5c").exists()


def test_gcp_many_accounts_with_malformed_keys_is_a_partial_run(upload):
    support = AIModelFactory(name="support-llm")
    prod = DeploymentFactory(name="fraud-prod")
    run = upload(gcp_source(), "gcp_keys_many.json")

    assert run.status == "partial"
    # 5 user-managed entries: 3 good, one without a name, one with an unreadable date.
    assert (run.seen, run.created, run.errors) == (5, 3, 2)
    reasons = sorted(run.error_rows.values_list("reason", flat=True))
    assert reasons[0].startswith("A time is not readable")
    assert reasons[1].startswith("Not a service-account key")
    old = m.NonHumanIdentity.objects.get(name__endswith="key 00112233")
    assert old.status == "expired", "past validBeforeTime"
    assert old.model == support
    deploy_key = m.NonHumanIdentity.objects.get(name__startswith="deploy-fraud-prod@")
    assert list(deploy_key.deployments.all()) == [prod]
    assert deploy_key.model == prod.model


def test_gcp_gcloud_list_and_rerun_are_idempotent(upload):
    source = gcp_source()
    first = upload(source, "gcp_keys_gcloud.json")
    second = upload(source, "gcp_keys_gcloud.json")
    assert (first.created, second.created, second.unchanged) == (1, 0, 1)
    other = upload(source, "gcp_keys_rest.json")
    assert (other.created, other.gone) == (2, 1), "a key no longer exported is gone"


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("github_installations.json", "not a GCP service-account key export"),
        (
            b'{"keys": [{"name": "projects/p/serviceAccounts/a@p/keys/1"',
            "not valid JSON",
        ),
        (b"", "The file is empty."),
    ],
)
def test_gcp_wrong_or_broken_file_fails_clearly(upload, fixture, message):
    run = upload(gcp_source(), fixture)
    assert run.status == "failed" and message in run.error
    assert not m.NonHumanIdentity.objects.exists()


def test_gcp_keys_cannot_be_revoked_from_an_upload(upload, admin_user):
    upload(gcp_source(), "gcp_keys_gcloud.json")
    key = m.NonHumanIdentity.objects.get()
    with pytest.raises(RevokeError, match="cannot be revoked at its source"):
        revoke_at_source(actor=admin_user, obj=key)


# ---------------------------------------------------------------------------
# GitHub
# ---------------------------------------------------------------------------
def test_github_fine_grained_pats_from_paginated_gh_output(upload):
    fraud = AIModelFactory(name="fraud-scorer")
    prod = DeploymentFactory(name="deploy-fraud-prod")
    run = upload(github_source(), "github_fine_grained_pats.json")

    assert run.status == "partial" and (run.seen, run.created, run.errors) == (4, 3, 1)
    assert run.error_rows.get().reason == "token_expired is not true or false."
    bot = m.NonHumanIdentity.objects.get(external_id="github:fine-grained-pat:98716")
    assert bot.name == "svc-fraud-scorer (acme-ml-bot)"
    assert (bot.kind, bot.provider, bot.vendor, bot.status) == (
        "api_key",
        "github",
        "GitHub",
        "active",
    )
    assert bot.scopes == [
        "organization.members:read",
        "repository.actions:write",
        "repository.contents:write",
        "repository.metadata:read",
    ]
    assert bot.last_used_at == datetime(2026, 10, 2, 18, 15, tzinfo=UTC)
    assert bot.model == fraud
    expired = m.NonHumanIdentity.objects.get(
        external_id="github:fine-grained-pat:98717"
    )
    assert expired.status == "expired" and expired.last_used_at is None
    release = m.NonHumanIdentity.objects.get(
        external_id="github:fine-grained-pat:98730"
    )
    assert release.expires_at is None and list(release.deployments.all()) == [prod]


def test_github_credential_authorizations_by_type(upload):
    run = upload(github_source(), "github_credential_authorizations.json")

    assert (run.seen, run.created, run.errors) == (5, 4, 1)
    assert "Unknown credential_type 'GPG key'" in run.error_rows.get().reason
    rows = {
        i.external_id: i for i in m.NonHumanIdentity.objects.filter(provider="github")
    }
    pat = rows["github:credential:30233948"]
    assert (pat.name, pat.kind, pat.scopes) == (
        "svc-support-llm (acme-ml-bot)",
        "api_key",
        ["repo", "workflow", "write:packages"],
    )
    assert pat.last_used_at == datetime(2026, 10, 17, 21, 55, 7, tzinfo=UTC)
    assert rows["github:credential:32202196"].name == "build-runner-7 (frank)"
    oauth = rows["github:credential:358124641"]
    assert (oauth.kind, oauth.name) == ("oauth_app", "Visual Studio Code (gina)")
    app = rows["github:credential:39411394"]
    assert app.status == "expired", "authorized_credential_expires_at has passed"


def test_github_installations_wrapper(upload):
    run = upload(github_source(), "github_installations.json")
    assert (run.status, run.created) == ("succeeded", 2)
    ci = m.NonHumanIdentity.objects.get(external_id="github:installation:25381001")
    assert (ci.name, ci.kind, ci.status) == ("model-ci on acme", "oauth_app", "active")
    assert ci.scopes == ["checks:write", "contents:read", "metadata:read"]
    suspended = m.NonHumanIdentity.objects.get(name="old-triage-bot on acme")
    assert suspended.status == "disabled"


def test_github_wrong_file_fails_clearly(upload):
    run = upload(github_source(), "gcp_keys_rest.json")
    assert run.status == "failed"
    assert run.error.startswith("This file is not a GitHub token export")
    assert "keys" in run.error


def test_github_empty_export_marks_earlier_tokens_gone(upload):
    source = github_source()
    upload(source, "github_installations.json")
    run = upload(source, b'{"total_count": 0, "installations": []}')
    assert (run.status, run.seen, run.gone) == ("succeeded", 0, 2)


def test_rules_are_checked_when_settings_are_saved():
    from sources.connectors.github_tokens import GithubTokensConnector
    from sources.sync.services import clean_settings

    with pytest.raises(ValidationError) as exc:
        clean_settings(
            GithubTokensConnector, {"rules": "^svc-(?P<model>[a-z+ => model"}
        )
    assert exc.value.message_dict["config.rules"][0].startswith(
        "Line 1: the pattern is not a valid regular expression"
    )


def test_rules_saved_broken_fail_the_run_up_front(upload):
    source = gcp_source(rules="^svc-(?P<model>.+$ => model")
    run = upload(source, "gcp_keys_gcloud.json")
    assert run.status == "failed"
    assert run.error.startswith("The naming rules are invalid")
    assert "Line 1" in run.error
    assert not m.NonHumanIdentity.objects.exists()
