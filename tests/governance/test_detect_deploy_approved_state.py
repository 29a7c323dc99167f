"""The approved running state: the committee records it (audited), the button on the
deployment's governance panel posts it, others cannot."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from audit.models import AuditEvent
from governance.approved_state import APPROVE_STATE_ACTION, approved_state_record
from governance.models import ApprovedState
from inventory import models as im
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db
BUTTON = "Approve the running endpoint and dependencies"


@pytest.fixture
def deployment(team_a):
    d = DeploymentFactory(team=team_a, model__team=team_a, endpoint="https://a/v1")
    up = DeploymentFactory()
    im.Dependency.objects.create(upstream=up, downstream=d)
    return d


def url(d):
    return reverse("governance:deployment_approved_state", args=[d.pk])


def test_the_committee_records_the_state_audited_and_announced(risk, deployment):
    state = approved_state_record(actor=risk, deployment=deployment)
    assert state.endpoint == "https://a/v1" and state.approved_by == risk
    assert len(state.upstream_ids) == 1 and state.downstream_ids == []
    event = AuditEvent.objects.get(action=APPROVE_STATE_ACTION)
    assert event.object_id == str(deployment.pk) and event.before is None
    assert event.after["endpoint"] == "https://a/v1"
    assert im.ChangeNotice.objects.filter(
        object_type="inventory.deployment", object_id=deployment.pk
    ).exists()

    # Approving again replaces the one row; the event keeps what it was.
    deployment.endpoint = "https://b/v1"
    deployment.save(update_fields=["endpoint"])
    approved_state_record(actor=risk, deployment=deployment)
    assert ApprovedState.objects.get().endpoint == "https://b/v1"
    second = AuditEvent.objects.filter(action=APPROVE_STATE_ACTION).latest("seq")
    assert second.before["endpoint"] == "https://a/v1"


def test_an_owner_cannot_record_it(owner, deployment):
    with pytest.raises(PermissionDenied):
        approved_state_record(actor=owner, deployment=deployment)
    assert not ApprovedState.objects.exists()
    assert not AuditEvent.objects.filter(action=APPROVE_STATE_ACTION).exists()


def test_the_button_posts_it(client, risk, deployment):
    client.force_login(risk)
    page = client.get(deployment.get_absolute_url())
    assert BUTTON in page.content.decode()

    response = client.post(url(deployment), {"confirm": "yes"})
    assert response.status_code == 302
    assert response["Location"] == deployment.get_absolute_url()
    assert ApprovedState.objects.get().deployment == deployment


def test_without_the_confirmation_nothing_is_written(client, risk, deployment):
    client.force_login(risk)
    response = client.post(url(deployment), follow=True)
    assert "Tick the confirmation box" in response.content.decode()
    assert not ApprovedState.objects.exists()


def test_others_get_a_clear_refusal(client, owner, deployment):
    client.force_login(owner)
    page = client.get(deployment.get_absolute_url())
    assert page.status_code == 200 and BUTTON not in page.content.decode()
    assert client.post(url(deployment), {"confirm": "yes"}).status_code == 403
    assert client.get(url(deployment)).status_code == 405
    missing = reverse("governance:deployment_approved_state", args=[999999])
    assert client.post(missing, {"confirm": "yes"}).status_code == 404
    assert not ApprovedState.objects.exists()
