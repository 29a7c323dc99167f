"""Findings from real clients, end to end.

A real MLflow server seeded by the MLflow client, a CI/CD deployment event and spans from
the OpenTelemetry SDK's own OTLP exporter through the live HTTP server, and an AWS
credential report from a real moto server. The change consumer and then a full detection
run conclude: the planted problems are findings, the clean subjects have none.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
from django.utils import timezone
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from governance import detection
from governance.models import Finding
from inventory import models as m
from inventory import services
from sources import models as sm
from sources.sync import runner, secrets
from tests.connectors import aws_server
from tests.connectors.mlflow_server import (
    mlflow_client,
    mlflow_server_fixture,  # noqa: F401  (registers the `mlflow_server` fixture)
)
from tests.otlp.spans import chat_spans

pytestmark = pytest.mark.django_db(transaction=True)

moto_server = aws_server.moto_server
aws = aws_server.aws

RULES = "^svc-(?P<model>[a-z0-9-]+)$ => model\n"


def _seed_registry(server) -> None:
    mlflow_client(
        server,
        [
            ("create_registered_model", {"name": "e2e-fraud-scorer"}),
            (
                "create_model_version",
                {"name": "e2e-fraud-scorer", "source": "s3://models/fraud/1"},
            ),
            (
                "create_model_version",
                {
                    "name": "e2e-fraud-scorer",
                    "source": "s3://models/fraud/2",
                    "tags": {"approval_status": "pending"},
                },
            ),
            (
                "set_registered_model_alias",
                {"name": "e2e-fraud-scorer", "alias": "champion", "version": "1"},
            ),
            (
                "create_registered_model",
                {"name": "e2e-legacy-ranker", "tags": {"lifecycle": "retired"}},
            ),
            (
                "create_model_version",
                {"name": "e2e-legacy-ranker", "source": "s3://models/legacy/1"},
            ),
            ("create_registered_model", {"name": "e2e-clean-classifier"}),
            (
                "create_model_version",
                {"name": "e2e-clean-classifier", "source": "s3://models/clean/1"},
            ),
            (
                "set_registered_model_alias",
                {"name": "e2e-clean-classifier", "alias": "champion", "version": "1"},
            ),
        ],
    )


def _sync(source: sm.DataSource) -> sm.SyncRun:
    run, created = runner.request_sync(source=source, trigger="command")
    assert created
    run.refresh_from_db()
    assert run.status == "succeeded", run.error
    return run


def _token(*scopes: str) -> str:
    _, raw = services.api_token_issue(
        actor=None, name=f"e2e {' '.join(scopes)}", scopes=scopes, days=30
    )
    return raw


def test_real_sources_raise_the_planted_findings_and_nothing_else(
    mlflow_server, aws, live_server, admin_user
):
    # 1. The registry: fraud v1 approved (champion), v2 pending; legacy retired; clean v1.
    _seed_registry(mlflow_server)
    mlflow = sm.DataSource.objects.create(
        name="MLflow e2e",
        kind="mlflow",
        config={
            "tracking_uri": mlflow_server.url,
            "name_filter": "name LIKE 'e2e-%'",
        },
        secrets_encrypted=secrets.encrypt({}),
        schedule_minutes=0,
    )
    _sync(mlflow)
    fraud = m.AIModel.objects.get(name="e2e-fraud-scorer")
    assert fraud.baseline_version.version == "1"

    # 2. CI/CD: fraud v2 (pending) goes to production; clean v1 too.
    deploy = _token("deploy")
    for model, version, name in [
        ("e2e-fraud-scorer", "2", "fraud-prod"),
        ("e2e-clean-classifier", "1", "clean-prod"),
    ]:
        response = requests.post(
            f"{live_server.url}/api/v1/deployment-events",
            json={
                "model": model,
                "version": version,
                "environment": "production",
                "endpoint": f"https://{name}.internal/v1",
                "deployment": name,
                "pipeline": "deploy",
                "pipeline_run": f"run-{name}",
            },
            headers={"Authorization": f"Bearer {deploy}"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
    clean = m.Deployment.objects.get(name="clean-prod")
    # The clean deployment is owned, explained and has a window any change fits.
    clean.owner = admin_user
    clean.team = clean.model.team
    clean.business_purpose = "Classifies support tickets"
    clean.change_window = "Daily 00:00-24:00 UTC"
    services.object_update(actor=admin_user, instance=clean)

    # 3. Telemetry: the retired ranker still answers; an unregistered model answers too.
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces",
        headers={"Authorization": f"Bearer {_token('telemetry')}"},
        timeout=10,
    )
    now = datetime.now(tz=UTC)
    for model, address in [
        ("e2e-legacy-ranker", "legacy.internal"),
        ("e2e-mystery-llm", "mystery.internal"),
    ]:
        spans = chat_spans(now, n=3, errors=0, model=model, address=address)
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    exporter.shutdown()

    # 4. Credentials: a key for the retired ranker, at AWS (moto) and synced.
    iam = aws.client()
    iam.create_user(UserName="svc-e2e-legacy-ranker")
    iam.create_access_key(UserName="svc-e2e-legacy-ranker")
    aws_source = sm.DataSource.objects.create(
        name="AWS e2e",
        kind="aws_iam",
        config={"rules": RULES, "endpoint_url": aws.endpoint_url},
        secrets_encrypted=secrets.encrypt(
            {"access_key_id": "testing", "secret_access_key": "testing"}
        ),
    )
    _sync(aws_source)
    key = m.NonHumanIdentity.objects.get(name__startswith="svc-e2e-legacy-ranker")
    assert key.model.name == "e2e-legacy-ranker"

    # 5. The change consumer concludes from what changed; the nightly run agrees.
    from governance import tasks

    tasks.detect_changes()
    found = _findings()
    full = detection.run(now=timezone.now())
    assert full.counts["opened"] == 0, full.as_dict()
    assert _findings() == found

    fraud_prod = m.Deployment.objects.get(name="fraud-prod")
    legacy = m.Deployment.objects.get(model__name="e2e-legacy-ranker")
    mystery = m.AIModel.objects.get(name="e2e-mystery-llm")
    assert ("unapproved_version", "deployment", fraud_prod.pk) in found
    assert ("version_drift", "deployment", fraud_prod.pk) in found
    assert ("shadow_deployment", "deployment", legacy.pk) in found
    assert ("unregistered_model", "model", mystery.pk) in found
    assert ("orphaned_identity", "identity", key.pk) in found
    clean_subjects = {
        ("deployment", clean.pk),
        ("model", clean.model_id),
    }
    assert not [f for f in found if (f[1], f[2]) in clean_subjects], found


def _findings() -> set[tuple[str, str, int]]:
    return set(
        Finding.objects.exclude(status="resolved").values_list(
            "kind", "subject_type", "subject_id"
        )
    )
