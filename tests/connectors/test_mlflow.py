"""The MLflow connector against a real `mlflow server`, and its webhook endpoint.

One server serves the whole test session; each test works on its own models (a name prefix and
a `name LIKE` filter on its source), so the tests do not depend on their order.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from devtools.bench_mlflow import free_port
from inventory import models as m
from sources import models as sm
from sources.connectors.mlflow import MLflowConnector
from sources.sync import runner, secrets
from sources.sync.base import RevokeError
from tests.connectors.mlflow_server import (
    mlflow_client,
    mlflow_server_fixture,  # noqa: F401  (registers the `mlflow_server` fixture)
    rest,
)
from tests.factories import DeploymentFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db

ODD_NAME = 'o\'brien "odd" \\ %_ model'
WEBHOOK_SECRET = "whsec-test-0123456789"
WEBHOOK_WAIT_SECONDS = 20


def seed_calls(prefix: str) -> list:
    """Five models, eight versions: every approval state the connector maps.

    fraud-scorer: v1 rejected by tag, v2 champion (approved), v3 challenger, pending.
    credit-limit: v1 approved by tag, v2 archived stage, v3 deprecated by tag.
    legacy-ranker: retired by model tag; v1 champion, so retired wins over the alias.
    empty: no versions. And one model whose name needs quoting in a filter.
    """
    fraud, credit, legacy = (
        f"{prefix}-fraud-scorer",
        f"{prefix}-credit-limit",
        f"{prefix}-legacy-ranker",
    )
    return [
        ("create_run", {"experiment_id": "0"}),
        (
            "create_registered_model",
            {
                "name": fraud,
                "tags": {"owner": "risk-team", "risk_tier": "high"},
                "description": "Scores card transactions",
            },
        ),
        (
            "create_model_version",
            {
                "name": fraud,
                "source": "s3://models/fraud/1",
                "tags": {"approval_status": "rejected"},
            },
        ),
        (
            "create_model_version",
            {
                "name": fraud,
                "source": "s3://models/fraud/2",
                "run_id": "$0.run_id",
                "tags": {"git_sha": "abc2"},
            },
        ),
        (
            "create_model_version",
            {
                "name": fraud,
                "source": "s3://models/fraud/3",
                "tags": {"approval_status": "pending"},
            },
        ),
        (
            "set_registered_model_alias",
            {"name": fraud, "alias": "champion", "version": "2"},
        ),
        (
            "set_registered_model_alias",
            {"name": fraud, "alias": "challenger", "version": "3"},
        ),
        ("create_registered_model", {"name": credit}),
        (
            "create_model_version",
            {
                "name": credit,
                "source": "s3://models/credit/1",
                "tags": {"approval_status": "approved"},
            },
        ),
        ("create_model_version", {"name": credit, "source": "s3://models/credit/2"}),
        (
            "create_model_version",
            {
                "name": credit,
                "source": "s3://models/credit/3",
                "tags": {"deprecated": "true"},
            },
        ),
        (
            "transition_model_version_stage",
            {"name": credit, "version": "2", "stage": "Archived"},
        ),
        ("create_registered_model", {"name": legacy, "tags": {"lifecycle": "retired"}}),
        ("create_model_version", {"name": legacy, "source": "s3://models/legacy/1"}),
        (
            "set_registered_model_alias",
            {"name": legacy, "alias": "champion", "version": "1"},
        ),
        ("create_registered_model", {"name": f"{prefix}-empty"}),
        ("create_registered_model", {"name": f"{prefix}-{ODD_NAME}"}),
        (
            "create_model_version",
            {"name": f"{prefix}-{ODD_NAME}", "source": "s3://models/odd/1"},
        ),
    ]


PREFIXES = ("ro", "chg", "rev", "hook")
MODELS_PER_PREFIX = 5
VERSIONS_PER_PREFIX = 8


@pytest.fixture(scope="session")
def registry(mlflow_server):
    """The server, seeded once with MlflowClient: one set of models per test prefix.

    Session-scoped like the server: pytest-django runs transactional tests (the live
    webhook test) after all others, outside this module's run of tests.
    """
    calls = []
    for prefix in PREFIXES:
        calls += seed_calls(prefix)
    mlflow_client(mlflow_server, calls)
    return mlflow_server


@pytest.fixture
def sync(django_capture_on_commit_callbacks):
    """Ask for a run and let the (eager) task run when the request commits."""

    def do(source):
        with django_capture_on_commit_callbacks(execute=True):
            run, created = runner.request_sync(source=source, trigger="command")
        assert created
        run.refresh_from_db()
        return run

    return do


@pytest.fixture
def mlflow_source(db):
    def make(url, prefix=None, secret_values=None, **config):
        if prefix:
            config.setdefault("name_filter", f"name LIKE '{prefix}-%'")
        return sm.DataSource.objects.create(
            name=f"MLflow {prefix or 'x'} {sm.DataSource.objects.count()}",
            kind="mlflow",
            config={"tracking_uri": url, **config},
            secrets_encrypted=secrets.encrypt(secret_values or {}),
            schedule_minutes=0,
        )

    return make


def versions_of(source):
    return {
        v.external_id: v
        for v in m.ModelVersion.objects.filter(source=source.source_label)
    }


# ---------------------------------------------------------------------------
# Syncing
# ---------------------------------------------------------------------------
def test_sync_reads_models_versions_aliases_and_approval_across_pages(
    registry, mlflow_source, sync
):
    # Two models a page and two versions a page: every list is read over several pages.
    source = mlflow_source(registry.url, "ro", page_size=2)
    run = sync(source)
    assert run.status == "succeeded", run.error
    assert (run.seen, run.created, run.errors) == (
        MODELS_PER_PREFIX,
        MODELS_PER_PREFIX + VERSIONS_PER_PREFIX,
        0,
    )
    models = {
        a.external_id: a for a in m.AIModel.objects.filter(source=source.source_label)
    }
    assert set(models) == {
        "ro-fraud-scorer",
        "ro-credit-limit",
        "ro-legacy-ranker",
        "ro-empty",
        f"ro-{ODD_NAME}",
    }
    fraud = models["ro-fraud-scorer"]
    assert (fraud.name, fraud.description, fraud.provider, fraud.lifecycle) == (
        "ro-fraud-scorer",
        "Scores card transactions",
        "internal",
        "active",
    )
    assert models["ro-legacy-ranker"].lifecycle == "retired"

    versions = versions_of(source)
    assert len(versions) == VERSIONS_PER_PREFIX
    approval = {ext: v.approval for ext, v in versions.items()}
    assert approval == {
        "ro-fraud-scorer/1": "rejected",
        "ro-fraud-scorer/2": "approved",
        "ro-fraud-scorer/3": "pending",
        "ro-credit-limit/1": "approved",
        "ro-credit-limit/2": "deprecated",
        "ro-credit-limit/3": "deprecated",
        "ro-legacy-ranker/1": "retired",
        f"ro-{ODD_NAME}/1": "pending",
    }
    champion = versions["ro-fraud-scorer/2"]
    assert champion.model_id == fraud.pk
    assert champion.aliases == ["champion"]
    assert champion.tags == {"git_sha": "abc2"}
    assert champion.artifact_uri == "s3://models/fraud/2"
    assert len(champion.run_id) == 32
    assert champion.registry_status == "READY"
    assert champion.approved_at is not None and champion.approved_by is None
    assert versions["ro-fraud-scorer/3"].aliases == ["challenger"]
    assert versions["ro-fraud-scorer/3"].approved_at is None
    assert versions["ro-credit-limit/2"].registry_status == "READY / Archived"
    assert versions["ro-legacy-ranker/1"].aliases == ["champion"]

    again = sync(source)
    assert (again.created, again.updated, again.unchanged, again.gone) == (
        0,
        0,
        MODELS_PER_PREFIX + VERSIONS_PER_PREFIX,
        0,
    )


def test_registry_changes_move_approval_and_deployments_and_deleted_models_go(
    registry, mlflow_source, sync
):
    source = mlflow_source(registry.url, "chg")
    assert sync(source).status == "succeeded"
    fraud = m.AIModel.objects.get(source=source.source_label, name="chg-fraud-scorer")
    versions = versions_of(source)
    # A runtime serving v3 while the registry's champion is v2: drift, once synced.
    unset = DeploymentFactory(
        model=fraud,
        name="fraud-scorer-k8s",
        observed_version=versions["chg-fraud-scorer/3"],
    )
    hand_picked = ModelVersionFactory(model=fraud, version="hand-1")
    manual = DeploymentFactory(
        model=fraud, name="fraud-scorer-manual", approved_version=hand_picked
    )
    from_registry = DeploymentFactory(
        model=fraud,
        name="fraud-scorer-old",
        approved_version=versions["chg-fraud-scorer/1"],
    )

    settle = sync(source)
    assert settle.unchanged == MODELS_PER_PREFIX + VERSIONS_PER_PREFIX
    # Rule change (issue 7, item 5): the registry's champion is the model's baseline;
    # deployments follow it unless the committee pinned one (a hand-picked pin stays).
    fraud.refresh_from_db()
    unset.refresh_from_db()
    from_registry.refresh_from_db()
    champion_v2 = versions["chg-fraud-scorer/2"].pk
    assert fraud.baseline_version_id == champion_v2, "the registry's champion is set"
    assert unset.approved_version_id is None
    assert unset.baseline_version_id == champion_v2
    assert unset.version_drift
    assert from_registry.baseline_version_id == versions["chg-fraud-scorer/1"].pk
    manual.refresh_from_db()
    assert manual.baseline_version_id == hand_picked.pk, "a hand-picked pin is kept"

    mlflow_client(
        registry,
        [
            (
                "set_registered_model_alias",
                {"name": "chg-fraud-scorer", "alias": "champion", "version": "3"},
            ),
            (
                "transition_model_version_stage",
                {"name": "chg-credit-limit", "version": "1", "stage": "Archived"},
            ),
            ("delete_registered_model", {"name": "chg-legacy-ranker"}),
        ],
    )
    run = sync(source)
    assert run.status == "succeeded", run.error
    # fraud v2 loses the alias, v3 gains it, credit v1 is archived: three versions
    # change; the retired model and its version are gone.
    assert (run.seen, run.created, run.updated, run.gone) == (
        MODELS_PER_PREFIX - 1,
        0,
        3,
        2,
    )
    assert run.unchanged == MODELS_PER_PREFIX - 1 + VERSIONS_PER_PREFIX - 1 - 3
    after = versions_of(source)
    assert after["chg-fraud-scorer/2"].approval == "pending"
    assert after["chg-fraud-scorer/2"].aliases == []
    assert after["chg-fraud-scorer/3"].approval == "approved"
    assert after["chg-fraud-scorer/3"].aliases == ["challenger", "champion"]
    assert after["chg-credit-limit/1"].approval == "deprecated"
    assert after["chg-credit-limit/1"].registry_status == "READY / Archived"
    assert after["chg-legacy-ranker/1"].gone_at is not None
    legacy = m.AIModel.objects.get(
        source=source.source_label, external_id="chg-legacy-ranker"
    )
    assert legacy.gone_at is not None, "rows are marked gone, never deleted"

    unset = m.Deployment.objects.select_related("model").get(pk=unset.pk)
    manual = m.Deployment.objects.select_related("model").get(pk=manual.pk)
    assert unset.baseline_version_id == after["chg-fraud-scorer/3"].pk
    assert not unset.version_drift, "the champion moved to the version it runs"
    assert manual.baseline_version_id == hand_picked.pk
    moved = [
        c
        for c in run.changes
        if c["kind"] == "model" and "baseline_version_id" in c.get("fields", {})
    ]
    assert [c["external_id"] for c in moved] == ["chg-fraud-scorer"]
    # Each move the registry reported is its own audit event, by the source.
    events = AuditEvent.objects.filter(
        actor_kind="source", actor_label=source.source_label
    )
    # (Beside them, the sync's own per-object events record the other fields it wrote.)
    assert {
        (e.action, e.object_id)
        for e in events.filter(occurred_at__gte=run.started_at).exclude(
            action__contains=".sync_"
        )
    } == {
        ("modelversion.reopen", str(after["chg-fraud-scorer/2"].pk)),
        ("modelversion.approve", str(after["chg-fraud-scorer/3"].pk)),
        ("modelversion.deprecate", str(after["chg-credit-limit/1"].pk)),
        ("aimodel.baseline", str(fraud.pk)),
    }


def test_unreachable_server_fails_the_run_and_queues_a_retry(mlflow_source, sync):
    source = mlflow_source(f"http://127.0.0.1:{free_port()}")
    run = sync(source)
    assert run.status == "failed"
    assert "did not answer" in run.error
    retry = sm.SyncRun.objects.get(retry_of=run)
    assert (retry.status, retry.trigger) == ("queued", "retry")
    source.refresh_from_db()
    assert source.health == "failing"


def test_a_bad_filter_is_a_configuration_error_without_retry(
    registry, mlflow_source, sync
):
    source = mlflow_source(registry.url, name_filter="colour = 'blue'")
    run = sync(source)
    assert run.status == "failed"
    assert "MLflow rejected the request (HTTP 400)" in run.error
    assert not sm.SyncRun.objects.filter(retry_of=run).exists()


# ---------------------------------------------------------------------------
# Answers that are not a registry: recorded bodies replayed by a local HTTP server
# ---------------------------------------------------------------------------
@pytest.fixture
def canned_server():
    """A stdlib HTTP server on 127.0.0.1 answering every request with one status and body."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answer = {"status": 200, "body": b"", "type": "text/plain"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(answer["status"])
            self.send_header("Content-Type", answer["type"])
            self.send_header("Content-Length", str(len(answer["body"])))
            self.end_headers()
            self.wfile.write(answer["body"])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()

    def respond(status, body, content_type="text/plain"):
        answer.update(status=status, body=body.encode(), type=content_type)
        return f"http://127.0.0.1:{server.server_port}"

    yield respond
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "content_type", "expected", "retried"),
    [
        (
            403,
            "Invalid Host header - possible DNS rebinding attack detected",
            "text/plain",
            "--allowed-hosts",
            False,
        ),
        (
            401,
            "You are not authenticated.",
            "text/plain",
            "refused the credentials",
            False,
        ),
        (
            403,
            '{"error_code": "PERMISSION_DENIED"}',
            "application/json",
            "refused",
            False,
        ),
        (404, "<html>Not Found</html>", "text/html", "HTTP 404", False),
        (200, "<html>login</html>", "text/html", "did not answer with JSON", False),
        (503, "upstream down", "text/plain", "HTTP 503", True),
    ],
)
def test_error_answers_map_to_clear_failures(
    canned_server, mlflow_source, sync, status, body, content_type, expected, retried
):
    source = mlflow_source(canned_server(status, body, content_type))
    source.secrets_encrypted = secrets.encrypt({"token": "tok-secret-value"})
    source.save()
    run = sync(source)
    assert run.status == "failed"
    assert expected in run.error
    assert "tok-secret-value" not in run.error
    assert sm.SyncRun.objects.filter(retry_of=run).exists() == retried


