"""Journeys through the one list view (inventory.lists): filter, sort, page, Back, export.

Each list is the same page (templates/_list_page.html); these walk the deployments, the
runs and the audit log, whose rows come from three apps."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from inventory import models as m
from inventory import services
from sources import models as sm
from sources.sync import services as source_services
from tests.factories import AIModelFactory, DeploymentFactory, TeamFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGE_SIZE = 50
Env = m.Deployment.Environment


@pytest.fixture
def two_teams(owner, team_a):
    """The owner's team runs 55 production and 3 staging deployments; a second team of
    theirs runs 2 more, so a team filter has something to leave out."""
    other = TeamFactory(name="Payments", slug="payments")
    other.members.add(owner)
    model = AIModelFactory(name="credit-scorer", team=team_a, owner=owner)
    now = timezone.now()
    for i in range(PAGE_SIZE + 5):
        DeploymentFactory(
            name=f"scorer-prod-{i:02d}",
            model=model,
            team=team_a,
            owner=owner,
            environment=Env.PRODUCTION,
            last_seen_at=now - timedelta(minutes=i),
        )
    for i in range(3):
        DeploymentFactory(
            name=f"scorer-staging-{i}",
            model=model,
            team=team_a,
            environment=Env.STAGING,
        )
    for i in range(2):
        DeploymentFactory(
            name=f"payments-prod-{i}",
            model=model,
            team=other,
            environment=Env.PRODUCTION,
        )
    return {"team": team_a, "other": other}


def download_csv(page) -> list[list[str]]:
    with page.expect_download() as info:
        page.locator("#results").get_by_test_id("export-csv").click()
    text = open(info.value.path(), encoding="utf-8-sig").read()  # noqa: SIM115
    return list(csv.reader(io.StringIO(text)))


def test_filter_by_team_sort_page_back_and_export_the_deployments(
    sign_in, owner, two_teams
):
    page = sign_in(owner)
    page.goto("/inventory/deployments/")
    page.evaluate("window.__noReload = true")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(PAGE_SIZE)

    # Filter: the team is a type-ahead (hundreds of teams at scale), then a <select>.
    team = page.locator("#filter-team")
    team.press_sequentially("Credit")
    option = page.locator("#filter-team-options option", has_text="Credit risk")
    expect(option).to_have_count(1)
    # The type-ahead's own request neither moves the address bar nor sends the other filters.
    expect(page).to_have_url(re.compile(r"/inventory/deployments/"))
    team.fill(option.get_attribute("value"))
    team.press("Enter")
    expect(page).to_have_url(re.compile(rf"team={two_teams['team'].pk}"))
    page.get_by_label("Environment").select_option("production")
    expect(page).to_have_url(re.compile(r"environment=production"))
    expect(page.locator("#results")).not_to_contain_text("payments-prod")
    expect(page.locator("#results")).not_to_contain_text("scorer-staging")

    # Sort: newest seen first, by the column header.
    page.locator("#results thead").get_by_role("link", name="Last seen").click()
    expect(page).to_have_url(re.compile(r"sort=last_seen_at"))
    page.locator("#results thead").get_by_role(
        "link", name=re.compile("Last seen")
    ).click()
    expect(page).to_have_url(re.compile(r"sort=-last_seen_at"))
    expect(page.locator('th[aria-sort="descending"]')).to_contain_text("Last seen")
    expect(rows.first).to_contain_text("scorer-prod-00")
    sorted_url = page.url

    # Page: the next keyset page keeps filters and sort.
    page.get_by_text("Next ›").click()
    expect(page).to_have_url(re.compile(r"after="))
    expect(rows).to_have_count(5)
    expect(rows.first).to_contain_text(f"scorer-prod-{PAGE_SIZE:02d}")
    assert "environment=production" in page.url and "sort=-last_seen_at" in page.url

    # Back: the first page again, as it was.
    page.go_back()
    expect(page).to_have_url(sorted_url)
    expect(rows).to_have_count(PAGE_SIZE)
    expect(rows.first).to_contain_text("scorer-prod-00")
    assert page.evaluate("window.__noReload") is True, "the page was reloaded"

    # Export: what the filters show, in the order shown, every page of it.
    table = download_csv(page)
    names = [row[1] for row in table[1:]]
    assert names == [f"scorer-prod-{i:02d}" for i in range(PAGE_SIZE + 5)]


def test_filter_sort_page_back_and_export_the_sync_runs(sign_in, admin_user):
    source = source_services.source_create(actor=admin_user, name="CI", kind="cicd")
    now = timezone.now()
    for i in range(PAGE_SIZE + 2):
        sm.SyncRun.objects.create(
            source=source,
            trigger="manual",
            status="failed" if i % 2 else "succeeded",
            requested_at=now - timedelta(minutes=i),
        )
    page = sign_in(admin_user)
    page.goto("/sources/runs/")
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(PAGE_SIZE)
    page.get_by_label("Status").select_option("failed")
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(rows).to_have_count(26)
    first_cell = rows.first.locator("td").first
    first_failed = first_cell.text_content()
    filtered_url = page.url

    page.locator("#results thead").get_by_role("link", name="Requested").click()
    expect(page).to_have_url(re.compile(r"sort=requested_at"))
    expect(first_cell).not_to_have_text(first_failed)

    page.go_back()
    expect(page).to_have_url(filtered_url)
    expect(first_cell).to_have_text(first_failed)

    table = download_csv(page)
    assert {row[3] for row in table[1:]} == {"failed"}
    assert len(table) == 1 + 26


def test_filter_page_back_and_export_the_audit_log(sign_in, admin_user, team_a):
    for i in range(PAGE_SIZE + 3):
        team_a.description = f"revision {i}"
        services.object_update(actor=admin_user, instance=team_a)
    page = sign_in(admin_user)
    page.goto("/governance/audit/")
    rows = page.locator("#results tbody tr")
    page.get_by_label("Action").fill("team.update")
    page.get_by_label("Action").press("Enter")
    expect(page).to_have_url(re.compile(r"action=team.update"))
    # The results were swapped in: their export link carries the filter.
    expect(page.locator("#results").get_by_test_id("export-csv")).to_have_attribute(
        "href", re.compile(r"action=team.update")
    )
    expect(rows).to_have_count(PAGE_SIZE)
    page.get_by_text("Next ›").click()
    expect(rows).to_have_count(3)
    page.go_back()
    expect(rows).to_have_count(PAGE_SIZE)
    table = download_csv(page)
    assert len(table) == 1 + PAGE_SIZE + 3
    assert {row[5] for row in table[1:]} == {"team.update"}
