from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from inventory import services
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
)


@pytest.mark.django_db
def test_lookup_suggests_only_visible_matches(client, owner, team_a, team_b):
    mine = DeploymentFactory(model=AIModelFactory(team=team_a), name="fraud-scorer-eu")
    DeploymentFactory(model=AIModelFactory(team=team_b), name="fraud-scorer-us")
    client.force_login(owner)
    body = client.get(
        reverse("inventory:lookup", args=["deployment"]), {"upstream": "fraud"}
    ).content.decode()
    assert f'<option value="{mine.pk}">fraud-scorer-eu</option>' in body
    assert "fraud-scorer-us" not in body


@pytest.mark.django_db
def test_version_lookup_follows_the_chosen_model(client, admin_user, team_a):
    model, other = AIModelFactory(team=team_a), AIModelFactory(team=team_a)
    wanted, unwanted = (
        ModelVersionFactory(model=model, version="7.1"),
        ModelVersionFactory(model=other, version="7.2"),
    )
    client.force_login(admin_user)
    body = client.get(
        reverse("inventory:lookup", args=["modelversion"]),
        {"model": model.pk, "observed_version": "7"},
    ).content.decode()
    assert f'value="{wanted.pk}"' in body and f'value="{unwanted.pk}"' not in body


@pytest.mark.django_db
def test_lookup_is_bounded_and_rejects_unknown_kinds(client, admin_user, team_a):
    model = AIModelFactory(team=team_a)
    for i in range(30):
        DeploymentFactory(model=model, name=f"dep-{i:02d}")
    client.force_login(admin_user)
    body = client.get(
        reverse("inventory:lookup", args=["deployment"]), {"q": "dep"}
    ).content.decode()
    assert body.count("<option") == 20
    assert client.get(reverse("inventory:lookup", args=["secret"])).status_code == 404


@pytest.mark.django_db
def test_deployment_form_renders_lookups_not_selects_of_every_row(
    client, admin_user, team_a
):
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a, name="churn-xgb"))
    client.force_login(admin_user)
    body = client.get(
        reverse("inventory:deployment_edit", args=[deployment.pk])
    ).content.decode()
    assert 'list="id_model-options"' in body
    assert "Currently: churn-xgb" in body
    assert '<select name="model"' not in body


@pytest.mark.django_db
def test_owner_binds_and_unbinds_an_identity(client, owner, team_a, team_b):
    identity = IdentityFactory(team=team_a)
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a))
    foreign = DeploymentFactory(model=AIModelFactory(team=team_b))
    client.force_login(owner)
    client.post(
        reverse("inventory:identity_bind", args=[identity.pk]),
        {"deployment": deployment.pk},
    )
    assert list(identity.deployments.all()) == [deployment]
    # Another team's deployment is not a valid choice for this owner.
    client.post(
        reverse("inventory:identity_bind", args=[identity.pk]),
        {"deployment": foreign.pk},
    )
    assert list(identity.deployments.all()) == [deployment]
    client.post(reverse("inventory:identity_unbind", args=[identity.pk, deployment.pk]))
    assert not identity.deployments.exists()
    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.action for e in events] == [
        "nonhumanidentity.bind",
        "nonhumanidentity.unbind",
    ]
    assert events[0].before["deployments"] == [] and events[0].after["deployments"] == [
        deployment.pk
    ]


@pytest.mark.django_db
def test_binding_twice_is_refused_without_a_second_event(owner, team_a):
    identity = IdentityFactory(team=team_a)
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a))
    services.identity_bind(actor=owner, identity=identity, deployment=deployment)
    with pytest.raises(services.ValidationError):
        services.identity_bind(actor=owner, identity=identity, deployment=deployment)
    assert AuditEvent.objects.count() == 1


@pytest.mark.django_db
def test_auditor_cannot_bind(client, auditor, team_a):
    identity = IdentityFactory(team=team_a)
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a))
    client.force_login(auditor)
    response = client.post(
        reverse("inventory:identity_bind", args=[identity.pk]),
        {"deployment": deployment.pk},
    )
    assert response.status_code == 403 and not identity.deployments.exists()