# ---------------------------------------------------------------------------
# Revoking
# ---------------------------------------------------------------------------
def test_revoke_removes_the_alias_or_sets_the_tag_at_mlflow(
    registry, mlflow_source, sync
):
    source = mlflow_source(registry.url, "rev")
    sync(source)
    versions = versions_of(source)
    connector = MLflowConnector(source)

    said = connector.revoke(
        versions["rev-fraud-scorer/2"], runner.fetch_context(source)
    )
    assert (
        said
        == "Removed the alias 'champion' from rev-fraud-scorer version 2 in MLflow."
    )
    aliases = rest(registry, "registered-models/get", name="rev-fraud-scorer")[
        "registered_model"
    ]["aliases"]
    assert aliases == [{"alias": "challenger", "version": "3"}]
    with pytest.raises(RevokeError, match="does not carry the alias 'champion'"):
        connector.revoke(versions["rev-fraud-scorer/2"], runner.fetch_context(source))

    source.config["revoke_action"] = "set_tag"
    source.save()
    said = connector.revoke(
        versions["rev-credit-limit/1"], runner.fetch_context(source)
    )
    assert said == (
        "Set the tag approval_status=revoked on rev-credit-limit version 1 in MLflow."
    )
    tags = rest(registry, "model-versions/get", name="rev-credit-limit", version="1")[
        "model_version"
    ]["tags"]
    assert {"key": "approval_status", "value": "revoked"} in tags

    run = sync(source)
    assert run.updated == 2
    after = versions_of(source)
    assert after["rev-fraud-scorer/2"].approval == "pending"
    assert after["rev-credit-limit/1"].approval == "rejected"

    missing = ModelVersionFactory(
        model=after["rev-fraud-scorer/2"].model,
        version="99",
        source=source.source_label,
        external_id="rev-fraud-scorer/99",
    )
    with pytest.raises(RevokeError, match="MLflow has no version 99"):
        connector.revoke(missing, runner.fetch_context(source))


