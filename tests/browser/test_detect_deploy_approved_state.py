"""Journey: a committee member approves a deployment's running endpoint and dependencies
from its governance panel; when the endpoint later moves, detection finds the drift."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from governance import detection
from governance.models import ApprovedState, Finding
from inventory import models as im
from tests.browser.pages import settle
from tests.factories import DeploymentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_approve_the_running_state_then_the_endpoint_drifts(sign_in, risk, team_a):
    d = DeploymentFactory(
        name="fraud-scorer-prod", team=team_a, endpoint="https://fraud/v1"
    )
    page = sign_in(risk)
    page.goto(d.get_absolute_url())
    form = page.get_by_test_id("approved-state-form")
    form.get_by_label("I confirm the running state is approved").check()
    form.get_by_role(
        "button", name="Approve the running endpoint and dependencies"
    ).click()
    expect(
        page.get_by_text("running endpoint and dependencies approved")
    ).to_be_visible()

    state = ApprovedState.objects.get(deployment=d)
    assert state.endpoint == "https://fraud/v1" and state.approved_by == risk

    settle(page)  # the page's last requests answered before the test writes
    im.Deployment.objects.filter(pk=d.pk).update(endpoint="https://elsewhere/v1")
    detection.run(kinds=[Finding.Kind.ENDPOINT_DRIFT])
    drift = Finding.objects.get(kind=Finding.Kind.ENDPOINT_DRIFT, subject_id=d.pk)
    assert drift.evidence["facts"]["approved_endpoint"] == "https://fraud/v1"
