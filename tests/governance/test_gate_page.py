"""The release gate's decisions page (governance:gate_decision_list) and a decision's page."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from governance import gate
from governance.models import GateDecision
from tests.factories import AIModelFactory, DeploymentFactory, UserFactory
from tests.governance.gate_helpers import clean_release, gate_token

pytestmark = pytest.mark.django_db

LIST = reverse("governance:gate_decision_list")


def decision(
    model,
    *,
    allowed=True,
    environment="production",
    deployment=None,
    at=None,
    version="4",
):
    return GateDecision.objects.create(
        created_at=at or timezone.now(),
        actor_label="token:abc123",
        inputs={"model": model.name, "version": version, "environment": environment},
        model=model,
        version=version,
        environment=environment,
        deployment=deployment,
        allowed=allowed,
        reasons=[]
        if allowed
        else [{"code": "version_not_approved", "message": "<b>pending</b> approval"}],
    )


@pytest.fixture
def ours(team_a):
    model = AIModelFactory(name="credit-scorer", team=team_a)
    return model, DeploymentFactory(name="credit-prod", model=model)


@pytest.fixture
def theirs(team_b):
    return AIModelFactory(name="fraud-scorer", team=team_b)


def ids(response) -> set[int]:
    """The decisions the page lists (their "#<id>" links)."""
    found = re.findall(
        r'href="/governance/gate/(\d+)/">#\1<', response.content.decode()
    )
    return {int(pk) for pk in found}


@pytest.mark.parametrize("role", ["risk", "compliance", "auditor", "admin_user"])
def test_read_all_roles_see_every_decision(request, login, ours, theirs, role):
    a = decision(ours[0])
    b = decision(theirs, allowed=False)
    response = login(request.getfixturevalue(role)).get(LIST)
    assert response.status_code == 200
    assert ids(response) == {a.pk, b.pk}


def test_owner_sees_decisions_about_their_models_only(login, owner, ours, theirs):
    mine = decision(ours[0], deployment=ours[1])
    other = decision(theirs)
    response = login(owner).get(LIST)
    assert response.status_code == 200
    assert ids(response) == {mine.pk}
    assert (
        login(owner)
        .get(reverse("governance:gate_decision_detail", args=[other.pk]))
        .status_code
        == 404
    )


def test_owner_sees_decisions_about_deployments_they_own(login, owner, theirs):
    deployment = DeploymentFactory(model=theirs, team=theirs.team, owner=owner)
    seen = decision(theirs, deployment=deployment)
    assert ids(login(owner).get(LIST)) == {seen.pk}


def test_no_role_is_refused(login, ours):
    decision(ours[0])
    nobody = UserFactory(username="nobody")
    assert login(nobody).get(LIST).status_code == 403


def test_anonymous_goes_to_sign_in(client, ours):
    response = client.get(LIST)
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_filters(login, risk, ours, theirs):
    now = timezone.now()
    allow = decision(ours[0], at=now)
    deny = decision(theirs, allowed=False, at=now)
    staging = decision(ours[0], environment="staging", at=now)
    old = decision(ours[0], at=now - dt.timedelta(days=10))
    client = login(risk)
    assert ids(client.get(LIST, {"decision": "deny"})) == {deny.pk}
    assert ids(client.get(LIST, {"decision": "allow"})) == {
        allow.pk,
        staging.pk,
        old.pk,
    }
    assert ids(client.get(LIST, {"model": "FRAUD-scorer"})) == {deny.pk}
    assert ids(client.get(LIST, {"model": str(theirs.pk)})) == {deny.pk}
    assert ids(client.get(LIST, {"environment": "staging"})) == {staging.pk}
    day = (
        (now - dt.timedelta(days=10)).astimezone(timezone.get_current_timezone()).date()
    )
    assert ids(client.get(LIST, {"date_from": day, "date_to": day})) == {old.pk}
    assert old.pk not in ids(client.get(LIST, {"date_from": now.date()}))
    # A bad value is a form error, never a 500.
    response = client.get(LIST, {"decision": "maybe", "date_from": "yesterday"})
    assert response.status_code == 200


def test_sorted_newest_first_or_oldest_first(login, risk, ours):
    now = timezone.now()
    first = decision(ours[0], at=now - dt.timedelta(hours=2))
    second = decision(ours[0], at=now - dt.timedelta(hours=1))
    client = login(risk)
    page = client.get(LIST).content.decode()
    assert page.index(f"#{second.pk}<") < page.index(f"#{first.pk}<")
    page = client.get(LIST, {"sort": "created_at"}).content.decode()
    assert page.index(f"#{first.pk}<") < page.index(f"#{second.pk}<")


def test_reasons_are_escaped(login, risk, theirs):
    row = decision(theirs, allowed=False)
    page = login(risk).get(reverse("governance:gate_decision_detail", args=[row.pk]))
    assert page.status_code == 200
    assert b"&lt;b&gt;pending&lt;/b&gt; approval" in page.content
    assert b"<b>pending</b>" not in page.content
    assert b"version_not_approved" in page.content


def test_csv_export(login, risk, ours, theirs):
    decision(ours[0], deployment=ours[1])
    decision(theirs, allowed=False)
    response = login(risk).get(LIST, {"export": "csv", "decision": "deny"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = (
        b"".join(response.streaming_content).decode()
        if response.streaming
        else response.content.decode()
    )
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    assert len(rows) == 1
    assert rows[0]["decision"] == "deny"
    assert rows[0]["model"] == "fraud-scorer"
    assert rows[0]["reason_codes"] == "version_not_approved"
    assert rows[0]["asked_by"] == "token:abc123"


def test_owner_csv_is_scoped(login, owner, ours, theirs):
    decision(ours[0])
    decision(theirs)
    response = login(owner).get(LIST, {"export": "csv"})
    body = (
        b"".join(response.streaming_content).decode()
        if response.streaming
        else response.content.decode()
    )
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    assert [r["model"] for r in rows] == ["credit-scorer"]


def test_detail_shows_inputs_and_reasons(login, compliance, ours):
    row = decision(ours[0], allowed=False, deployment=ours[1])
    page = login(compliance).get(
        reverse("governance:gate_decision_detail", args=[row.pk])
    )
    text = page.content.decode()
    assert page.status_code == 200
    assert "credit-prod" in text
    assert "&quot;version&quot;: &quot;4&quot;" in text
    assert 'data-testid="decision">deny<' in text


def test_htmx_fragment(login, risk, ours):
    decision(ours[0])
    response = login(risk).get(LIST, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert b"<html" not in response.content
    assert b"gate-table" in response.content


@pytest.mark.parametrize("role", ["risk", "owner"])
def test_constant_queries(request, login, team_a, role, django_assert_max_num_queries):
    user = request.getfixturevalue(role)
    client = login(user)

    def fill(n):
        for i in range(n):
            model = AIModelFactory(team=team_a)
            deployment = DeploymentFactory(model=model)
            decision(model, deployment=deployment, allowed=i % 2 == 0)

    fill(3)
    client.get(LIST)  # warm the per-process caches
    with django_assert_max_num_queries(6) as few:
        assert client.get(LIST).status_code == 200
    fill(27)
    with django_assert_max_num_queries(len(few)):
        response = client.get(LIST)
    assert len(ids(response)) == 30


def test_audit_event_links_to_the_decision(login, risk):
    clean_release()
    token, _ = gate_token()
    row = gate.gate_decide(
        request=gate.GateRequest(
            model="fraud-scorer", version="4", environment="production"
        ),
        token=token,
    )
    seq = AuditEvent.objects.get(object_type="governance.gatedecision").seq
    page = login(risk).get(reverse("governance:audit_detail", args=[seq]))
    assert (
        reverse("governance:gate_decision_detail", args=[row.pk]).encode()
        in page.content
    )