def test_revoke_refuses_what_is_not_its_own_and_a_server_that_is_down(mlflow_source):
    source = mlflow_source(f"http://127.0.0.1:{free_port()}")
    connector = MLflowConnector(source)
    other = ModelVersionFactory()
    with pytest.raises(RevokeError, match="did not come from this source"):
        connector.revoke(other, runner.fetch_context(source))
    ours = ModelVersionFactory(source=source.source_label, external_id="x/1")
    with pytest.raises(RevokeError, match="did not answer"):
        connector.revoke(ours, runner.fetch_context(source))
    with pytest.raises(RevokeError, match="Only model versions"):
        connector.revoke(ours.model, runner.fetch_context(source))


# ---------------------------------------------------------------------------
# Webhooks
# ---------------------------------------------------------------------------
@pytest.fixture
def queued_runs(settings):
    """Runs asked for by a webhook stay queued (memory broker), so a test can look at them."""
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "memory://"


def _wait_for(predicate, seconds=WEBHOOK_WAIT_SECONDS):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    return None


@pytest.fixture
def short_keepalive(monkeypatch):
    """MLflow keeps its webhook connection to the live server open. On SQLite the request
    thread holding it shares the test's in-memory connection, and closing it after the
    live server stopped sharing fails in that thread. A short socket timeout makes idle
    connections end during the test, which waits for their threads before it returns.
    """
    from django.test.testcases import QuietWSGIRequestHandler

    monkeypatch.setattr(QuietWSGIRequestHandler, "timeout", 1)
    yield
    _wait_for(
        lambda: (
            not any("process_request_thread" in t.name for t in threading.enumerate())
        )
    )


