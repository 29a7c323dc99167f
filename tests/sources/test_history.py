"""What sources leave behind besides the rows: history of governed fields, change notices
and audit events, written in the transaction that changed them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from audit.chain import audit_chain_verify
from audit.models import AuditEvent
from inventory import history
from inventory import models as m
from sources import models as sm
from sources.receivers import otlp
from sources.sync import runner
from tests.connectors import fake_apiserver
from tests.connectors.fake_apiserver import fixture_objects, list_file
from tests.factories import AIModelFactory, IdentityFactory, ModelVersionFactory
from tests.otlp.spans import chat_spans, protobuf_body
from tests.sync.conftest import list_connector, list_source  # noqa: F401

pytestmark = pytest.mark.django_db

k8s_source = fake_apiserver.k8s_source
FRAUD = "Deployment/ml-serving/fraud-scorer"


@pytest.fixture
def sync(django_capture_on_commit_callbacks, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"

    def do(source, **kw):
        with django_capture_on_commit_callbacks(execute=True):
            run, created = runner.request_sync(source=source, trigger="command", **kw)
        assert created
        run.refresh_from_db()
        return run

    return do


@pytest.fixture
def registry(db):
    fraud = AIModelFactory(name="fraud-scorer", source="mlflow:1", external_id="m1")
    return {
        "fraud-2": ModelVersionFactory(model=fraud, version="2"),
        "fraud-3": ModelVersionFactory(model=fraud, version="3"),
    }


def export(tmp_path: Path, name: str, *, fraud_version: str) -> SimpleUploadedFile:
    """The recorded cluster as a kubectl export, production fraud-scorer at a version."""
    objects = fixture_objects()
    for item in objects["deployments"]:
        meta = item["metadata"]
        if (meta["namespace"], meta["name"]) == ("ml-serving", "fraud-scorer"):
            meta["labels"]["mlflow.org/model-version"] = fraud_version
    path = list_file(tmp_path / name, objects)
    return SimpleUploadedFile(path.name, path.read_bytes(), "application/json")


def test_a_sync_that_moves_the_observed_version_writes_one_history_row(
    k8s_source, registry, sync, tmp_path
):
    source = k8s_source("", token=None)
    first = sync(source, upload=export(tmp_path, "a.json", fraud_version="3"))
    assert first.status == "succeeded", first.error
    deployment = m.Deployment.objects.get(source=source.source_label, external_id=FRAUD)
    assert deployment.observed_version == registry["fraud-3"]
    # Creating rows (and binding the identities created with them) is not a change.
    assert not m.FieldChange.objects.exists()
    new_bindings = AuditEvent.objects.get(action="nonhumanidentity.sync_bind_new")
    assert new_bindings.after["run"] == first.pk and new_bindings.after["bindings"]
    baseline = 0

    moved = sync(source, upload=export(tmp_path, "b.json", fraud_version="2"))
    assert moved.status == "succeeded", moved.error

    assert m.FieldChange.objects.count() == baseline + 1
    row = m.FieldChange.objects.get(run_id=moved.pk)
    assert (row.object_type, row.object_id, row.field) == (
        "inventory.deployment",
        deployment.pk,
        "observed_version",
    )
    assert row.before["observed_version_id"] == registry["fraud-3"].pk
    assert row.after["observed_version_id"] == registry["fraud-2"].pk
    assert (row.source, row.run_id, row.actor_kind) == (
        source.source_label,
        moved.pk,
        "source",
    )
    notice = m.ChangeNotice.objects.get(run_id=moved.pk)
    assert (notice.source, notice.run_id) == (source.source_label, moved.pk)
    event = AuditEvent.objects.get(
        action="deployment.sync_update", object_id=str(deployment.pk)
    )
    assert event.after["observed_version_id"] == registry["fraud-2"].pk
    assert event.before["observed_version_id"] == registry["fraud-3"].pk
    assert event.actor_kind == "source" and event.actor_label == source.source_label

    again = sync(source, upload=export(tmp_path, "c.json", fraud_version="2"))
    assert again.status == "succeeded" and again.updated == 0
    assert m.FieldChange.objects.count() == baseline + 1, "the same data again: none"
    assert not m.ChangeNotice.objects.filter(run_id=again.pk).exists()
    assert not AuditEvent.objects.filter(action="deployment.sync_update").exclude(
        pk=event.pk
    )
    assert audit_chain_verify().ok, "the batched events keep the chain verifiable"


def test_each_batch_names_what_it_created_and_the_run_what_went(
    list_source,  # noqa: F811
    settings,
    sync,
):
    settings.SYNC_BATCH_SIZE = 4
    source = list_source([{"id": f"m{i}", "name": f"model-{i}"} for i in range(10)])
    run = sync(source)
    created = AuditEvent.objects.filter(action="aimodel.sync_create").order_by("seq")
    assert created.count() == 3, "one event per committed batch"
    named = [row["external_id"] for e in created for row in e.after["created"]]
    assert sorted(named) == sorted(f"m{i}" for i in range(10))
    assert {e.object_id for e in created} == {str(source.pk)}
    assert {e.after["run"] for e in created} == {run.pk}
    pks = set(m.AIModel.objects.values_list("pk", flat=True))
    noticed = set(
        m.ChangeNotice.objects.filter(run_id=run.pk).values_list("object_id", flat=True)
    )
    assert noticed == pks

    source.config["records"] = source.config["records"][:7]
    source.save()
    second = sync(source)
    assert second.gone == 3
    gone = AuditEvent.objects.get(action="aimodel.sync_gone")
    assert sorted(r["external_id"] for r in gone.after["gone"]) == ["m7", "m8", "m9"]
    assert m.ChangeNotice.objects.filter(run_id=second.pk).count() == 3


def test_a_refused_record_is_neither_named_nor_announced(
    list_source,  # noqa: F811
    sync,
):
    source = list_source(
        [{"id": "ok", "name": "fine"}, {"id": "bad", "name": "x" * 300}]
    )
    run = sync(source)
    assert run.status == "partial"
    events = AuditEvent.objects.filter(action="aimodel.sync_create")
    assert [r["external_id"] for e in events for r in e.after["created"]] == ["ok"]
    assert m.ChangeNotice.objects.filter(run_id=run.pk).count() == 1


def test_identity_bindings_from_a_sync_are_history_on_both_sides(db):
    from sources.sync.engine import ApplyContext

    source = sm.DataSource.objects.create(name="Creds", kind="gcp_keys")
    run = sm.SyncRun.objects.create(source=source)
    ctx = ApplyContext(source=source, run=run)
    identity = IdentityFactory()
    from tests.factories import DeploymentFactory

    a, b = DeploymentFactory(), DeploymentFactory()
    identity.deployments.add(a)
    ctx.bind([identity.pk], {identity.pk: {b.pk}})

    rows = {
        (r.object_type, r.object_id): (r.before, r.after)
        for r in m.FieldChange.objects.all()
    }
    assert rows == {
        ("inventory.nonhumanidentity", identity.pk): ([a.pk], [b.pk]),
        ("inventory.deployment", a.pk): ([identity.pk], []),
        ("inventory.deployment", b.pk): ([], [identity.pk]),
    }
    event = AuditEvent.objects.get(action="nonhumanidentity.sync_bind")
    assert event.object_id == str(identity.pk)
    assert (event.before, event.after["deployments"]) == (
        {"deployments": [a.pk]},
        [b.pk],
    )


def test_traces_that_create_deployments_and_models_are_audited_once_per_push(
    client, telemetry_token
):
    otlp.reset_process_state()
    body = protobuf_body(chat_spans(otlp_start(), n=3))
    headers = {"Authorization": f"Bearer {telemetry_token}"}
    response = client.generic(
        "POST",
        "/v1/traces",
        data=body,
        content_type="application/x-protobuf",
        headers=headers,
    )
    assert response.status_code == 200, response.content
    deployment = m.Deployment.objects.get()
    model = deployment.model
    event = AuditEvent.objects.get(action=otlp.PUSH_CREATE_ACTION)
    assert event.after["deployments"] == [
        {"id": deployment.pk, "external_id": deployment.external_id}
    ]
    assert event.after["models"] == [{"id": model.pk, "external_id": model.external_id}]
    assert event.actor_kind == "source"
    # The telemetry token's own identity was announced when it was issued.
    tokens = {
        ("inventory.nonhumanidentity", pk)
        for pk in m.APIToken.objects.values_list("identity_id", flat=True)
    }
    assert set(
        m.ChangeNotice.objects.values_list("object_type", "object_id")
    ) - tokens == {
        ("inventory.deployment", deployment.pk),
        ("inventory.aimodel", model.pk),
    }

    otlp.reset_process_state()  # even without the cache, a known deployment is no news
    again = client.generic(
        "POST",
        "/v1/traces",
        data=body,
        content_type="application/x-protobuf",
        headers=headers,
    )
    assert again.status_code == 200
    assert AuditEvent.objects.filter(action=otlp.PUSH_CREATE_ACTION).count() == 1
    assert m.ChangeNotice.objects.count() == 2 + len(tokens)


def otlp_start():
    from datetime import UTC, datetime

    return datetime(2026, 3, 2, 10, 5, tzinfo=UTC)


@pytest.fixture
def telemetry_token(db):
    from inventory import services

    _, raw = services.api_token_issue(
        actor=None, name="collector", scopes=("telemetry",), days=30
    )
    return raw


def test_a_deploy_event_that_moves_the_version_writes_history_and_batched_events(
    token_for,
):
    principal, raw = token_for("deploy")
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    event = {
        "model": "fraud-scorer",
        "version": "3",
        "environment": "production",
        "endpoint": "https://fraud.internal/v1/score",
    }

    def send(body):
        return client.post(
            "/api/v1/deployment-events",
            json.dumps(body),
            content_type="application/json",
        )

    assert send(event).status_code == 201
    first = list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))
    assert first[-3:] == [
        "aimodel.create",
        "modelversion.create",
        "deployment.deploy_event",
    ]
    assert not m.FieldChange.objects.exists()

    assert send({**event, "version": "4"}).status_code == 201
    deployment = m.Deployment.objects.get(source__startswith="cicd:")
    row = m.FieldChange.objects.get()
    v3 = m.ModelVersion.objects.get(version="3")
    v4 = m.ModelVersion.objects.get(version="4")
    assert (row.object_id, row.field) == (deployment.pk, "observed_version")
    assert row.before["observed_version_id"] == v3.pk
    assert row.after["observed_version_id"] == v4.pk
    assert row.actor_label == f"token:{principal.token.prefix}"
    assert (
        m.ChangeNotice.objects.filter(
            object_type="inventory.deployment", object_id=deployment.pk
        ).count()
        == 2
    )


def test_the_history_reads_per_object_newest_first_in_keyset_pages(db):
    from tests.factories import DeploymentFactory

    deployment, other = DeploymentFactory(), DeploymentFactory()
    history.record_changes(
        deltas=[
            history.Delta("inventory.deployment", deployment.pk, "endpoint", i, i + 1)
            for i in range(5)
        ]
        + [history.Delta("inventory.deployment", other.pk, "endpoint", "x", "y")],
        source="kubernetes:1",
        run_id=7,
    )
    page, after = history.field_history(deployment, limit=2)
    assert [r.before for r in page] == [4, 3] and after == page[-1].pk
    page, after = history.field_history(deployment, before_id=after, limit=2)
    assert [r.before for r in page] == [2, 1]
    page, after = history.field_history(deployment, before_id=after, limit=2)
    assert [r.before for r in page] == [0] and after is None
    assert history.field_latest(deployment, "endpoint").after == 5
