"""POST /api/v1/deployment-events: what a pipeline's word creates, idempotency, bad bodies."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from audit.models import AuditEvent
from inventory import models as m
from sources import models as sm
from sources.receivers.cicd import CICD_SOURCE_NAME, EVENT_ACTION
from tests.factories import AIModelFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/deployment-events"

EVENT = {
    "model": "fraud-scorer",
    "version": "3",
    "environment": "production",
    "endpoint": "https://fraud.internal/v1/score",
    "commit": "9f3c2ab",
    "pipeline": "deploy-fraud-scorer",
    "pipeline_run": "https://ci.example.com/runs/1234",
    "deployed_at": "2026-11-26T10:00:00Z",
}


@pytest.fixture
def deployer(token_for):
    principal, raw = token_for("deploy")
    return principal.token, Client(headers={"Authorization": f"Bearer {raw}"})


def send(client, body, url=URL):
    return client.post(url, json.dumps(body), content_type="application/json")


def test_an_event_creates_the_source_model_version_and_deployment(deployer):
    token, client = deployer

    response = send(client, EVENT)

    assert response.status_code == 201, response.content
    source = sm.DataSource.objects.get(kind="cicd")
    assert source.name == CICD_SOURCE_NAME and source.health == "healthy"
    label = source.source_label
    model = m.AIModel.objects.get(name="fraud-scorer")
    assert model.source == label
    version = m.ModelVersion.objects.get(model=model, version="3")
    assert version.approval == "pending" and version.source == label
    deployment = m.Deployment.objects.get(source=label)
    assert deployment.external_id == "production|https://fraud.internal/v1/score"
    assert deployment.name == "fraud-scorer @ https://fraud.internal/v1/score"
    assert deployment.observed_version == version
    assert deployment.environment == "production"
    event = sm.DeploymentEvent.objects.get()
    assert event.sent_by == token.identity
    assert event.deployment == deployment and event.model_version == version
    assert event.deployed_at.isoformat() == "2026-11-26T10:00:00+00:00"
    body = response.json()
    assert body["id"] == event.pk
    assert body["deployment"] == {
        "id": deployment.pk,
        "name": deployment.name,
        "url": f"http://testserver/inventory/deployments/{deployment.pk}/",
    }
    assert body["model_version"]["approval"] == "pending"
    audit = AuditEvent.objects.get(action=EVENT_ACTION)
    assert audit.actor_id is None and audit.actor_label == f"token:{token.prefix}"
    assert audit.actor_kind == "token"
    assert audit.object_id == str(deployment.pk)
    assert audit.after["deploy_event"]["pipeline_run"] == EVENT["pipeline_run"]


def test_registered_models_and_versions_are_reused(deployer):
    _, client = deployer
    model = AIModelFactory(name="fraud-scorer", source="mlflow:1", external_id="fraud")
    version = ModelVersionFactory(model=model, version="3", approval="approved")

    response = send(client, {**EVENT, "deployment": "fraud-prod"})

    assert response.status_code == 201
    deployment = m.Deployment.objects.get()
    assert deployment.model == model and deployment.observed_version == version
    assert deployment.name == "fraud-prod"
    version.refresh_from_db()
    assert version.approval == "approved", "a pipeline never changes an approval"
    assert m.AIModel.objects.count() == 1 and m.ModelVersion.objects.count() == 1


def test_a_new_version_at_the_same_endpoint_updates_the_deployment(deployer):
    _, client = deployer
    send(client, EVENT)
    second = send(
        client,
        {**EVENT, "version": "4", "pipeline_run": "https://ci.example.com/runs/1235"},
    )
    assert second.status_code == 201
    deployment = m.Deployment.objects.get()
    assert deployment.observed_version.version == "4"
    assert sm.DeploymentEvent.objects.count() == 2
    staging = send(client, {**EVENT, "environment": "staging", "pipeline_run": "r-9"})
    assert staging.status_code == 201
    assert m.Deployment.objects.count() == 2


def test_the_same_event_twice_is_recorded_once(deployer):
    _, client = deployer
    first = send(client, EVENT)
    again = send(client, EVENT)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert sm.DeploymentEvent.objects.count() == 1
    assert AuditEvent.objects.filter(action=EVENT_ACTION).count() == 1
    without_run = {k: v for k, v in EVENT.items() if k != "pipeline_run"}
    assert send(client, without_run).status_code == 201
    assert send(client, without_run).status_code == 201, (
        "without a pipeline run, two deploys are two events"
    )


def test_an_idempotency_key_makes_a_retry_safe_and_is_checked(deployer):
    _, client = deployer
    body = {k: v for k, v in EVENT.items() if k != "pipeline_run"}

    def post(key):
        return client.post(
            URL,
            json.dumps(body),
            content_type="application/json",
            headers={"Idempotency-Key": key},
        )

    first, again = post("deploy-42"), post("deploy-42")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert post("deploy-43").status_code == 201
    too_long = post("k" * 201)
    assert too_long.status_code == 400
    assert "Idempotency-Key" in too_long.content.decode()
    assert sm.DeploymentEvent.objects.count() == 2


def test_a_concurrent_duplicate_rolls_back_whole_and_returns_the_first(deployer):
    """The unique key, not the look-before-write, is what stops a racing duplicate."""
    from sources.receivers import cicd

    token, client = deployer
    first = send(client, EVENT).json()
    event = cicd.DeployEvent(
        model=EVENT["model"],
        version=EVENT["version"],
        environment=EVENT["environment"],
        endpoint="https://elsewhere.internal/v1/score",
        pipeline_run=EVENT["pipeline_run"],
    )
    before = m.Deployment.objects.count()
    # The race: the check before writing saw nothing, the insert then collides.
    row = cicd._record
    with pytest.raises(Exception):  # noqa: B017,PT011 - the database's IntegrityError
        row(event, token)
    assert m.Deployment.objects.count() == before, "nothing half-written"
    again, created = cicd.deployment_event_record(event=event, token=token)
    assert not created and again.pk == first["id"]


def test_without_the_slash_and_minimal_body(deployer):
    _, client = deployer
    response = send(
        client,
        {"model": "m", "version": "1", "environment": "development", "endpoint": "x"},
        url=URL + "/",
    )
    assert response.status_code == 201
    assert response.json()["deployment_name"] == ""


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"model", "version", "environment", "endpoint"}),
        ({**EVENT, "environment": "prod"}, {"environment"}),
        ({**EVENT, "model": "m" * 201}, {"model"}),
        ({**EVENT, "version": "v" * 101}, {"version"}),
        ({**EVENT, "endpoint": "e" * 501}, {"endpoint"}),
        ({**EVENT, "commit": "c" * 101}, {"commit"}),
        ({**EVENT, "pipeline_run": "r" * 501}, {"pipeline_run"}),
        ({**EVENT, "deployed_at": "yesterday"}, {"deployed_at"}),
        ({**EVENT, "model": "bad\x00name"}, {"model"}),
        ({**EVENT, "model": ""}, {"model"}),
        ({**EVENT, "model": {"name": "x"}}, {"model"}),
        ({**EVENT, "comit": "typo"}, {"comit"}),
    ],
)
def test_bad_bodies_are_400s_naming_the_fields(deployer, body, fields):
    _, client = deployer
    response = send(client, body)
    assert response.status_code == 400, response.content
    assert fields <= set(response.json())
    assert not sm.DeploymentEvent.objects.exists()
    assert not m.Deployment.objects.exists()


@pytest.mark.parametrize(
    "raw", [b"{not json", b"[1, 2]", b'"text"', b"null", b"\xff\xfe"]
)
def test_bodies_that_are_not_an_object_are_400s(deployer, raw):
    _, client = deployer
    response = client.post(URL, raw, content_type="application/json")
    assert response.status_code == 400
    assert not sm.DeploymentEvent.objects.exists()


def test_form_bodies_are_refused(deployer):
    _, client = deployer
    response = client.post(URL, EVENT)
    assert response.status_code == 415


def test_the_deploy_scope_is_needed(token_for):
    assert send(Client(), EVENT).status_code == 401
    _, raw = token_for("read", "sources", "telemetry")
    response = send(Client(headers={"Authorization": f"Bearer {raw}"}), EVENT)
    assert response.status_code == 403
    assert response.json() == {"detail": "This token lacks the 'deploy' scope."}
    assert not sm.DataSource.objects.exists()


def test_events_reuse_the_existing_cicd_source(deployer, admin_user):
    from sources.sync import services

    existing = services.source_create(actor=admin_user, name="Our CI", kind="cicd")
    _, client = deployer
    send(client, EVENT)
    assert sm.DataSource.objects.get() == existing
    assert m.Deployment.objects.get().source == existing.source_label


def test_the_cicd_source_page_lists_events_and_its_health(deployer, login, auditor):
    _, client = deployer
    send(client, {**EVENT, "deployment": "fraud-<prod>"})
    source = sm.DataSource.objects.get(kind="cicd")
    body = login(auditor).get(source.get_absolute_url()).content.decode()
    assert 'data-testid="events"' in body
    assert "fraud-&lt;prod&gt;" in body and "9f3c2ab" in body
    assert "Healthy" in body
    listing = login(auditor).get("/sources/").content.decode()
    assert CICD_SOURCE_NAME in listing and "push" in listing
    deployment = m.Deployment.objects.get()
    header = login(auditor).get(deployment.get_absolute_url()).content.decode()
    assert (
        f'Reported by <a href="{source.get_absolute_url()}">{source.name}</a>' in header
    )