@pytest.mark.django_db(transaction=True)
def test_a_real_mlflow_webhook_triggers_a_sync(
    registry, mlflow_source, live_server, queued_runs, short_keepalive
):
    source = mlflow_source(
        registry.url, "hook", secret_values={"webhook_secret": WEBHOOK_SECRET}
    )
    url = live_server.url + reverse("hooks:mlflow", args=[source.pk])
    created, tested = mlflow_client(
        registry,
        [
            (
                "create_webhook",
                {
                    "name": f"runproof-{source.pk}",
                    "url": url,
                    "events": ["model_version_alias.created"],
                    "secret": WEBHOOK_SECRET,
                },
            ),
            ("test_webhook", {"webhook_id": "$0.webhook_id"}),
        ],
    )
    try:
        assert tested["success"] is True, tested
        assert tested["response_status"] == 202
        body = json.loads(tested["response_body"])
        assert body["created"] is True
        run = sm.SyncRun.objects.get(pk=body["run"])
        assert (run.source_id, run.trigger, run.status) == (
            source.pk,
            "webhook",
            "queued",
        )
        done = runner.execute_run(run.pk)
        assert done.status == "succeeded" and done.created == (
            MODELS_PER_PREFIX + VERSIONS_PER_PREFIX
        )

        # A real registry event, delivered by MLflow in the background.
        mlflow_client(
            registry,
            [
                (
                    "set_registered_model_alias",
                    {"name": "hook-fraud-scorer", "alias": "champion", "version": "3"},
                )
            ],
        )
        second = _wait_for(
            lambda: (
                sm.SyncRun.objects.filter(source=source, trigger="webhook")
                .exclude(pk=run.pk)
                .first()
            )
        )
        assert second is not None, "MLflow's alias webhook did not reach Runproof"
        runner.execute_run(second.pk)
        champion = m.ModelVersion.objects.get(
            source=source.source_label, external_id="hook-fraud-scorer/3"
        )
        assert champion.approval == "approved"
    finally:
        mlflow_client(
            registry, [("delete_webhook", {"webhook_id": created["webhook_id"]})]
        )


