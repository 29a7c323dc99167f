"""A push through the HTTP stack becomes a finding in a real Celery worker (Redis,
PostgreSQL) well within 60 s: the push's commit sends the change consumer's task."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from governance.models import Finding
from inventory import models as im
from inventory import services

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

DEADLINE_SECONDS = 60


def test_a_deployment_event_is_a_finding_within_a_minute(
    celery_worker, broker_dispatch
):
    _, raw = services.api_token_issue(
        actor=None, actor_label="test", name="ci", scopes=["deploy"], days=1
    )
    started = time.monotonic()
    response = Client(headers={"Authorization": f"Bearer {raw}"}).post(
        "/api/v1/deployment-events",
        json.dumps(
            {
                "model": "fraud-scorer",
                "version": "7",
                "environment": "production",
                "endpoint": "https://fraud.internal/v1/score",
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    deployment_id = response.json()["deployment"]["id"]

    while time.monotonic() - started < DEADLINE_SECONDS:
        found = Finding.objects.filter(
            kind=Finding.Kind.UNAPPROVED_VERSION, subject_id=deployment_id
        ).first()
        pending = im.ChangeNotice.objects.filter(consumed_at__isnull=True).exists()
        if found is not None and not pending:
            break
        time.sleep(0.5)
    else:
        pytest.fail(
            f"no finding after {DEADLINE_SECONDS} s:\n{celery_worker.log()[-3000:]}"
        )
    assert found.evidence["facts"]["version"] == "7"
    celery_worker.wait_for_log("governance.tasks.detect_changes")
