"""The tier policy page, the deployment's "Risk tier" panel and the committee's override:
permissions, bad input (4xx or form errors, never a 500), audit events, query counts."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from audit.models import AuditEvent
from governance import tiers
from governance.models import TierOverride, TierPolicy
from inventory import models as m
from tests.factories import AIModelFactory, DeploymentFactory, SystemFactory

pytestmark = pytest.mark.django_db

POLICY_URL = reverse("governance:tier_policy")
D = m.Deployment


def policy_post(**changes) -> dict[str, int]:
    data = {name: getattr(TierPolicy(), name) for name in tiers.POLICY_FIELDS}
    data.update(changes)
    return data


@pytest.fixture
def deployment(team_a):
    return DeploymentFactory(
        model=AIModelFactory(team=team_a, sensitivity=m.Sensitivity.LOW),
        exposure=D.Exposure.EXTERNAL,
        environment=D.Environment.DEVELOPMENT,
    )  # score 30: tier 3


def in_days(n: int) -> str:
    return (timezone.now().date() + dt.timedelta(days=n)).isoformat()


# -- policy page ----------------------------------------------------------------
def test_everyone_reads_the_policy_and_the_counts(login, owner, deployment):
    tiers.recompute()
    response = login(owner).get(POLICY_URL)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="tier-policy-read-only"' in body
    assert 'data-testid="tier-policy-form"' not in body
    chart = response.context["chart_data"][0]
    assert chart["series"][0]["values"] == [0, 0, 1, 0]
    assert "vendor/plotly/plotly.min.js" in body


def test_the_counts_are_scoped_to_what_the_user_reads(
    login, other_owner, admin_user, deployment
):
    tiers.recompute()
    assert dict(login(other_owner).get(POLICY_URL).context["counts"])[3] == 0
    assert dict(login(admin_user).get(POLICY_URL).context["counts"])[3] == 1


def test_admin_changes_weights_and_tiers_move(login, admin_user, deployment):
    tiers.recompute()
    response = login(admin_user).post(
        POLICY_URL, policy_post(weight_external=75), follow=True
    )
    assert response.status_code == 200
    deployment.refresh_from_db()
    assert (deployment.risk_tier, deployment.risk_score) == (1, 75)
    event = AuditEvent.objects.get(action="tier_policy.update")
    assert event.before["weight_external"] == 30
    assert event.after["weight_external"] == 75
    assert event.actor_id == admin_user.pk
    assert "1 deployment changed" in response.content.decode()


def test_saving_the_same_values_writes_no_event(login, admin_user):
    login(admin_user).post(POLICY_URL, policy_post())
    login(admin_user).post(POLICY_URL, policy_post())
    assert AuditEvent.objects.filter(action="tier_policy.update").count() == 0


@pytest.mark.parametrize("user_fixture", ["owner", "risk", "auditor", "compliance"])
def test_only_an_administrator_edits_the_policy(request, login, user_fixture):
    user = request.getfixturevalue(user_fixture)
    response = login(user).post(POLICY_URL, policy_post(weight_external=99))
    assert response.status_code == 403
    assert not TierPolicy.objects.exists()
    assert not AuditEvent.objects.filter(action="tier_policy.update").exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"tier1_min_score": 40, "tier2_min_score": 45},  # not descending
        {"tier2_min_score": 20, "tier3_min_score": 20},  # equal
        {"weight_external": 101},
        {"weight_external": -1},
        {"weight_external": "lots"},
        {"tier1_min_score": ""},
        {"tier3_min_score": 0},
        {"weight_production": "9" * 40},
    ],
)
def test_bad_policy_input_is_a_form_error(login, admin_user, changes):
    response = login(admin_user).post(POLICY_URL, policy_post(**changes))
    assert response.status_code == 422
    assert 'data-testid="tier-policy-error"' in response.content.decode()
    assert not TierPolicy.objects.exists()
    assert not AuditEvent.objects.filter(action="tier_policy.update").exists()


def test_the_descending_rule_is_said_in_words(login, admin_user):
    response = login(admin_user).post(
        POLICY_URL, policy_post(tier1_min_score=10, tier2_min_score=45)
    )
    assert escape(tiers.CUTOFFS_MUST_DESCEND) in response.content.decode()


def test_policy_page_queries_do_not_grow(
    login, admin_user, django_assert_max_num_queries, team_a
):
    client = login(admin_user)
    DeploymentFactory.create_batch(3, model=AIModelFactory(team=team_a))
    client.get(POLICY_URL)
    with django_assert_max_num_queries(6) as few:
        client.get(POLICY_URL)
    DeploymentFactory.create_batch(30, model=AIModelFactory(team=team_a))
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(POLICY_URL)


def test_a_large_inventory_recomputes_in_a_task(
    login, admin_user, deployment, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(tiers, "INLINE_MAX", 0)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = login(admin_user).post(
            POLICY_URL, policy_post(weight_external=75), follow=True
        )
    assert len(callbacks) == 1
    assert "being recomputed" in response.content.decode()
    # The task ran (eagerly in tests) once the policy committed.
    deployment.refresh_from_db()
    assert deployment.risk_tier == 1


# -- the deployment's panel ------------------------------------------------------
def panel_url(d) -> str:
    return reverse("governance:deployment_tier", args=[d.pk])


def test_the_panel_explains_the_tier(login, owner, deployment):
    system = SystemFactory(team=deployment.team, sensitivity=m.Sensitivity.HIGH)
    deployment.system = system
    deployment.save(update_fields=["system"])
    tiers.recompute()
    response = login(owner).get(panel_url(deployment), headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    explanation = response.context["explanation"]
    assert explanation.score == 45 and explanation.effective_tier == 2
    assert 'data-fact="external"' in body
    assert "Sensitivity: High" in body and "from its system" in body
    assert "Tier 1 from 70, tier 2 from 45, tier 3 from 20" in body
    # An owner reads why, but is not offered the override.
    assert 'data-testid="tier-override-form"' not in body
    assert "<html" not in body  # the fragment


def test_the_detail_page_includes_the_panel_without_more_queries(
    login, risk, deployment
):
    response = login(risk).get(deployment.get_absolute_url())
    body = response.content.decode()
    assert 'data-testid="deployment-tier"' in body
    assert panel_url(deployment) in body


def test_another_teams_deployment_is_a_404(login, other_owner, deployment):
    client = login(other_owner)
    assert client.get(panel_url(deployment)).status_code == 404
    url = reverse("governance:deployment_tier_override", args=[deployment.pk])
    assert client.post(url, {"tier": 1, "reason": "x"}).status_code == 404


def override_url(d) -> str:
    return reverse("governance:deployment_tier_override", args=[d.pk])


def end_url(d) -> str:
    return reverse("governance:deployment_tier_end", args=[d.pk])


@pytest.mark.parametrize("user_fixture", ["risk", "admin_user"])
def test_committee_and_admin_override_with_audit(
    request, login, user_fixture, deployment
):
    user = request.getfixturevalue(user_fixture)
    client = login(user)
    response = client.post(
        override_url(deployment),
        {"tier": "1", "reason": "Moves money", "expires_on": in_days(30)},
    )
    assert response.status_code == 302
    assert response["Location"] == deployment.get_absolute_url()
    deployment.refresh_from_db()
    assert deployment.risk_tier == 1
    event = AuditEvent.objects.get(action="tier.override")
    assert event.object_id == str(deployment.pk)
    assert event.object_type == "inventory.deployment"
    assert event.after["override"]["reason"] == "Moves money"
    assert event.after["risk_tier"] == 1 and event.before["risk_tier"] == 4
    panel = client.get(panel_url(deployment)).content.decode()
    assert "Moves money" in panel and user.get_username() in panel
    client.post(end_url(deployment))
    deployment.refresh_from_db()
    assert deployment.risk_tier == 3
    assert AuditEvent.objects.filter(action="tier.override_end").count() == 1


@pytest.mark.parametrize("user_fixture", ["owner", "auditor", "compliance"])
def test_others_cannot_override_or_end(request, login, user_fixture, deployment, risk):
    tiers.tier_override_set(
        actor=risk,
        deployment=deployment,
        tier=2,
        reason="r",
        expires_at=timezone.now() + dt.timedelta(days=3),
    )
    client = login(request.getfixturevalue(user_fixture))
    data = {"tier": "1", "reason": "mine", "expires_on": in_days(5)}
    assert client.post(override_url(deployment), data).status_code == 403
    assert client.post(end_url(deployment)).status_code == 403
    assert TierOverride.objects.count() == 1
    assert tiers.override_in_force(deployment.pk).tier == 2
    assert AuditEvent.objects.filter(action__startswith="tier.").count() == 1


@pytest.mark.parametrize(
    "data",
    [
        {"tier": "0", "reason": "r", "expires_on": "+30"},
        {"tier": "5", "reason": "r", "expires_on": "+30"},
        {"tier": "one", "reason": "r", "expires_on": "+30"},
        {"tier": "1", "reason": "", "expires_on": "+30"},
        {"tier": "1", "reason": "   ", "expires_on": "+30"},
        {"tier": "1", "reason": "x" * 3000, "expires_on": "+30"},
        {"tier": "1", "reason": "r", "expires_on": "+0"},
        {"tier": "1", "reason": "r", "expires_on": "-3"},
        {"tier": "1", "reason": "r", "expires_on": "+366"},
        {"tier": "1", "reason": "r", "expires_on": "0001-01-01"},
        {"tier": "1", "reason": "r", "expires_on": "9999-12-31"},
        {"tier": "1", "reason": "r", "expires_on": "tomorrow"},
        {"tier": "1", "reason": "r"},
        {"tier": "1", "reason": "r\x00", "expires_on": "+30"},
    ],
)
def test_bad_override_input_is_a_form_error(login, risk, deployment, data):
    data = dict(data)
    if data.get("expires_on", "").startswith(("+", "-")):
        data["expires_on"] = in_days(int(data["expires_on"]))
    response = login(risk).post(override_url(deployment), data)
    assert response.status_code == 422
    assert 'data-testid="tier-override-error"' in response.content.decode()
    assert not TierOverride.objects.exists()
    assert not AuditEvent.objects.filter(action="tier.override").exists()


def test_the_longest_override_is_a_setting(login, risk, deployment, settings):
    settings.TIER_OVERRIDE_MAX_DAYS = 10
    client = login(risk)
    data = {"tier": "2", "reason": "r", "expires_on": in_days(20)}
    response = client.post(override_url(deployment), data)
    assert response.status_code == 422
    assert "at most 10 days" in response.content.decode()
    data["expires_on"] = in_days(9)
    assert client.post(override_url(deployment), data).status_code == 302


def test_ending_with_none_in_force_is_not_an_error_page(login, risk, deployment):
    response = login(risk).post(end_url(deployment), follow=True)
    assert response.status_code == 200
    assert escape(tiers.OVERRIDE_NONE_IN_FORCE) in response.content.decode()
    assert not AuditEvent.objects.filter(action="tier.override_end").exists()


def test_panel_queries_do_not_depend_on_overrides(
    login, risk, deployment, django_assert_max_num_queries
):
    client = login(risk)
    client.get(panel_url(deployment), headers={"HX-Request": "true"})
    with django_assert_max_num_queries(8) as before:
        client.get(panel_url(deployment), headers={"HX-Request": "true"})
    for _ in range(3):
        tiers.tier_override_set(
            actor=risk,
            deployment=deployment,
            tier=1,
            reason="r",
            expires_at=timezone.now() + dt.timedelta(days=3),
        )
    with django_assert_max_num_queries(len(before.captured_queries)):
        client.get(panel_url(deployment), headers={"HX-Request": "true"})


def test_chart_links_to_the_filtered_list(login, admin_user):
    chart = login(admin_user).get(POLICY_URL).context["chart_data"][0]
    links = chart["series"][0]["links"]
    assert links[0].endswith("?risk_tier=1")
    json.dumps(chart)  # the json_script island


def test_the_model_page_shows_its_tier(login, risk, deployment):
    tiers.recompute()
    body = login(risk).get(deployment.model.get_absolute_url()).content.decode()
    assert "Tier 3" in body
    empty = AIModelFactory(team=deployment.team)
    assert (
        "none: no deployment"
        in login(risk).get(empty.get_absolute_url()).content.decode()
    )
