"""The committee's cards sit below the facts they decide on, and show the last decision
with its note (fetched by the card: the object's page keeps its query budget)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from inventory import services
from tests.factories import AIModelFactory, DeploymentFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


def last(client, kind, pk):
    return client.get(reverse("governance:last_decision", args=[kind, pk]))


def test_the_approval_card_follows_the_facts_and_shows_the_last_note(
    client, risk, team_a
):
    version = ModelVersionFactory(
        model=AIModelFactory(team=team_a), version="3.1", approval="pending"
    )
    client.force_login(risk)
    page = client.get(version.get_absolute_url()).content.decode()
    assert page.index('class="row facts"') < page.index(
        'data-testid="version-approval"'
    )
    assert page.index("Running in") < page.index('data-testid="version-approval"')
    assert (
        reverse("governance:last_decision", args=["modelversion", version.pk]) in page
    )

    assert (
        "No committee decision yet."
        in last(client, "modelversion", version.pk).content.decode()
    )
    services.model_version_set_approval(
        actor=risk, version=version, approval="approved", note="Bias review passed."
    )
    body = last(client, "modelversion", version.pk).content.decode()
    assert "Last decision:" in body and "Approved</a> by rita" in body
    assert '<q data-testid="last-decision-note">Bias review passed.</q>' in body

    # A later decision without a note is the last one: its note is not borrowed.
    services.model_version_set_approval(
        actor=risk, version=version, approval="deprecated"
    )
    body = last(client, "modelversion", version.pk).content.decode()
    assert "Deprecated</a> by rita" in body and "(no note)" in body
    assert "Bias review passed." not in body


def test_model_and_deployment_cards_show_their_last_decision(client, risk, team_a):
    model = AIModelFactory(team=team_a, lifecycle="active")
    deployment = DeploymentFactory(model=model, team=team_a)
    services.aimodel_set_lifecycle(
        actor=risk, model=model, lifecycle="deprecated", note="Superseded by v4."
    )
    services.deployment_set_status(
        actor=risk, deployment=deployment, status="quarantined", note="Leaks PII."
    )
    client.force_login(risk)
    model_page = client.get(model.get_absolute_url()).content.decode()
    assert model_page.index('class="row facts"') < model_page.index(
        'data-testid="model-governance"'
    )
    deployment_page = client.get(deployment.get_absolute_url()).content.decode()
    assert deployment_page.index("Who answers for it") < deployment_page.index(
        'data-testid="deployment-governance"'
    )
    assert "Superseded by v4." in last(client, "aimodel", model.pk).content.decode()
    body = last(client, "deployment", deployment.pk).content.decode()
    assert "Quarantined</a>" in body and "Leaks PII." in body


def test_only_the_committee_reads_it_and_only_what_it_may_see(
    client, owner, risk, team_b
):
    version = ModelVersionFactory(model=AIModelFactory(team=team_b))
    client.force_login(owner)
    assert last(client, "modelversion", version.pk).status_code == 403
    client.force_login(risk)
    assert last(client, "modelversion", version.pk).status_code == 200
    assert last(client, "secret", version.pk).status_code == 404
    assert last(client, "deployment", 999999).status_code == 404
