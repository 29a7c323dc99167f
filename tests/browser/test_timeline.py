"""Journeys: open a deployment's incident timeline and read when it moved to v4 and who
called it since; open a pipeline of 50 deployments and see the graph drawn and the risky
components flagged in the table."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.timeline_data import build_incident, build_pipeline

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_timeline_answers_since_when_v4_and_who_called_it(sign_in, risk, team_a):
    incident = build_incident(team=team_a, risk=risk)
    page = sign_in(risk)
    page.goto(incident.deployment.get_absolute_url())
    page.get_by_test_id("timeline-link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(
        "Timeline of fraud-prod"
    )
    # plotly drew the chart: its SVG with bars and event markers.
    chart = page.get_by_test_id("timeline-chart")
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart.locator("g.trace.bars").first).to_be_attached()
    expect(chart.locator(".scatterlayer .point").first).to_be_attached()

    change = page.get_by_test_id("event-runtime").filter(has_text="now runs 4 (was 3)")
    expect(change).to_have_count(1)
    expect(change).to_contain_text("k8s-prod")
    when = change.locator("td").first.inner_text()
    assert when == incident.changed_at.strftime("%Y-%m-%d %H:%M")

    change.get_by_test_id("callers-since").click()
    callers = page.get_by_test_id("timeline-callers")
    expect(callers.get_by_test_id("caller-row")).to_have_count(2)
    expect(callers).to_contain_text("svc-fraud-prod")
    expect(callers).to_contain_text("mystery-svc")
    expect(callers).not_to_contain_text("batch-old")
    expect(page.get_by_label("Since (UTC)")).to_have_value(
        incident.changed_at.strftime("%Y-%m-%dT%H:%M")
    )


def test_timeline_kind_filter_and_bad_dates(sign_in, risk, team_a, page_problems):
    page_problems.allowed.append("status of 400")  # the form error's answer, expected
    incident = build_incident(team=team_a, risk=risk)
    page = sign_in(risk)
    page.goto(f"/governance/timeline/deployment/{incident.deployment.pk}/")
    for kind in ("Registry", "Calls", "Credential", "Finding", "Governance"):
        page.get_by_label(kind, exact=True).uncheck()
    page.get_by_role("button", name="Apply").click()
    rows = page.get_by_test_id("timeline-events").locator("tbody tr")
    expect(rows.first).to_have_attribute("data-kind", "runtime")
    assert set(rows.evaluate_all("rs => rs.map(r => r.dataset.kind)")) == {"runtime"}

    page.get_by_label("Since (UTC)").fill("2020-01-01T00:00")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("form-errors")).to_contain_text(
        "Choose a range of at most 366 days."
    )


def test_pipeline_of_fifty_draws_the_graph_and_flags_the_risky(
    sign_in, risk, team_a, page_problems
):
    graph = build_pipeline(team=team_a, n=50)
    page = sign_in(risk)
    page.goto(graph.system.get_absolute_url())
    page.get_by_test_id("pipeline-link").click()
    canvas = page.get_by_test_id("pipeline-graph")
    expect(canvas).to_have_attribute("data-rendered", "50")
    expect(canvas.locator("canvas").first).to_be_visible()
    box = canvas.bounding_box()
    assert box["width"] > 600 and box["height"] > 500
    # The layered layout runs left to right: a later layer sits to the right.
    xs = page.evaluate(
        "ids => ids.map(id => window.runproofPipeline.$id(id).position('x'))",
        [f"d{graph.nodes[0].pk}", f"d{graph.nodes[45].pk}"],
    )
    assert xs[1] > xs[0]
    row = page.locator(f'[data-testid="node-row"][data-node="{graph.unapproved.pk}"]')
    expect(row).to_have_attribute("data-state", "bad")
    expect(row.get_by_test_id("node-flag")).to_have_text("At risk")
    expect(row).to_have_class("pipeline-bad")
    drifting = page.locator(
        f'[data-testid="node-row"][data-node="{graph.drifting.pk}"]'
    )
    expect(drifting).to_have_attribute("data-state", "warn")
    expect(
        page.locator('[data-testid="edge-row"][data-state="bad"]').first
    ).to_be_attached()
    expect(page.get_by_test_id("node-flag")).to_have_count(3)
