"""Journey: a committee member opens a deployment, reads why it has its tier, overrides
it with a reason and an expiry, and sees the override on the page (the panel is loaded
by htmx under the strict CSP); the administrator's tier page draws its chart."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from governance import tiers
from inventory import models as m
from tests.factories import AIModelFactory, DeploymentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_committee_member_overrides_a_tier(sign_in, risk, team_a):
    deployment = DeploymentFactory(
        name="loan-approver",
        model=AIModelFactory(
            name="credit-scorer", team=team_a, sensitivity=m.Sensitivity.LOW
        ),
        exposure=m.Deployment.Exposure.EXTERNAL,
        environment=m.Deployment.Environment.DEVELOPMENT,
    )
    tiers.recompute()  # score 30: tier 3
    page = sign_in(risk)
    page.goto(deployment.get_absolute_url())
    card = page.get_by_test_id("deployment-tier")
    expect(card.get_by_test_id("tier-badge")).to_have_text("Tier 3")
    expect(card.get_by_test_id("tier-score")).to_have_text("30")
    expect(card.locator('[data-fact="external"]')).to_contain_text("yes")

    form = card.get_by_test_id("tier-override-form")
    form.get_by_label("Override tier").select_option("1")
    form.get_by_label("Reason").fill("Decides on loans for customers")
    form.get_by_role("button", name="Override").click()

    card = page.get_by_test_id("deployment-tier")
    expect(card.get_by_test_id("tier-badge")).to_have_text("Tier 1")
    expect(card.get_by_test_id("tier-override-reason")).to_have_text(
        "Decides on loans for customers"
    )
    expect(card.get_by_test_id("tier-override")).to_contain_text("by rita")
    expect(card.get_by_test_id("tier-summary")).to_contain_text("computed: tier 3")


def test_the_tier_page_draws_its_chart(sign_in, admin_user, team_a):
    DeploymentFactory(model=AIModelFactory(team=team_a))
    tiers.recompute()
    page = sign_in(admin_user)
    page.goto("/governance/tiers/")
    expect(page.locator("#chart-tiers .main-svg").first).to_be_visible()
    page.get_by_label("Externally exposed").fill("90")
    page.get_by_role("button", name="Save and recompute").click()
    expect(page.get_by_text("Tier policy saved.")).to_be_visible()
