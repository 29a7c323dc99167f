"""How detection runs after changes: a push through the real HTTP stack (a deployment
event, OTLP spans), then the change consumer; twice changes nothing; the consumer is also
asked for when the announcing transaction commits; a pushed deployment gets its model's
approved baseline at once."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from audit.models import AuditEvent
from governance import detection_runner, tasks
from governance.models import Finding
from inventory import history, services
from inventory import models as im
from sources.receivers import otlp
from tests.factories import AIModelFactory, DeploymentFactory, ModelVersionFactory
from tests.otlp.spans import ENDPOINT, chat_spans, protobuf_body

pytestmark = pytest.mark.django_db
K = Finding.Kind

EVENT = {
    "model": "fraud-scorer",
    "version": "3",
    "environment": "production",
    "endpoint": "https://fraud.internal/v1/score",
    "pipeline_run": "https://ci.example.com/runs/1234",
}


@pytest.fixture(autouse=True)
def _fresh_receiver_cache():
    otlp.reset_process_state()
    yield
    otlp.reset_process_state()


@pytest.fixture
def pipeline():
    _, raw = services.api_token_issue(
        actor=None, actor_label="test", name="ci", scopes=["deploy"], days=1
    )
    return Client(headers={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def collector():
    _, raw = services.api_token_issue(
        actor=None, name="collector", scopes=["telemetry"], days=1
    )
    return Client(headers={"Authorization": f"Bearer {raw}"})


def deploy(client, **changes):
    response = client.post(
        "/api/v1/deployment-events",
        json.dumps({**EVENT, **changes}),
        content_type="application/json",
    )
    assert response.status_code in (200, 201), response.content
    return im.Deployment.objects.get(pk=response.json()["deployment"]["id"])


def spans(client, start, **kw):
    response = client.generic(
        "POST",
        "/v1/traces",
        data=protobuf_body(chat_spans(start, **kw)),
        content_type="application/x-protobuf",
    )
    assert response.status_code == 200, response.content
    return response


def wake_ups(callbacks) -> int:
    return sum(1 for c in callbacks if c is history._send_consumer_task)


def kinds_of(subject_id, subject_type="deployment"):
    return set(
        Finding.objects.filter(
            subject_type=subject_type, subject_id=subject_id
        ).values_list("kind", flat=True)
    )


def state():
    return sorted(
        Finding.objects.values_list("kind", "subject_id", "status", "evidence_key")
    )


def test_a_deployment_event_then_the_consumer_makes_the_findings(pipeline):
    d = deploy(pipeline)
    assert im.ChangeNotice.objects.filter(consumed_at__isnull=True).exists()

    tasks.detect_changes()

    assert {
        K.UNAPPROVED_VERSION,
        K.MISSING_OWNER,
        K.MISSING_PURPOSE,
        K.MISSING_CHANGE_WINDOW,
    } <= kinds_of(d.pk)
    assert K.UNREGISTERED_MODEL in kinds_of(d.model_id, "model")
    assert not im.ChangeNotice.objects.filter(consumed_at__isnull=True).exists()

    # Twice: no notice left, nothing changes.
    before = state()
    result = detection_runner.detect_changes()
    assert result.counts == {}
    assert state() == before


def test_a_second_event_moving_the_version_updates_the_finding(pipeline):
    d = deploy(pipeline)
    tasks.detect_changes()
    f = Finding.objects.get(kind=K.UNAPPROVED_VERSION, subject_id=d.pk)
    assert f.evidence["facts"]["version"] == "3"

    deploy(pipeline, version="4", pipeline_run="https://ci.example.com/runs/1235")
    result = detection_runner.detect_changes()
    assert result.by_kind[K.UNAPPROVED_VERSION] == {"evidence_changed": 1, "updated": 1}
    f.refresh_from_db()
    assert f.evidence["facts"]["version"] == "4"
    assert f.evidence["records"][0]["what"] == "reported the running version"


def test_the_commit_of_a_push_asks_for_the_consumer(
    pipeline, django_capture_on_commit_callbacks
):
    # Issuing the fixture's token announced its identity and asked for the consumer in
    # the test's transaction; start from nothing pending so the push's own ask is seen.
    transaction.get_connection().run_on_commit.clear()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        d = deploy(pipeline)
    # One wake-up for the push however many notices it wrote; eager in tests.
    assert wake_ups(callbacks) == 1
    assert K.UNAPPROVED_VERSION in kinds_of(d.pk)
    assert not im.ChangeNotice.objects.filter(consumed_at__isnull=True).exists()


def test_no_wake_up_when_the_setting_is_off(
    pipeline, settings, django_capture_on_commit_callbacks
):
    settings.DETECTION_WAKE_ON_ANNOUNCE = False
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        deploy(pipeline)
    assert wake_ups(callbacks) == 0
    assert not Finding.objects.exists()
    # Beat's run makes it up: the notices are the record of the work asked for.
    tasks.detect_changes()
    assert Finding.objects.filter(kind=K.UNAPPROVED_VERSION).exists()


def test_a_pushed_deployment_is_held_to_the_models_latest_approved_version(pipeline):
    model = AIModelFactory(name="fraud-scorer", source="mlflow:1", external_id="m")
    old = ModelVersionFactory(
        model=model, version="1", approved_at=timezone.now() - timedelta(days=9)
    )
    latest = ModelVersionFactory(
        model=model, version="2", approved_at=timezone.now() - timedelta(days=1)
    )
    ModelVersionFactory(model=model, version="5", approval="pending")

    d = deploy(pipeline)

    model.refresh_from_db()
    assert model.baseline_version == latest and old != latest
    event = AuditEvent.objects.get(action="aimodel.baseline", object_id=str(model.pk))
    assert event.actor_label.startswith("cicd:")
    tasks.detect_changes()
    drift = Finding.objects.get(kind=K.VERSION_DRIFT, subject_id=d.pk)
    assert drift.evidence["facts"]["baseline_version_id"] == latest.pk
    assert drift.evidence["facts"]["observed_version"] == "3"
    # Registered by the registry: not an unregistered model.
    assert K.UNREGISTERED_MODEL not in kinds_of(model.pk, "model")


def test_a_pushed_deployment_leaves_an_existing_baseline_alone(pipeline):
    model = AIModelFactory(name="fraud-scorer")
    chosen = ModelVersionFactory(model=model, version="1")
    ModelVersionFactory(model=model, version="2", approved_at=timezone.now())
    im.AIModel.objects.filter(pk=model.pk).update(baseline_version=chosen)
    deploy(pipeline)
    model.refresh_from_db()
    assert model.baseline_version == chosen
    assert not AuditEvent.objects.filter(action="aimodel.baseline").exists()


def test_spans_create_a_deployment_held_to_the_approved_version(collector):
    model = AIModelFactory(name="support-chat-llm")
    v = ModelVersionFactory(model=model)
    spans(collector, timezone.now() - timedelta(seconds=5))
    model.refresh_from_db()
    assert model.baseline_version == v
    tasks.detect_changes()
    observed = im.Deployment.objects.get(source__startswith="otlp:")
    assert K.VERSION_DRIFT in kinds_of(observed.pk)


def test_spans_from_an_unknown_model_make_an_unregistered_model(collector):
    spans(collector, timezone.now() - timedelta(seconds=5), model="mystery-llm")
    tasks.detect_changes()
    model = im.AIModel.objects.get(name="mystery-llm")
    f = Finding.objects.get(kind=K.UNREGISTERED_MODEL, subject_id=model.pk)
    assert f.evidence["facts"]["source_kind"] == "otlp"


def test_spans_to_a_retired_models_deployment_are_a_shadow_within_one_pass(
    collector, risk
):
    model = AIModelFactory(name="support-chat-llm")
    d = DeploymentFactory(
        model=model,
        endpoint=f"https://{ENDPOINT}:8080/v1/chat/completions",
        last_seen_at=timezone.now() - timedelta(days=3),
    )
    with freeze_time(timezone.now() - timedelta(days=1)):
        services.aimodel_set_lifecycle(actor=risk, model=model, lifecycle="retired")
    im.ChangeNotice.objects.update(consumed_at=timezone.now())  # the retirement's

    # Spans to a known deployment write no notice; the consumer looks at it anyway.
    spans(collector, timezone.now() - timedelta(seconds=5))
    assert not im.ChangeNotice.objects.filter(consumed_at__isnull=True).exists()
    tasks.detect_changes()

    f = Finding.objects.get(kind=K.SHADOW_DEPLOYMENT, subject_id=d.pk)
    assert f.evidence["facts"]["answering"] is True
    assert f.evidence["records"][1]["calls"] == 3


def test_the_consumer_takes_every_batch_and_the_scope_widens_to_neighbours(risk):
    from governance.approved_state import approved_state_record

    a, b = DeploymentFactory(), DeploymentFactory()
    approved_state_record(actor=risk, deployment=a)
    im.ChangeNotice.objects.update(consumed_at=timezone.now())
    im.Dependency.objects.create(upstream=a, downstream=b)
    # Only the downstream end is announced (as the history names dependencies).
    history.announce(objects=[(history.DEPLOYMENT, b.pk)])
    for extra in DeploymentFactory.create_batch(5):
        history.announce(objects=[(history.DEPLOYMENT, extra.pk)])

    detection_runner.detect_changes(batch=2)

    assert not im.ChangeNotice.objects.filter(consumed_at__isnull=True).exists()
    assert K.DEPENDENCY_DRIFT in kinds_of(a.pk)


def test_beat_runs_the_consumer_every_15_seconds_and_the_full_run_nightly(settings):
    from config.celery import app

    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["detect-changes"]["task"] == "governance.tasks.detect_changes"
    assert schedule["detect-changes"]["schedule"] <= 15
    assert schedule["detect-all"]["task"] == "governance.tasks.detect_all"
    assert {"governance.tasks.detect_changes", "governance.tasks.detect_all"} <= set(
        app.tasks
    )


def test_a_removed_edge_and_an_unbinding_conclude_at_the_change_consumer(risk):
    """Both ends of a removed dependency edge, and the deployment an identity was unbound
    from, are detected on by the next change consumer, not only by the nightly run."""
    from governance.approved_state import approved_state_record
    from tests.factories import IdentityFactory, UserFactory

    d, down = DeploymentFactory(), DeploymentFactory()
    edge = im.Dependency.objects.create(upstream=d, downstream=down)
    approved_state_record(actor=risk, deployment=d)
    exposed = DeploymentFactory(risk_tier=1)
    vendor_key = IdentityFactory(vendor="Cohere", deployments=[exposed])
    detection_runner.detect_all()
    assert not Finding.objects.filter(kind=K.DEPENDENCY_DRIFT).exists()
    assert Finding.objects.get(kind=K.THIRD_PARTY_EXPOSURE, subject_id=exposed.pk)
    history.change_notices_consume(
        notices=history.change_notices_claim(consumer="test", limit=1000)
    )

    admin = UserFactory(is_superuser=True, is_staff=True)
    services.dependency_remove(actor=admin, dependency=edge)
    services.identity_unbind(actor=admin, identity=vendor_key, deployment=exposed)
    detection_runner.detect_changes()

    drift = Finding.objects.get(kind=K.DEPENDENCY_DRIFT, subject_id=d.pk)
    assert drift.status == "open"
    assert drift.evidence["facts"]["downstream_removed"] == [down.pk]
    exposure = Finding.objects.get(kind=K.THIRD_PARTY_EXPOSURE, subject_id=exposed.pk)
    assert exposure.status == "resolved"
