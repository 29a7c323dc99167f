"""The dashboard's findings: by severity and kind, the shadow headline, the owner's queue."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance import detection, selectors_findings
from inventory import summary
from tests.governance.findings_ui_helpers import make_finding

pytestmark = pytest.mark.django_db
URL = reverse("dashboard")


def _charts(response) -> dict[str, dict]:
    raw = re.search(
        r'<script id="chart-data" type="application/json">(.*?)</script>',
        response.content.decode(),
        re.S,
    ).group(1)
    return {c["id"]: c for c in json.loads(raw)}


def _headline(response, key):
    return next(h for h in response.context["headlines"] if h.key == key)


def test_findings_by_severity_and_kind_and_the_shadow_headline(client, risk, team_a):
    make_finding(team=team_a, kind="shadow_deployment", severity=4)
    make_finding(team=team_a, kind="shadow_deployment", severity=3)
    make_finding(team=team_a, kind="missing_owner", severity=2)
    make_finding(team=team_a, kind="shadow_deployment", status="resolved")
    client.force_login(risk)
    response = client.get(URL)
    shadow = _headline(response, "shadow_deployments")
    assert shadow.value == 2
    assert shadow.url == "/governance/findings/?kind=shadow_deployment"
    assert _headline(response, "open_findings").value == 3
    charts = _charts(response)
    severity = charts["chart-findings-severity"]
    assert severity["categories"] == ["Critical", "High", "Medium", "Low"]
    assert severity["series"][0]["values"] == [1, 1, 1, 0]
    assert (
        severity["series"][0]["links"][0] == "/governance/findings/?severity=critical"
    )
    kind = charts["chart-findings-kind"]
    assert kind["categories"] == ["Shadow deployment", "Missing owner"]
    assert kind["series"][0]["values"] == [2, 1]
    # The headline's link lists what it counts.
    listed = client.get(shadow.url)
    assert len(listed.context["page"].rows) == 2
    body = response.content.decode()
    assert 'data-testid="headline-shadow_deployments"' in body
    assert 'data-testid="my-queue"' not in body  # not an owner


def test_owner_sees_their_queue_first(client, owner, team_a, team_b):
    mine = [
        make_finding(team=team_a, assignee=owner, severity=s, tier=2)
        for s in (1, 4, 3, 2, 4, 3)
    ]
    make_finding(team=team_a, assignee=owner, status="accepted", severity=4)
    make_finding(team=team_b)  # another team's: not counted
    client.force_login(owner)
    response = client.get(URL)
    queue = response.context["finding_queue"]
    assert [f.severity for f in queue["rows"]] == [4, 4, 3, 3, 2]
    assert queue["rows"][0].pk == mine[1].pk and queue["more"]
    assert queue["url"] == "/governance/findings/?assignee=mine"
    body = response.content.decode()
    assert body.index('data-testid="my-queue"') < body.index('id="inventory-title"')
    assert body.count('data-testid="my-queue-item"') == 5
    assert _headline(response, "open_findings").value == 7
    listed = client.get(queue["url"])
    assert len(listed.context["page"].rows) == 7  # the queue's list: unresolved, mine


def test_owner_with_nothing_assigned(client, owner):
    client.force_login(owner)
    body = client.get(URL).content.decode()
    assert 'data-testid="my-queue-empty"' in body


def test_findings_add_two_queries_whatever_their_number(
    client, owner, team_a, django_assert_max_num_queries
):
    client.force_login(owner)
    client.get(URL)
    for _ in range(3):
        make_finding(team=team_a, assignee=owner)
    summary.refresh_dirty()  # what the inventory writes marked (after commit, or beat)
    # What the engine and the services do once they have written findings (the
    # factories write them directly): the dashboard's cached counts are counted again.
    selectors_findings.chart_changed()
    with CaptureQueriesContext(connection) as few:
        client.get(URL)
    for _ in range(40):
        make_finding(team=team_a, assignee=owner, kind="shadow_deployment")
    summary.refresh_dirty()
    selectors_findings.chart_changed()
    with django_assert_max_num_queries(len(few)):
        response = client.get(URL)
    assert _headline(response, "shadow_deployments").value == 40
    findings_sql = [
        q["sql"] for q in few.captured_queries if "governance_finding" in q["sql"]
    ]
    assert len(findings_sql) == 2


def test_the_counts_are_kept_a_minute_and_counted_again_after_a_run_changes_findings(
    client, admin_user, django_capture_on_commit_callbacks
):
    """The dashboard's finding counts are cached like its chart (a minute per scope): a
    second view does not count them again, and a detection run that opens a finding
    makes the next view count it."""
    from tests.factories import DeploymentFactory

    client.force_login(admin_user)
    client.get(URL)
    with CaptureQueriesContext(connection) as again:
        client.get(URL)
    counting = '"governance_finding"."severity" AS "severity", COUNT('
    assert not [q for q in again.captured_queries if counting in q["sql"]]
    before = _headline(client.get(URL), "open_findings").value
    DeploymentFactory(business_purpose="")  # a production deployment without a purpose
    with django_capture_on_commit_callbacks(execute=True):  # the run's commits
        result = detection.run(notify=False)
    assert result.changed and result.counts["opened"] >= 1
    assert (
        _headline(client.get(URL), "open_findings").value
        == before + result.counts["opened"]
    )