def sign(body: bytes, *, secret=WEBHOOK_SECRET, delivery="d-1", stamp=None):
    stamp = str(int(time.time()) if stamp is None else stamp)
    digest = hmac.new(
        secret.encode(), f"{delivery}.{stamp}.".encode() + body, hashlib.sha256
    ).digest()
    return {
        "HTTP_X_MLFLOW_SIGNATURE": "v1," + base64.b64encode(digest).decode(),
        "HTTP_X_MLFLOW_TIMESTAMP": stamp,
        "HTTP_X_MLFLOW_DELIVERY_ID": delivery,
    }


EVENT = json.dumps(
    {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2026-11-26T03:26:48.957365+00:00",
        "data": {"name": "fraud-scorer", "alias": "champion", "version": "5"},
    }
).encode()


@pytest.fixture
def hook(client, mlflow_source, queued_runs):
    source = mlflow_source(
        "http://127.0.0.1:9", secret_values={"webhook_secret": WEBHOOK_SECRET}
    )

    def post(body=EVENT, headers=None, source_id=None):
        return client.post(
            reverse("hooks:mlflow", args=[source_id or source.pk]),
            data=body,
            content_type="application/json",
            **(sign(body) if headers is None else headers),
        )

    post.source = source
    return post


def test_a_signed_webhook_asks_for_one_sync_and_repeats_collapse(hook):
    first = hook()
    assert first.status_code == 202
    run = sm.SyncRun.objects.get(source=hook.source)
    assert first.json() == {"run": run.pk, "created": True}
    assert run.trigger == "webhook"
    second = hook(headers=sign(EVENT, delivery="d-2"))
    assert second.status_code == 202
    assert second.json() == {"run": run.pk, "created": False}
    assert sm.SyncRun.objects.filter(source=hook.source).count() == 1


