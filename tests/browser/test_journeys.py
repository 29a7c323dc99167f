"""One test per user journey, in headless Chromium against the live server."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from inventory import models as m
from inventory import services
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGE_SIZE = 50  # settings.RUNPROOF_PAGE_SIZE
Env = m.Deployment.Environment


@pytest.fixture
def fleet(owner, team_a):
    """Enough of the owner's deployments for two pages of production and one of staging."""
    model = AIModelFactory(name="credit-scorer", team=team_a, owner=owner)
    v1 = ModelVersionFactory(model=model, version="1.4.0")
    v2 = ModelVersionFactory(model=model, version="1.5.0")
    prod = [
        DeploymentFactory(
            name=f"scorer-prod-{i:02d}",
            model=model,
            team=team_a,
            owner=owner,
            environment=Env.PRODUCTION,
            observed_version=v2,
            approved_version=v1,
        )
        for i in range(PAGE_SIZE + 5)
    ]
    for i in range(3):
        DeploymentFactory(
            name=f"scorer-staging-{i}",
            model=model,
            team=team_a,
            environment=Env.STAGING,
        )
    IdentityFactory(name="svc-scorer-invoker", team=team_a, deployments=[prod[0]])
    return {"model": model, "v1": v1, "v2": v2, "first": prod[0]}


def test_sign_in_through_the_form_lands_on_the_dashboard(page, owner, password):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))

    page.get_by_label("Username").fill(owner.username)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name=re.compile("sign in|log in", re.I)).click()
    expect(
        page.locator(".alert-danger, .errornote, [role=alert]").first
    ).to_be_visible()
    expect(page).to_have_url(re.compile(r"/accounts/login/"))

    page.get_by_label("Username").fill(owner.username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name=re.compile("sign in|log in", re.I)).click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_test_id("whoami")).to_contain_text(owner.username)


def test_filter_and_page_the_deployments_without_reloading(sign_in, owner, fleet):
    page = sign_in(owner)
    page.goto("/inventory/deployments/")
    page.evaluate("window.__noReload = true")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(PAGE_SIZE)

    page.get_by_label("Environment").select_option("production")
    expect(page).to_have_url(re.compile(r"environment=production"))
    expect(page.locator("#results")).not_to_contain_text("scorer-staging")
    expect(rows.first).to_contain_text("scorer-prod-00")
    filtered_url = page.url

    page.get_by_text("Next ›").click()
    expect(page).to_have_url(re.compile(r"after="))
    expect(rows).to_have_count(5)
    expect(rows.first).to_contain_text(f"scorer-prod-{PAGE_SIZE:02d}")
    assert "environment=production" in page.url
    assert page.evaluate("window.__noReload") is True, "the page was reloaded"
    # Only the table was swapped, not a whole page nested inside it.
    expect(page.locator("nav.navbar")).to_have_count(1)
    expect(page.locator("form#filters")).to_have_count(1)

    page.go_back()
    expect(page).to_have_url(filtered_url)
    expect(rows).to_have_count(PAGE_SIZE)
    expect(rows.first).to_contain_text("scorer-prod-00")


def test_open_a_deployment_from_the_list(sign_in, owner, fleet):
    page = sign_in(owner)
    page.goto("/inventory/deployments/?environment=production")

    page.locator("#results").get_by_role(
        "link", name="scorer-prod-00", exact=True
    ).click()

    expect(page).to_have_url(
        re.compile(rf"/inventory/deployments/{fleet['first'].pk}/$")
    )
    expect(page.get_by_role("heading", level=1)).to_have_text("scorer-prod-00")
    expect(page.locator("dd").filter(has_text="credit-scorer").first).to_be_visible()
    # No source reports this deployment: the version is its owner's word, shown as such.
    expect(page.get_by_test_id("observed-version")).to_have_text("1.5.0")
    expect(page.get_by_test_id("declared")).to_have_text(
        "declared by its owner, not observed"
    )
    expect(page.get_by_test_id("approved-version")).to_have_text("1.4.0")
    expect(page.get_by_test_id("baseline-kind")).to_have_text("pinned by the committee")
    expect(page.get_by_test_id("drift")).to_be_visible()
    expect(page.get_by_test_id("owner")).to_have_text(owner.username)
    expect(page.get_by_test_id("identities")).to_contain_text("svc-scorer-invoker")


def test_create_a_deployment_through_the_form(sign_in, page_problems, owner, fleet):
    page = sign_in(owner)
    # Chromium logs the 422 of a form with errors as a failed load; that one is expected.
    page_problems.allowed.append("status of 422")
    page.goto("/inventory/deployments/new/")
    page.evaluate("window.__noReload = true")
    before = m.Deployment.objects.count()

    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("form-errors")).to_be_visible()
    expect(page.locator("#object-form .invalid-feedback").first).to_be_visible()
    assert page.evaluate("window.__noReload") is True, "errors came by a full reload"
    assert m.Deployment.objects.count() == before

    page.locator("#id_name").fill("scorer-canary")
    # The model is a type-ahead: typing fetches suggestions into a <datalist>.
    page.locator("#id_model").press_sequentially("credit")
    suggestion = page.locator("#id_model-options option", has_text="credit-scorer")
    expect(suggestion).to_have_count(1)
    page.locator("#id_model").fill(suggestion.get_attribute("value"))
    page.locator("#id_environment").select_option("staging")
    page.get_by_role("button", name="Save").click()

    expect(page).to_have_url(re.compile(r"/inventory/deployments/\d+/$"))
    created = m.Deployment.objects.get(name="scorer-canary")
    assert page.url.endswith(f"/inventory/deployments/{created.pk}/")
    assert created.team_id is not None
    expect(page.get_by_role("heading", level=1)).to_have_text("scorer-canary")


def test_find_a_creation_in_the_audit_log(sign_in, owner, team_a, fleet):
    deployment = services.object_create(
        actor=owner,
        instance=m.Deployment(
            name="scorer-shadow",
            model=fleet["model"],
            team=team_a,
            environment=Env.STAGING,
        ),
    )
    page = sign_in(owner)
    page.goto(f"/inventory/deployments/{deployment.pk}/")

    page.get_by_role("link", name="History", exact=True).click()

    expect(page).to_have_url(
        re.compile(
            rf"/governance/audit/\?object_type=inventory\.deployment&object_id={deployment.pk}$"
        )
    )
    event = page.locator("tr", has_text="deployment.create")
    expect(event).to_have_count(1)
    expect(event).to_contain_text(owner.username)


def test_dashboard_draws_its_charts_under_the_strict_csp(sign_in, owner, fleet):
    """plotly.js from static/, data from a JSON island, no inline script or style: every chart
    draws and the page fixture fails the test on any CSP violation or console error."""
    page = sign_in(owner)
    page.goto("/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    charts = page.locator(".chart")
    expect(charts.first.locator("svg.main-svg").first).to_be_visible()
    assert charts.count() >= 3
    for index in range(charts.count()):
        expect(charts.nth(index).locator("svg.main-svg").first).to_be_attached()
    # A headline links to the list it counts.
    page.get_by_role("link", name=re.compile("Version drift")).first.click()
    expect(page).to_have_url(re.compile(r"/inventory/deployments/\?.*risk=drift"))
