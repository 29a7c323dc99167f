"""Bad input through the UI: a message, status 422, and nothing written."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from inventory import forms
from inventory import models as m
from tests.factories import AIModelFactory, DeploymentFactory, ModelVersionFactory


def _valid_deployment(model_obj: m.AIModel, team_obj: m.Team, **extra) -> dict:
    data = {
        "name": "checkout-fraud",
        "model": model_obj.pk,
        "environment": "production",
        "exposure": "internal",
        "team": team_obj.pk,
        "status": "active",
        "endpoint": "https://fraud.internal/v1",
    }
    data.update(extra)
    return data


@pytest.mark.django_db
def test_owner_creates_a_deployment_and_it_is_audited(client, owner, team_a):
    client.force_login(owner)
    model = AIModelFactory(team=team_a)
    response = client.post(
        reverse("inventory:deployment_create"), _valid_deployment(model, team_a)
    )
    deployment = m.Deployment.objects.get(name="checkout-fraud")
    assert (
        response.status_code == 302
        and response["Location"] == deployment.get_absolute_url()
    )
    assert AuditEvent.objects.filter(
        action="deployment.create", object_id=str(deployment.pk)
    ).exists()


@pytest.mark.django_db
def test_htmx_create_redirects_the_client(client, owner, team_a):
    client.force_login(owner)
    model = AIModelFactory(team=team_a)
    response = client.post(
        reverse("inventory:deployment_create"),
        _valid_deployment(model, team_a),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == m.Deployment.objects.get().get_absolute_url()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"name": ""}, "name"),
        ({"environment": "moon"}, "environment"),
        ({"model": "999999"}, "model"),
        ({"model": "not-a-number"}, "model"),
        ({"name": "x" * 201}, "name"),
    ],
)
def test_invalid_deployment_answers_422_and_writes_nothing(
    client, owner, team_a, override, field
):
    client.force_login(owner)
    model = AIModelFactory(team=team_a)
    response = client.post(
        reverse("inventory:deployment_create"),
        _valid_deployment(model, team_a, **override),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert re.search(
        rf'id="id_{field}".*?<div class="invalid-feedback d-block">', body, re.S
    )
    assert "<html" not in body and 'id="object-form"' in body
    assert not m.Deployment.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_version_of_another_model_is_refused(client, owner, team_a):
    client.force_login(owner)
    model, other = AIModelFactory(team=team_a), AIModelFactory(team=team_a)
    foreign = ModelVersionFactory(model=other)
    response = client.post(
        reverse("inventory:deployment_create"),
        _valid_deployment(model, team_a, observed_version=foreign.pk),
    )
    assert response.status_code == 422
    assert (
        forms.VERSION_OF_OTHER_MODEL
        in response.context["form"].errors["observed_version"]
    )
    assert not m.Deployment.objects.exists()


@pytest.mark.django_db
def test_owner_cannot_choose_another_team(client, owner, team_a, team_b):
    client.force_login(owner)
    model = AIModelFactory(team=team_a)
    response = client.post(
        reverse("inventory:deployment_create"),
        _valid_deployment(model, team_a, team=team_b.pk),
    )
    assert response.status_code == 422 and "team" in response.context["form"].errors
    assert not m.Deployment.objects.exists()


@pytest.mark.django_db
def test_edit_with_bad_input_leaves_the_row_unchanged(client, owner, team_a):
    client.force_login(owner)
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a), name="stable")
    response = client.post(
        reverse("inventory:deployment_edit", args=[deployment.pk]),
        _valid_deployment(deployment.model, team_a, name="", exposure="galactic"),
    )
    assert response.status_code == 422
    deployment.refresh_from_db()
    assert deployment.name == "stable" and not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_identity_dates_and_bounds_are_validated(client, owner, team_a):
    client.force_login(owner)
    response = client.post(
        reverse("inventory:identity_create"),
        {
            "name": "svc",
            "kind": "api_key",
            "status": "active",
            "team": team_a.pk,
            "issued_at": "2026-05-01T10:00",
            "expires_at": "2026-04-01T10:00",
            "scopes": "read, write",
        },
    )
    assert response.status_code == 422
    assert forms.DATES_INVERTED in response.context["form"].errors["expires_at"]
    model = AIModelFactory(team=team_a)
    response = client.post(
        reverse("inventory:modelversion_create"),
        {"model": model.pk, "version": "2", "approved_bounds": "[1, 2"},
    )
    assert response.status_code == 422
    assert forms.BOUNDS_INVALID in response.context["form"].errors["approved_bounds"]
    assert (
        not m.NonHumanIdentity.objects.exists() and not m.ModelVersion.objects.exists()
    )


@pytest.mark.django_db
def test_no_edit_form_carries_governed_state_for_any_role(client, owner, admin_user):
    """Rule change (issue 7, item 5): the committee moves approval on the approval form,
    not the edit form; lifecycle, status and the baseline pin have their own services too.
    (tests/inventory/test_governed_state.py shows a POST with them changes nothing.)"""
    for user in (owner, admin_user):
        client.force_login(user)
        forms_ = {
            name: client.get(reverse(f"inventory:{name}_create")).context["form"]
            for name in ("modelversion", "aimodel", "deployment")
        }
        assert "approval" not in forms_["modelversion"].fields
        assert "lifecycle" not in forms_["aimodel"].fields
        assert not {"status", "approved_version"} & set(forms_["deployment"].fields)


@pytest.mark.django_db
def test_delete_of_a_referenced_object_explains_instead_of_failing(
    client, admin_user, team_a
):
    client.force_login(admin_user)
    model = AIModelFactory(team=team_a)
    DeploymentFactory(model=model)
    response = client.post(
        reverse("inventory:aimodel_delete", args=[model.pk]), follow=True
    )
    # 409 on the confirm page, naming what refuses (tests/inventory/test_refused_delete.py).
    assert response.status_code == 409
    assert "1 deployment still references this model" in response.content.decode()
    assert m.AIModel.objects.filter(pk=model.pk).exists()


@pytest.mark.django_db
def test_dependencies_can_be_added_and_removed_by_the_owner(client, owner, team_a):
    client.force_login(owner)
    model = AIModelFactory(team=team_a)
    upstream, downstream = (
        DeploymentFactory(model=model),
        DeploymentFactory(model=model),
    )
    client.post(
        reverse("inventory:dependency_add", args=[downstream.pk]),
        {"upstream": upstream.pk, "kind": "pipeline"},
    )
    edge = m.Dependency.objects.get(upstream=upstream, downstream=downstream)
    page = client.get(downstream.get_absolute_url()).content.decode()
    assert upstream.name in page
    client.post(reverse("inventory:dependency_remove", args=[downstream.pk, edge.pk]))
    assert not m.Dependency.objects.exists()
    assert list(
        AuditEvent.objects.order_by("seq").values_list("action", flat=True)
    ) == ["dependency.create", "dependency.delete"]
    # An edge to itself is refused.
    client.post(
        reverse("inventory:dependency_add", args=[downstream.pk]),
        {"upstream": downstream.pk, "kind": "pipeline"},
    )
    assert not m.Dependency.objects.exists()
