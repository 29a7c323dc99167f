"""Journey: a committee member approves a version with a note; the card, below the facts,
then shows that decision and its note (loaded by htmx under the strict CSP)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.factories import AIModelFactory, ModelVersionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_approve_with_a_note_and_read_it_back_below_the_facts(sign_in, risk, team_a):
    version = ModelVersionFactory(
        model=AIModelFactory(name="fraud-scorer", team=team_a),
        version="4.2",
        approval="pending",
    )
    page = sign_in(risk)
    page.goto(version.get_absolute_url())
    card = page.get_by_test_id("version-approval")
    expect(card.get_by_test_id("last-decision")).to_have_text(
        "No committee decision yet."
    )
    facts_bottom = page.locator("dl.facts").bounding_box()
    card_top = card.bounding_box()
    assert card_top["y"] > facts_bottom["y"] + facts_bottom["height"]

    card.get_by_label("Note for the audit trail").fill("Bias review passed.")
    card.get_by_role("button", name="Approve").click()
    expect(page.get_by_test_id("last-decision-note")).to_have_text(
        "Bias review passed."
    )
    expect(page.get_by_test_id("last-decision")).to_contain_text(
        "Last decision: Approved by rita"
    )
