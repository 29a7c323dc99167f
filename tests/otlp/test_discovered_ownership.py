"""Issue 9, item 2: a deployment discovered from traces belongs to its known model's team,
its model's owner sees it (shown as inherited), and it still counts as ownerless."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from inventory import models as m
from inventory import permissions, selectors, services
from inventory.roles import Role
from tests.factories import AIModelFactory, DeploymentFactory, TeamFactory, UserFactory
from tests.otlp.spans import chat_spans, protobuf_body

pytestmark = pytest.mark.django_db

START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _send(client, token: str) -> m.Deployment:
    response = client.generic(
        "POST",
        "/v1/traces",
        data=protobuf_body(chat_spans(START, n=2)),
        content_type="application/x-protobuf",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.content
    return m.Deployment.objects.get(source__startswith="otlp:")


@pytest.fixture
def retired_model(team_a):
    # The model's owner is deliberately not a member of its team: they see the shadow
    # deployment because the model is theirs, not through the team.
    model_owner = UserFactory(username="mo", role=Role.OWNER)
    return AIModelFactory(
        name="support-chat-llm",
        team=team_a,
        owner=model_owner,
        lifecycle=m.AIModel.Lifecycle.RETIRED,
    )


def test_shadow_deployment_of_a_known_model_is_its_team_and_owner_to_see(
    client, telemetry_token, retired_model, owner, other_owner
):
    shadow = _send(client, telemetry_token)

    assert shadow.model_id == retired_model.pk
    assert shadow.team_id == retired_model.team_id
    # Not made accountable: still ownerless, by the one rule every count uses.
    assert shadow.owner_id is None
    assert m.Deployment.objects.ownerless().filter(pk=shadow.pk).exists()
    model_owner = retired_model.owner

    for reader in (model_owner, owner):  # the model's owner; a member of its team
        assert selectors.deployment_list(user=reader).filter(pk=shadow.pk).exists()
        client.force_login(reader)
        page = client.get(shadow.get_absolute_url())
        assert page.status_code == 200
        html = page.content.decode()
        assert 'data-testid="inherited-owner"' in html
        assert "its model's owner, mo, sees it (inherited" in html
        assert "no owner" in html
        listed = client.get(reverse("inventory:deployment_list") + "?risk=ownerless")
        assert shadow.name in listed.content.decode()
    # Someone else's team: it does not exist for them.
    client.force_login(other_owner)
    assert client.get(shadow.get_absolute_url()).status_code == 404
    # Seeing it does not make it the model owner's to change.
    assert not permissions.can_change(model_owner, shadow)


def test_the_api_shows_the_inherited_owner_apart_from_the_owner(
    client, telemetry_token, retired_model
):
    shadow = _send(client, telemetry_token)
    _, raw = services.api_token_issue(actor=None, name="r", scopes=["read"], days=1)
    body = client.get(
        f"/api/v1/deployments/{shadow.pk}/", headers={"Authorization": f"Bearer {raw}"}
    ).json()
    assert body["owner"] is None
    assert body["inherited_owner"] == {
        "id": retired_model.owner_id,
        "username": "mo",
    }
    assert body["team"]["id"] == retired_model.team_id
    assert body["model_lifecycle"] == "retired"


def test_an_unknown_model_stays_without_a_team(client, telemetry_token):
    TeamFactory(name="Unrelated")
    shadow = _send(client, telemetry_token)
    assert (shadow.team_id, shadow.owner_id) == (None, None)
    assert shadow.model.team_id is None


def test_a_model_owner_does_not_see_a_deployment_someone_owns(
    client, retired_model, other_owner
):
    """Inherited only when nobody owns it: an owned deployment of their model in
    another team stays that team's."""
    owned = DeploymentFactory(
        model=retired_model, team=TeamFactory(name="Other"), owner=other_owner
    )
    client.force_login(retired_model.owner)
    assert client.get(owned.get_absolute_url()).status_code == 404


def test_a_model_owner_reads_only_the_ownerless_deployments_of_their_own_models(
    team_a, other_owner
):
    """The inherited read compares a deployment's model with the ids of the models the
    reader owns (read with their roles): ownerless deployments of their models, and no
    deployment another person owns or of a model someone else owns."""
    reader = UserFactory(username="mo2", role=Role.OWNER)
    theirs = AIModelFactory(team=team_a, owner=reader)
    others = AIModelFactory(team=team_a, owner=other_owner)
    inherited = DeploymentFactory(model=theirs, team=team_a, owner=None)
    owned_elsewhere = DeploymentFactory(model=theirs, team=team_a, owner=other_owner)
    not_theirs = DeploymentFactory(model=others, team=team_a, owner=None)

    seen = set(selectors.deployment_list(user=reader).values_list("pk", flat=True))

    assert inherited.pk in seen
    assert owned_elsewhere.pk not in seen and not_theirs.pk not in seen
    assert permissions.owned_model_ids(reader) == {theirs.pk}
    # Someone who owns no model reads no ownerless deployment through a model.
    nobody = UserFactory(username="nobody", role=Role.OWNER)
    assert not selectors.deployment_list(user=nobody).filter(pk=inherited.pk).exists()