# Built when the test runs (lambdas), so the timestamps are relative to that moment.
@pytest.mark.parametrize(
    "make_headers",
    [
        lambda: {},
        lambda: sign(EVENT, secret="not-the-secret"),
        lambda: sign(EVENT, stamp=int(time.time()) - 400),
        lambda: sign(EVENT, stamp=int(time.time()) + 400),
        lambda: sign(EVENT, stamp="yesterday"),
        lambda: {**sign(EVENT), "HTTP_X_MLFLOW_SIGNATURE": "v1,not base64!"},
        lambda: {**sign(EVENT), "HTTP_X_MLFLOW_DELIVERY_ID": "other"},
    ],
    ids=[
        "unsigned",
        "wrong-secret",
        "old",
        "future",
        "bad-stamp",
        "garbage",
        "tampered",
    ],
)
def test_unsigned_forged_or_stale_webhooks_are_refused(hook, make_headers):
    response = hook(headers=make_headers())
    assert response.status_code == 401
    assert "error" in response.json()
    assert not sm.SyncRun.objects.exists()


def test_webhook_bodies_that_are_too_big_or_not_json(hook):
    big = b'{"entity": "model_version", "pad": "' + b"x" * (1024 * 1024) + b'"}'
    assert hook(body=big).status_code == 413
    for body in (b"not json", b"[1, 2]", b"\xff\xfe"):
        response = hook(body=body)
        assert response.status_code == 400, body
    assert hook(body=b'{"entity": "prompt", "action": "created"}').json() == {
        "ignored": "prompt"
    }
    assert not sm.SyncRun.objects.exists()


