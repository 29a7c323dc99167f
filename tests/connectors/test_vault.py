"""The Vault connector against a real OpenBao dev server with a file audit log."""

from __future__ import annotations

from datetime import timedelta

import hvac
import pytest
from django.utils import timezone

from audit.models import AuditEvent
from inventory import models as m
from sources import models as sm
from sources.connectors import vault
from sources.sync import runner, secrets
from sources.sync.revoke import revoke_at_source
from tests.connectors import openbao_server as bao_fixtures
from tests.connectors.openbao_server import start_openbao
from tests.factories import AIModelFactory, DeploymentFactory

pytestmark = pytest.mark.django_db

# The OpenBao fixtures, used by name below.
openbao_server = bao_fixtures.openbao_server
bao = bao_fixtures.bao

RULES = "^svc-(?P<model>[a-z0-9-]+)$ => model"


@pytest.fixture
def sync(django_capture_on_commit_callbacks):
    def do(source):
        with django_capture_on_commit_callbacks(execute=True):
            run, created = runner.request_sync(source=source, trigger="command")
        assert created
        run.refresh_from_db()
        return run

    return do


def make_source(server, token=None, **config) -> sm.DataSource:
    return sm.DataSource.objects.create(
        name="Vault",
        kind="vault",
        config={"url": server.url, "rules": RULES, **config},
        secrets_encrypted=secrets.encrypt({"token": token or server.root_token}),
    )


def by_name(name: str) -> m.NonHumanIdentity:
    return m.NonHumanIdentity.objects.get(name=name)


@pytest.fixture
def tokens(bao):
    """Tokens for two models and a deployment, one human login, and a secret read."""
    root = bao.client()
    root.sys.create_or_update_policy(
        "invoke-fraud-scorer",
        'path "secret/data/models/fraud-scorer" { capabilities = ["read"] }',
    )
    root.secrets.kv.v2.create_or_update_secret(
        path="models/fraud-scorer", secret={"endpoint": "https://fraud.internal"}
    )
    fraud = root.auth.token.create(
        policies=["invoke-fraud-scorer"],
        ttl="720h",
        display_name="svc-fraud-scorer",
        meta={"model": "fraud-scorer", "owner": "risk-team"},
    )["auth"]
    support = root.auth.token.create(
        policies=["default"], ttl="1h", display_name="svc-support-llm"
    )["auth"]
    deploy = root.auth.token.create(
        policies=["default"],
        ttl="24h",
        display_name="release-pipeline",
        meta={"deployment": "fraud-prod"},
    )["auth"]
    if "userpass/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("userpass")
    root.write("auth/userpass/users/alice", password="alice-pass", policies="default")
    hvac.Client(url=bao.url).auth.userpass.login("alice", "alice-pass")
    # The model's service reads its secret: the audit log now has its last use.
    bao.client(fraud["client_token"]).secrets.kv.v2.read_secret_version(
        path="models/fraud-scorer", raise_on_deleted_version=True
    )
    return {"fraud": fraud, "support": support, "deploy": deploy}


def test_sync_reads_tokens_policies_expiry_last_use_and_models(bao, tokens, sync):
    fraud_model = AIModelFactory(name="fraud-scorer")
    support_model = AIModelFactory(name="support-llm")
    prod = DeploymentFactory(name="fraud-prod", model=fraud_model)
    source = make_source(bao, audit_log_path=str(bao.audit_log))
    before = timezone.now() - timedelta(seconds=5)

    run = sync(source)

    assert run.status == "succeeded", run.error
    # root + three service tokens; alice's userpass login is a person's and is left out.
    assert (run.seen, run.created) == (4, 4)
    assert not m.NonHumanIdentity.objects.filter(name__contains="alice").exists()
    fraud = by_name("token-svc-fraud-scorer")
    assert fraud.external_id == f"vault:{tokens['fraud']['accessor']}"
    assert (fraud.kind, fraud.provider, fraud.status) == ("api_key", "vault", "active")
    assert fraud.scopes == ["default", "invoke-fraud-scorer"]
    assert fraud.model == fraud_model, "token metadata"
    assert fraud.last_used_at is not None and fraud.last_used_at >= before
    lifetime = fraud.expires_at - fraud.issued_at
    assert abs(lifetime - timedelta(hours=720)) < timedelta(seconds=1)
    support = by_name("token-svc-support-llm")
    assert support.model == support_model, "the naming rule on the display name"
    assert support.last_used_at is None, "never used"
    deploy = by_name("token-release-pipeline")
    assert list(deploy.deployments.all()) == [prod] and deploy.model == fraud_model
    root = m.NonHumanIdentity.objects.get(name__startswith="root token ")
    assert root.scopes == ["root"] and root.expires_at is None, "never expires"
    assert root.last_used_at is not None, "the sync itself uses the root token"

    again = sync(source)
    assert (again.created, again.unchanged + again.updated) == (0, 4)


