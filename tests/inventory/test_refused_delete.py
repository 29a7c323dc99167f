"""A delete that references refuse (PROTECT / RESTRICT) names what still holds the object,
with links, as a 409 on the confirm page: never a 500, never a bare redirect."""

from __future__ import annotations

import pytest
from django.urls import reverse

from inventory import models as m
from tests.factories import AIModelFactory, DeploymentFactory, IdentityFactory

pytestmark = pytest.mark.django_db


def test_a_model_still_deployed_names_its_deployments(client, admin_user, team_a):
    model = AIModelFactory(name="fraud-scorer", team=team_a)
    deployments = [
        DeploymentFactory(name=f"fraud-scorer-{env}", model=model, team=team_a)
        for env in ("dev", "prod", "staging")
    ]
    client.force_login(admin_user)
    response = client.post(reverse("inventory:aimodel_delete", args=[model.pk]))
    assert response.status_code == 409
    body = response.content.decode()
    assert (
        "3 deployments still reference this model; remove or reassign them first."
        in body
    )
    for deployment in deployments:
        assert (
            f'<a href="{deployment.get_absolute_url()}">{deployment.name}</a>' in body
        )
    assert m.AIModel.objects.filter(pk=model.pk).exists()


def test_a_team_names_every_kind_that_still_belongs_to_it(client, admin_user, team_a):
    IdentityFactory(name="svc-a", team=team_a)
    IdentityFactory(name="svc-b", team=team_a)
    AIModelFactory(name="churn-xgb", team=team_a)
    client.force_login(admin_user)
    response = client.post(reverse("inventory:team_delete", args=[team_a.pk]))
    assert response.status_code == 409
    body = response.content.decode()
    assert "1 model and 2 non-human identities still reference this team" in body
    assert ">svc-a</a>, <a" in body and ">churn-xgb</a>" in body
    assert m.Team.objects.filter(pk=team_a.pk).exists()


def test_one_reference_reads_in_the_singular(client, admin_user, team_a):
    model = AIModelFactory(name="solo", team=team_a)
    DeploymentFactory(name="solo-prod", model=model, team=team_a)
    client.force_login(admin_user)
    response = client.post(reverse("inventory:aimodel_delete", args=[model.pk]))
    assert response.status_code == 409
    assert (
        "1 deployment still references this model; remove or reassign it first."
        in response.content.decode()
    )


def test_an_unreferenced_object_is_deleted(client, admin_user, team_a):
    model = AIModelFactory(name="unused", team=team_a)
    client.force_login(admin_user)
    response = client.post(reverse("inventory:aimodel_delete", args=[model.pk]))
    assert response.status_code == 302
    assert not m.AIModel.objects.filter(pk=model.pk).exists()