def test_webhooks_for_unknown_disabled_or_secretless_sources(
    hook, mlflow_source, client
):
    assert hook(source_id=999_999).status_code == 404
    assert hook(source_id=10**30).status_code == 404, "beyond any integer column"
    otlp = sm.DataSource.objects.create(name="otlp", kind="otlp")
    assert hook(source_id=otlp.pk).status_code == 404
    no_secret = mlflow_source("http://127.0.0.1:9")
    assert hook(source_id=no_secret.pk).status_code == 401
    hook.source.enabled = False
    hook.source.save()
    refused = hook()
    assert refused.status_code == 409 and "disabled" in refused.json()["error"]
    url = reverse("hooks:mlflow", args=[hook.source.pk])
    assert client.get(url).status_code == 405
    assert not sm.SyncRun.objects.exists()


def test_a_move_the_transition_table_forbids_is_a_skipped_record_not_applied(
    registry, mlflow_source, sync, risk
):
    """Issue 7, item 5: the registry reports through the same service as the committee.
    Its approval of a version arrives as an event by the source; after the committee
    retires that version, the registry's "approved" is refused, recorded with its reason."""
    from inventory import services

    source = mlflow_source(registry.url, "ro")
    assert sync(source).status == "succeeded"
    v2 = versions_of(source)["ro-fraud-scorer/2"]
    assert v2.approval == "approved"
    born = AuditEvent.objects.get(
        object_id=str(v2.pk), object_type="inventory.modelversion"
    )
    assert (born.action, born.actor_kind, born.actor_label) == (
        "modelversion.approve",
        "source",
        source.source_label,
    )
    assert born.before["approval"] == "pending"

    services.model_version_set_approval(actor=risk, version=v2, approval="retired")
    events_before = AuditEvent.objects.order_by("-seq").first().seq
    run = sync(source)
    v2.refresh_from_db()
    assert v2.approval == "retired", "the forbidden move was not applied"
    reason = services.REGISTRY_MOVE_REFUSED.format(
        name=str(v2), current="Retired", target="Approved"
    )
    assert list(
        sm.SyncError.objects.filter(run=run).values_list("external_id", "reason")
    ) == [("ro-fraud-scorer/2", reason)]
    assert run.errors == 1
    new = list(
        AuditEvent.objects.order_by("seq")
        .filter(seq__gt=events_before, object_type__startswith="inventory.")
        .values_list("action", "object_id", "actor_label")
    )
    assert new == [], "nothing applied, nothing audited (the run's own events aside)"
