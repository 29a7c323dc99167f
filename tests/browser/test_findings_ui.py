"""Journeys on findings in real Chromium: an owner acknowledges one from the queue (a
bulk action) and another from its page; a committee member accepts a risk with a reason
and an expiry and sees the status. Findings come from the engine on factory data."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from governance import detection
from governance.models import Finding, Notification
from tests.factories import DeploymentFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _findings(team, n=2):
    deployments = [
        DeploymentFactory(owner=None, model__team=team, name=f"scorer-{i}")
        for i in range(n)
    ]
    detection.run(kinds=["missing_owner"], notify=False)
    return [Finding.objects.get(subject_id=d.pk) for d in deployments]


def test_owner_acknowledges_from_the_queue_and_the_page(sign_in, owner, team_a):
    first, second = _findings(team_a)
    Notification.objects.create(
        recipient=owner,
        finding=first,
        message="High: scorer-0",
        url=first.get_absolute_url(),
    )
    page = sign_in(owner)
    page.goto("/")
    # The unread count arrives after the page, by htmx, under the CSP.
    expect(page.get_by_test_id("notification-count")).to_have_text("1")
    page.get_by_test_id("nav-findings").click()
    expect(page.get_by_test_id("finding-table")).to_contain_text("scorer-0")
    # The chart draws from static plotly under the CSP (the fixture fails on errors).
    expect(page.locator("#chart-findings-opened .main-svg").first).to_be_visible()

    page.get_by_test_id(f"select-{first.pk}").check()
    page.get_by_test_id("bulk-acknowledge").click()
    expect(page.get_by_text("Acknowledged 1 finding.")).to_be_visible()
    expect(page.get_by_test_id(f"status-{first.pk}")).to_have_text("Acknowledged")
    expect(page.get_by_test_id(f"status-{second.pk}")).to_have_text("Open")

    page.get_by_test_id(f"finding-link-{second.pk}").click()
    expect(page.get_by_test_id("finding-status")).to_have_text("Open")
    expect(page.get_by_test_id("accept")).to_have_count(0)  # the committee's call
    page.get_by_test_id("acknowledge").click()
    expect(page.get_by_text("Acknowledged.", exact=True)).to_be_visible()
    expect(page.get_by_test_id("finding-status")).to_have_text("Acknowledged")
    expect(page.get_by_test_id("finding-history")).to_contain_text("olivia")
    assert Finding.objects.filter(status="acknowledged").count() == 2


def test_committee_accepts_a_risk_with_reason_and_expiry(
    sign_in, risk, team_a, page_problems
):
    (finding,) = _findings(team_a, n=1)
    page = sign_in(risk)
    page.goto("/governance/findings/?kind=missing_owner")
    page.get_by_test_id(f"finding-link-{finding.pk}").click()
    expect(page.get_by_test_id("finding-facts")).to_contain_text("team_id")

    # A date past the bound first: the page says why, nothing changes.
    page_problems.allowed.append("422")
    too_far = (timezone.localdate() + timedelta(days=400)).isoformat()
    page.get_by_test_id("accept-reason").fill("Owner named in the next sprint")
    page.get_by_test_id("accept-until").fill(too_far)
    page.get_by_test_id("accept").click()
    expect(page.get_by_test_id("action-error")).to_contain_text("at most 365 days")
    expect(page.get_by_test_id("finding-status")).to_have_text("Open")

    until = timezone.localdate() + timedelta(days=30)
    page.get_by_test_id("accept-until").fill(until.isoformat())
    page.get_by_test_id("accept").click()
    expect(page.get_by_test_id("finding-status")).to_contain_text("Risk accepted")
    expect(page.get_by_test_id("finding-accepted-until")).to_contain_text(
        until.isoformat()
    )
    expect(page.get_by_test_id("finding-reason")).to_contain_text(
        "Owner named in the next sprint"
    )
    expect(page.get_by_test_id("reopen")).to_be_visible()
    finding.refresh_from_db()
    assert finding.status == "accepted" and finding.decided_by == risk
