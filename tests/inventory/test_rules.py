"""Issue 7, item 4: each rule is written once (inventory.querysets) and the list filter,
the API filter, the dashboard count and the queryset method agree on the same data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from inventory import models as m
from inventory import selectors, services
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
)

pytestmark = pytest.mark.django_db
D, NHI = m.Deployment, m.NonHumanIdentity


@pytest.fixture
def api(client, admin_user):
    # Issued by a person, so the token's own identity has an owner and is no one's risk.
    _, raw = services.api_token_issue(
        actor=admin_user, name="reader", scopes=[m.APIToken.Scope.READ], days=30
    )

    def names(endpoint: str, **params) -> set[str]:
        response = client.get(
            f"/api/v1/{endpoint}/",
            {**params, "page_size": 200},
            headers={"Authorization": f"Bearer {raw}"},
        )
        assert response.status_code == 200, response.content
        return {row["name"] for row in response.json()["results"]}

    return names


@pytest.fixture
def listed(client, admin_user):
    def names(url_name: str, candidates, **params) -> set[str]:
        client.force_login(admin_user)
        body = client.get(reverse(url_name), params).content.decode()
        return {c.name for c in candidates if f">{c.name}<" in body}

    return names


@pytest.fixture
def headline(client, admin_user):
    def value(key: str) -> int:
        cache.clear()  # the dashboard keeps its figures a minute
        client.force_login(admin_user)
        response = client.get(reverse("dashboard"))
        return next(h.value for h in response.context["headlines"] if h.key == key)

    return value


@pytest.fixture
def deployments(owner):
    model = AIModelFactory()
    v1, v2, v3 = (ModelVersionFactory(model=model, approval="approved") for _ in "123")
    model.baseline_version = v1
    model.save()
    other = AIModelFactory()  # no baseline at all: never drift
    made = {
        "on-baseline": DeploymentFactory(model=model, observed_version=v1, owner=owner),
        "model-drift": DeploymentFactory(model=model, observed_version=v2, owner=owner),
        # The committee's pin wins over the model's baseline, both ways.
        "pinned-ok": DeploymentFactory(
            model=model, observed_version=v3, approved_version=v3, owner=owner
        ),
        "pinned-drift": DeploymentFactory(
            model=model, observed_version=v1, approved_version=v3
        ),
        "unregistered": DeploymentFactory(
            model=model, observed_version=None, observed_version_label="9.9"
        ),
        "no-baseline": DeploymentFactory(model=other, observed_version=None),
        "silent": DeploymentFactory(
            model=other, last_seen_at=timezone.now() - timedelta(hours=100)
        ),
    }
    for name, d in made.items():
        D.objects.filter(pk=d.pk).update(name=name)
        d.name = name
    return made


def test_drift_is_observed_not_equal_to_the_baseline_everywhere(
    deployments, api, listed, headline
):
    expected = {"model-drift", "pinned-drift", "unregistered"}
    everything = deployments.values()
    assert {d.name for d in D.objects.drifting()} == expected
    assert {d.name for d in everything if d.version_drift} == expected
    assert listed("inventory:deployment_list", everything, risk="drift") == expected
    assert api("deployments", risk="drift") == expected
    assert headline("drift") == len(expected)


def test_unregistered_agrees_in_the_list_and_the_api(deployments, api, listed):
    expected = {"unregistered"}
    everything = deployments.values()
    assert {d.name for d in D.objects.unregistered()} == expected
    assert (
        listed("inventory:deployment_list", everything, risk="unregistered") == expected
    )
    assert api("deployments", risk="unregistered") == expected


def test_silent_reads_the_policy(deployments, api, listed, admin_user):
    everything = deployments.values()
    assert api("deployments", risk="silent") == {"silent"}
    assert listed("inventory:deployment_list", everything, risk="silent") == {"silent"}
    services.policy_update(actor=admin_user, silent_after_hours=200)
    assert api("deployments", risk="silent") == set()
    assert not D.objects.silent(selectors.policy_current()).exists()


def test_ownerless_deployments_mean_no_accountable_person(
    deployments, api, listed, headline
):
    expected = {"pinned-drift", "unregistered", "no-baseline", "silent"}
    everything = deployments.values()
    assert {d.name for d in D.objects.ownerless()} == expected
    assert listed("inventory:deployment_list", everything, risk="ownerless") == expected
    assert api("deployments", risk="ownerless") == expected
    assert headline("ownerless_deployments") == len(expected)


@pytest.fixture
def identities(owner, team_a):
    now = timezone.now()
    retired = AIModelFactory(lifecycle=m.AIModel.Lifecycle.RETIRED)
    on_retired = DeploymentFactory(model=retired)
    made = {
        "fresh": IdentityFactory(
            owner=owner, issued_at=now - timedelta(days=5), last_used_at=now
        ),
        # A team but no person: ownerless (rule change: a team is not accountable).
        "team-only": IdentityFactory(
            team=team_a, owner=None, issued_at=now - timedelta(days=5), last_used_at=now
        ),
        "unused-40": IdentityFactory(
            owner=owner,
            issued_at=now - timedelta(days=10),
            last_used_at=now - timedelta(days=40),
        ),
        "never-used-old": IdentityFactory(
            owner=owner, issued_at=now - timedelta(days=200), rotated_at=now
        ),
        "unrotated": IdentityFactory(
            owner=owner,
            issued_at=now - timedelta(days=200),
            rotated_at=now - timedelta(days=120),
            last_used_at=now,
        ),
        "expired": IdentityFactory(
            owner=owner,
            issued_at=now - timedelta(days=5),
            last_used_at=now,
            expires_at=now - timedelta(days=1),
        ),
        "revoked-old": IdentityFactory(
            owner=owner,
            status=NHI.Status.REVOKED,
            issued_at=now - timedelta(days=400),
        ),
        "bound-retired": IdentityFactory(
            owner=owner, issued_at=now - timedelta(days=5), last_used_at=now
        ),
    }
    made["bound-retired"].deployments.add(on_retired)
    for name, i in made.items():
        NHI.objects.filter(pk=i.pk).update(name=name)
        i.name = name
    return made


def _agree(identities, api, listed, risk: str) -> set[str]:
    from_list = listed("inventory:identity_list", identities.values(), risk=risk)
    assert api("identities", risk=risk) == from_list
    return from_list


def test_ownerless_identities_agree(identities, api, listed, headline):
    expected = {"team-only"}
    assert {i.name for i in NHI.objects.ownerless()} == expected
    assert _agree(identities, api, listed, "ownerless") == expected
    assert headline("ownerless_identities") == len(expected)


def test_unused_and_its_alias_stale_agree_and_follow_the_policy(
    identities, api, listed, headline, admin_user
):
    policy = selectors.policy_current()
    assert policy.unused_after_days == 90  # the old STALE_AFTER_DAYS
    expected = {"never-used-old"}
    assert {i.name for i in NHI.objects.unused(policy)} == expected
    assert {i.name for i in NHI.objects.stale(policy)} == expected
    assert _agree(identities, api, listed, "unused") == expected
    assert _agree(identities, api, listed, "stale") == expected
    assert headline("stale_identities") == len(expected)

    services.policy_update(actor=admin_user, unused_after_days=30)
    expected = {"never-used-old", "unused-40"}
    assert _agree(identities, api, listed, "unused") == expected
    assert _agree(identities, api, listed, "stale") == expected
    assert headline("stale_identities") == len(expected)


def test_unrotated_follows_the_policy(identities, api, listed, admin_user):
    expected = {"unrotated"}
    assert {i.name for i in NHI.objects.unrotated(selectors.policy_current())} == (
        expected
    )
    assert _agree(identities, api, listed, "unrotated") == expected
    services.policy_update(actor=admin_user, unrotated_after_days=150)
    assert _agree(identities, api, listed, "unrotated") == set()


def test_expired_and_bound_to_a_retired_model_agree(identities, api, listed):
    assert {i.name for i in NHI.objects.expired()} == {"expired"}
    assert _agree(identities, api, listed, "expired") == {"expired"}
    assert {i.name for i in NHI.objects.bound_to_retired_model()} == {"bound-retired"}
    assert _agree(identities, api, listed, "retired_model") == {"bound-retired"}


def test_the_policy_is_edited_by_an_administrator_and_audited(
    client, admin_user, owner
):
    url = reverse("governance:policy")
    client.force_login(owner)
    page = client.get(url)
    assert page.status_code == 200 and b'data-testid="policy-read-only"' in page.content
    assert client.post(url, {"unused_after_days": "5"}).status_code == 403

    client.force_login(admin_user)
    values = {
        "unrotated_after_days": "60",
        "unused_after_days": "45",
        "silent_after_hours": "12",
    }
    assert client.post(url, values).status_code == 302
    policy = selectors.policy_current()
    assert (
        policy.unrotated_after_days,
        policy.unused_after_days,
        policy.silent_after_hours,
    ) == (60, 45, 12)
    event = AuditEvent.objects.get(action="policy.update")
    assert (event.before["unused_after_days"], event.after["unused_after_days"]) == (
        90,
        45,
    )
    # Bad input: a 422 and nothing written, never a 500 or half a change.
    for bad in (
        {**values, "unused_after_days": "0"},
        {**values, "silent_after_hours": "x"},
    ):
        response = client.post(url, bad)
        assert response.status_code == 422
    assert selectors.policy_current().unused_after_days == 45
    assert AuditEvent.objects.filter(action="policy.update").count() == 1


def test_a_versions_page_lists_the_deployments_held_to_it_by_the_baseline_rule(
    client, admin_user
):
    """`held_to` is the BASELINE rule (a pin, else the model's baseline) for one version:
    pinned to it, or unpinned on its model while it is the model's baseline; the
    version's page lists exactly those."""
    model = AIModelFactory()
    v1, v2 = ModelVersionFactory(model=model), ModelVersionFactory(model=model)
    model.baseline_version = v1
    model.save(update_fields=["baseline_version"])
    unpinned = DeploymentFactory(model=model, name="unpinned", approved_version=None)
    pinned_v1 = DeploymentFactory(model=model, name="pinned-v1", approved_version=v1)
    pinned_v2 = DeploymentFactory(model=model, name="pinned-v2", approved_version=v2)
    other = DeploymentFactory(name="other-model", approved_version=None)
    elsewhere = AIModelFactory()
    on_other_model = DeploymentFactory(
        model=elsewhere, name="pinned-across", approved_version=v1
    )

    def held(version) -> set[str]:
        version = m.ModelVersion.objects.select_related("model").get(pk=version.pk)
        return set(D.objects.held_to(version).values_list("name", flat=True))

    assert held(v1) == {unpinned.name, pinned_v1.name, on_other_model.name}
    assert held(v2) == {pinned_v2.name}
    # Every deployment's own baseline agrees with it.
    for d in (unpinned, pinned_v1, pinned_v2, other, on_other_model):
        d.refresh_from_db()
        assert (d.name in held(v1)) == (d.baseline_version_id == v1.pk)
    client.force_login(admin_user)
    page = client.get(v1.get_absolute_url()).content.decode()
    for name in ("unpinned", "pinned-v1", "pinned-across"):
        assert name in page
    assert "pinned-v2" not in page
