"""Journeys through the type-ahead lookups (inventory.widgets.LookupInput): the edit form
shows the related objects by name, typing filters on what is typed (also for the field
called `model`), and a list's owner filter keeps the list's address."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from inventory import models as m
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    ModelVersionFactory,
    SystemFactory,
    UserFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def catalogue(owner, team_a):
    credit = AIModelFactory(name="credit-scorer", team=team_a, owner=owner)
    fraud = AIModelFactory(name="fraud-scorer", team=team_a, owner=owner)
    AIModelFactory(name="churn-xgb", team=team_a, owner=owner)
    ModelVersionFactory(model=credit, version="1.4.0")
    fraud_version = ModelVersionFactory(model=fraud, version="2.0.0")
    system = SystemFactory(name="loan-origination", team=team_a, owner=owner)
    deployment = DeploymentFactory(
        name="scorer-prod",
        model=credit,
        team=team_a,
        owner=owner,
        system=system,
        source=m.MANUAL_SOURCE,
    )
    return {
        "credit": credit,
        "fraud": fraud,
        "fraud_version": fraud_version,
        "system": system,
        "deployment": deployment,
    }


def test_the_edit_form_names_its_related_objects_and_filters_on_what_is_typed(
    sign_in, owner, catalogue
):
    credit, fraud = catalogue["credit"], catalogue["fraud"]
    deployment = catalogue["deployment"]
    page = sign_in(owner)
    page.goto(f"/inventory/deployments/{deployment.pk}/edit/")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Edit deployment scorer-prod"
    )

    # Names, not ids: "credit-scorer (#30)" rather than "30".
    model = page.locator("#id_model")
    expect(model).to_have_value(f"credit-scorer (#{credit.pk})")
    expect(page.locator("#id_system")).to_have_value(
        f"loan-origination (#{catalogue['system'].pk})"
    )
    expect(page.locator("#id_owner")).to_have_value(f"olivia (#{owner.pk})")

    # Typing in the field called `model` filters the models on the text typed.
    model.fill("")
    model.press_sequentially("fraud")
    options = page.locator("#id_model-options option")
    expect(options).to_have_count(1)
    expect(options.first).to_have_attribute("value", f"fraud-scorer (#{fraud.pk})")
    model.fill(options.first.get_attribute("value"))

    # The version lookup follows the chosen model: only fraud-scorer's versions.
    version = page.locator("#id_observed_version")
    version.fill("")
    version.press_sequentially("2.")
    versions = page.locator("#id_observed_version-options option")
    expect(versions).to_have_count(1)
    expect(versions.first).to_contain_text("2.0.0")
    version.fill(versions.first.get_attribute("value"))

    page.get_by_role("button", name="Save").click()
    expect(page).to_have_url(re.compile(rf"/inventory/deployments/{deployment.pk}/$"))
    deployment.refresh_from_db()
    assert deployment.model_id == fraud.pk
    assert deployment.observed_version_id == catalogue["fraud_version"].pk


def test_the_owner_filter_keeps_the_lists_address_after_typing_and_choosing(
    sign_in, owner, team_a, catalogue
):
    other = UserFactory(username="oscar-lee", teams=[team_a])
    DeploymentFactory(
        name="oscars-deployment", model=catalogue["credit"], team=team_a, owner=other
    )
    page = sign_in(owner)
    page.goto("/inventory/deployments/")
    page.evaluate("window.__noReload = true")
    results = page.locator("#results")
    expect(results).to_contain_text("oscars-deployment")
    expect(results).to_contain_text("scorer-prod")

    owner_filter = page.locator("#filter-owner")
    owner_filter.press_sequentially("oli")
    option = page.locator("#filter-owner-options option", has_text="olivia")
    expect(option).to_have_count(1)
    expect(page.locator("#filter-owner-options option")).to_have_count(1)
    # Typing asked the lookup, but the address bar still shows the list.
    expect(page).to_have_url(re.compile(r"/inventory/deployments/$"))

    owner_filter.fill(option.get_attribute("value"))
    owner_filter.dispatch_event("change")
    expect(page).to_have_url(
        re.compile(rf"/inventory/deployments/\?(.*&)?owner={owner.pk}(&|$)")
    )
    expect(results).not_to_contain_text("oscars-deployment")
    expect(results).to_contain_text("scorer-prod")
    assert "/lookup/" not in page.url and "field=" not in page.url
    assert page.evaluate("window.__noReload") is True, "the page was reloaded"
