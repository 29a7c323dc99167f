"""Schemathesis over the OpenAPI document, every operation (issue 8, item 16).

The schema is loaded from the app in-process (`config.wsgi.application`, the test
database), and every operation is called by schemathesis's generated cases:

- with a token holding every scope: no 5xx (`not_a_server_error`), every documented
  response conforms to its schema (`response_schema_conformance`), and a refused (4xx)
  request writes no row in the governed tables;
- without a token: 401, 403 or 404 only, never a 5xx, and nothing written.

The Hypothesis profile (`tests/hostile/conftest.py`) sets the size: `ci` derandomized with
a fixed seed and few examples, `fuzz` (`make fuzz`) many more.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from config.wsgi import application
from inventory import models as m
from inventory import services
from sources import models as sm
from tests.factories import AIModelFactory, DeploymentFactory
from tests.hostile.tally import TALLY
from tests.hostile.test_fuzz import governed

pytestmark = pytest.mark.django_db

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
# The loaded profile's size and seed (explicit, so schemathesis's own defaults do not win).
PROFILE = settings(settings.default)


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """The raw WSGI app closes the database connection at the end of each request, as a
    server must; in a test that is the test's transaction (PostgreSQL: "the connection is
    closed"). Django's test client disconnects the same handlers for the same reason."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def every_scope(db) -> dict[str, str]:
    team = m.Team.objects.create(name="Schemathesis", slug="schemathesis")
    DeploymentFactory(model=AIModelFactory(team=team), team=team)
    sm.DataSource.objects.create(name="k8s", kind="kubernetes", config={})
    _, raw = services.api_token_issue(
        actor=None,
        name="schemathesis",
        scopes=[s.value for s in m.APIToken.Scope],
        days=1,
    )
    return {"Authorization": f"Bearer {raw}"}


def _call(case, headers: dict[str, str] | None):
    """Send one generated case through the WSGI app; count it; a refused request that
    wrote rows is a finding."""
    before = governed()
    response = case.call(headers=headers)
    TALLY["requests"] += 1
    if response.status_code >= 500:
        TALLY["5xx"] += 1
    if 400 <= response.status_code < 500 and governed() != before:
        TALLY["partial writes"] += 1
        pytest.fail(
            f"{case.method} {case.formatted_path} answered "
            f"{response.status_code} but wrote rows"
        )
    return response


@schema.parametrize()
@PROFILE
def test_every_operation_with_every_scope(case, every_scope):
    response = _call(case, every_scope)
    case.validate_response(
        response,
        checks=[not_a_server_error, response_schema_conformance],
        headers=every_scope,
    )


@schema.parametrize()
@PROFILE
def test_every_operation_without_a_token_is_refused(case, db):
    case.headers = {
        k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"
    }
    response = _call(case, None)
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code in {401, 403, 404}, (
        f"{case.method} {case.formatted_path} without a token answered "
        f"{response.status_code}"
    )