def test_a_server_that_ignores_paging_is_read_once(bao, tokens, sync, monkeypatch):
    """OpenBao answers every accessor whatever `limit` says; a page exactly PAGE_SIZE
    long makes the pager ask again, and the repeated list must not duplicate tokens."""
    listed = bao.client().auth.token.list_accessors()["data"]["keys"]
    monkeypatch.setattr(vault, "PAGE_SIZE", len(listed))
    run = sync(make_source(bao))
    assert (run.status, run.seen, run.created) == ("succeeded", 4, 4)
    assert len(listed) == 5, "root, three service tokens and alice's login"


def test_revoke_at_source_revokes_the_token_in_openbao(bao, tokens, sync, admin_user):
    source = make_source(bao)
    sync(source)
    target = by_name("token-svc-support-llm")

    message = revoke_at_source(actor=admin_user, obj=target)

    assert "Revoked the Vault token token-svc-support-llm" in message
    with pytest.raises(hvac.exceptions.InvalidRequest, match="invalid accessor"):
        bao.client().auth.token.lookup_accessor(tokens["support"]["accessor"])
    target.refresh_from_db()
    assert target.status == "revoked"
    event = AuditEvent.objects.get(action="nonhumanidentity.revoke_at_source")
    assert (event.before["status"], event.after["status"]) == ("active", "revoked")

    run = sync(source)
    target.refresh_from_db()
    assert run.gone == 1 and target.gone_at is not None and target.status == "revoked"


def test_a_token_that_vanishes_mid_sync_is_recorded_not_fatal(
    bao, tokens, sync, monkeypatch
):
    client = bao.client()
    doomed = client.auth.token.create(policies=["default"], ttl="1h")["auth"]
    real_list = vault._list_accessors

    def list_then_expire(c):
        listed = list(real_list(c))
        # Between the list and the lookups the token goes, as an expiring one would.
        client.auth.token.revoke_accessor(doomed["accessor"])
        return iter(listed)

    monkeypatch.setattr(vault, "_list_accessors", list_then_expire)
    run = sync(make_source(bao))

    assert run.status == "partial" and run.errors == 1 and run.created == 4
    error = run.error_rows.get()
    assert error.external_id == f"vault:{doomed['accessor']}"
    assert error.reason == vault.GONE_ACCESSOR


def test_a_token_without_the_right_policy_is_a_config_error(bao, sync):
    weak = bao.client().auth.token.create(policies=["default"], ttl="1h")["auth"]
    run = sync(make_source(bao, token=weak["client_token"]))
    assert run.status == "failed"
    assert run.error == vault.REFUSED.format(status=403)
    assert weak["client_token"] not in run.error
    assert not sm.SyncRun.objects.filter(retry_of=run).exists()


def test_server_down_fails_keeps_identities_and_queues_a_retry(sync, tmp_path):
    server = start_openbao(tmp_path / "short-lived")
    try:
        source = make_source(server)
        first = sync(source)
        assert first.status == "succeeded" and first.created >= 1
    finally:
        server.stop()

    run = sync(source)

    assert run.status == "failed" and run.error.startswith("Vault did not answer at")
    retry = sm.SyncRun.objects.get(retry_of=run)
    assert retry.status == "queued" and retry.retry_number == 1
    assert m.NonHumanIdentity.objects.filter(gone_at__isnull=True).count() == (
        first.created
    )
    source.refresh_from_db()
    assert source.health == "failing"


def test_an_unreadable_audit_log_is_a_config_error(bao, sync, tmp_path):
    run = sync(make_source(bao, audit_log_path=str(tmp_path / "missing.log")))
    assert run.status == "failed" and "cannot be read" in run.error
