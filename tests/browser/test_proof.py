"""Journey: from a deployment's page to its proof card, read the three answers and the
verdict, and download the card as JSON; the dashboard's proof headline loads by htmx."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.governance.proof_data import ready_deployment

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_open_the_proof_card_read_the_answers_and_download_json(sign_in, owner, team_a):
    deployment, identity = ready_deployment(
        team_a, owner=owner, now=timezone.now() - timedelta(minutes=5)
    )
    page = sign_in(owner)
    page.goto(deployment.get_absolute_url())
    page.get_by_test_id("proof-card-link").click()
    expect(page).to_have_url(
        f"{page.url.split('/governance')[0]}/governance/deployments/{deployment.pk}/proof/"
    )
    expect(page.get_by_role("heading", name="What is running")).to_be_visible()
    expect(page.get_by_role("heading", name="Who can invoke it")).to_be_visible()
    expect(
        page.get_by_role("heading", name="How quickly it can be withdrawn")
    ).to_be_visible()
    expect(page.get_by_test_id("running-version")).to_contain_text("4.0")
    expect(page.get_by_test_id("proof-identities")).to_contain_text(identity.name)
    expect(page.get_by_test_id("verdict")).to_have_text("Ready")
    expect(page.get_by_test_id("proof-complete")).to_have_attribute(
        "data-complete", "true"
    )

    with page.expect_download() as info:
        page.get_by_test_id("proof-json").click()
    card = json.loads(open(info.value.path(), encoding="utf-8").read())  # noqa: SIM115
    assert card["subject"]["id"] == deployment.pk
    assert card["withdraw"]["verdict"] == "ready"
    assert card["invoke"]["identities"][0]["name"] == identity.name

    page.goto("/")
    headline = page.get_by_test_id("proof-headline")
    expect(headline).to_contain_text("1 of 1")
    expect(headline).to_contain_text("100% complete")
