"""Keyset cursors are user input: a forged one on any list answers a page, never a 500."""

from __future__ import annotations

import base64
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory import models as m
from inventory.pagination import keyset_paginate
from sources import models as sm
from sources.sync import services as source_services
from tests.factories import DeploymentFactory, IdentityFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


def forge(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


# The probe's cursor first (base64 of [null,1]), then other shapes a hand can write.
FORGED = [
    "W251bGwsIDFd",
    forge([None, None]),
    forge([{"a": 1}, 1]),
    forge([[1, 2], 1]),
    forge([True, 1]),
    forge(["x\u0000y", 1]),
    forge(["\ud800", 1]),
    forge([1, 99999999999999999999999]),
    forge([1, -99999999999999999999999]),
    forge(["2026-01-01T00:00:00", "1e999"]),
    forge([99999999999999999999999, 1]),
    forge([1.5e308, 1]),
]
# Huge numbers are a position on a text sort ("99999…" sorts somewhere): a page, not a 500.
MAY_BE_POSITIONS = set(FORGED[-2:])
LISTS = [
    ("inventory:team_list", ""),
    ("inventory:aimodel_list", ""),
    ("inventory:aimodel_list", "sort=-updated_at"),
    ("inventory:modelversion_list", ""),
    ("inventory:modelversion_list", "sort=version"),
    ("inventory:system_list", ""),
    ("inventory:deployment_list", ""),
    ("inventory:deployment_list", "sort=-last_seen_at"),
    ("inventory:identity_list", ""),
    ("inventory:identity_list", "sort=updated_at"),
    ("sources:source_list", ""),
    ("sources:source_list", "sort=-health"),
    ("sources:run_list", ""),
    ("sources:run_list", "sort=source"),
    ("sources:event_list", ""),
    ("governance:audit_list", ""),
]


def tbody(response) -> str:
    body = response.content.decode()
    return body[body.index("<tbody") : body.index("</tbody>")]


@pytest.fixture
def rows(admin_user):
    deployment = DeploymentFactory(observed_version=ModelVersionFactory())
    IdentityFactory(deployments=[deployment])
    source = source_services.source_create(actor=admin_user, name="CI", kind="cicd")
    sm.SyncRun.objects.create(
        source=source, trigger="manual", requested_at=timezone.now()
    )
    sm.DeploymentEvent.objects.create(
        received_at=timezone.now(),
        model_name="fraud-scorer",
        version="3",
        environment="production",
        endpoint="https://fraud.internal/v1/score",
        deployment=deployment,
    )
    assert m.Deployment.objects.exists()


@pytest.mark.parametrize("name,query", LISTS)
@pytest.mark.parametrize("direction", ["after", "before"])
def test_a_forged_cursor_answers_the_first_page_never_a_500(
    client, admin_user, rows, name, query, direction
):
    client.force_login(admin_user)
    url = reverse(name) + "?" + (query + "&" if query else "")
    first = client.get(url)
    assert first.status_code == 200
    for cursor in FORGED:
        response = client.get(f"{url}{direction}={cursor}")
        assert response.status_code == 200, (cursor, response.status_code)
        if cursor not in MAY_BE_POSITIONS:
            # The cursor is ignored: the same rows as the first page.
            assert tbody(response) == tbody(first), cursor


@pytest.mark.parametrize("cursor", FORGED)
def test_keyset_paginate_ignores_a_cursor_that_does_not_fit(cursor):
    DeploymentFactory.create_batch(3)
    first = keyset_paginate(
        m.Deployment.objects.all(), field="name", descending=False, per_page=2
    )
    for direction in ("after", "before"):
        page = keyset_paginate(
            m.Deployment.objects.all(),
            field="name",
            descending=False,
            per_page=2,
            **{direction: cursor},
        )
        if cursor not in MAY_BE_POSITIONS:
            assert [r.pk for r in page.rows] == [r.pk for r in first.rows]
            assert page.prev_cursor is None
