"""The findings queue: order, filters, sorts, CSV, bulk actions, chart data, and a
constant number of queries."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from governance import detection
from governance import selectors_findings as selectors
from governance.models import Finding, FindingEvent
from governance.views_findings import chart_specs
from inventory import permissions
from inventory.roles import Role
from tests.factories import DeploymentFactory, UserFactory
from tests.governance.findings_ui_helpers import make_finding

pytestmark = pytest.mark.django_db
URL = reverse("governance:finding_list")
BULK = reverse("governance:finding_bulk")


def _rows(response) -> list[int]:
    return [f.pk for f in response.context["page"].rows]


def _csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode().lstrip("\ufeff")
    return list(csv.DictReader(io.StringIO(body)))


def test_queue_order_is_severity_then_tier_then_age(client, risk, team_a):
    # Created in the order the engine would raise them: the oldest first.
    crit_t1_old = make_finding(team=team_a, severity=4, tier=1, opened_days_ago=9)
    low = make_finding(team=team_a, severity=1, tier=1)
    crit_t2 = make_finding(team=team_a, severity=4, tier=2)
    crit_t1_new = make_finding(team=team_a, severity=4, tier=1, opened_days_ago=1)
    high = make_finding(team=team_a, severity=3, tier=1)
    client.force_login(risk)
    assert _rows(client.get(URL)) == [
        crit_t1_old.pk,
        crit_t1_new.pk,
        crit_t2.pk,
        high.pk,
        low.pk,
    ]
    assert _rows(client.get(URL, {"sort": "-priority"}))[0] == low.pk
    assert _rows(client.get(URL, {"sort": "opened_at"}))[0] == crit_t1_old.pk
    assert _rows(client.get(URL, {"sort": "-opened_at"}))[-1] == crit_t1_old.pk


def test_default_is_unresolved_and_status_filters(client, risk, team_a):
    open_ = make_finding(team=team_a)
    acked = make_finding(team=team_a, status="acknowledged")
    gone = make_finding(team=team_a, status="resolved")
    client.force_login(risk)
    assert set(_rows(client.get(URL))) == {open_.pk, acked.pk}
    assert _rows(client.get(URL, {"status": "resolved"})) == [gone.pk]
    assert set(_rows(client.get(URL, {"status": "all"}))) == {
        open_.pk,
        acked.pk,
        gone.pk,
    }
    assert _rows(client.get(URL, {"status": "acknowledged"})) == [acked.pk]
    assert set(_rows(client.get(URL, {"status": "unresolved"}))) == {open_.pk, acked.pk}
    bogus = client.get(URL, {"status": "closed"})
    assert set(_rows(bogus)) == {open_.pk, acked.pk}  # ignored, and said so
    assert "were not valid and were ignored" in bogus.content.decode()
    # The form shows the default first (so chosen), with no empty choice before it.
    page = client.get(URL).content.decode()
    select = page[page.index('name="status"') :]
    select = select[: select.index("</select>")]
    assert select[select.index("<option") :].startswith('<option value="unresolved"')


def test_filters(client, risk, owner, team_a, team_b):
    mine = make_finding(team=team_a, assignee=risk, severity=4, tier=1)
    shadow = make_finding(team=team_b, kind="shadow_deployment", severity=3, tier=2)
    old = make_finding(team=team_a, opened_days_ago=40, source="mlflow:1")
    owned = make_finding(team=team_a, owner=owner)
    client.force_login(risk)
    assert _rows(client.get(URL, {"kind": "shadow_deployment"})) == [shadow.pk]
    assert _rows(client.get(URL, {"severity": "critical"})) == [mine.pk]
    assert set(_rows(client.get(URL, {"min_severity": "high"}))) == {
        mine.pk,
        shadow.pk,
    }
    assert _rows(client.get(URL, {"tier": "2"})) == [shadow.pk]
    assert _rows(client.get(URL, {"team": team_b.pk})) == [shadow.pk]
    assert _rows(client.get(URL, {"owner": owner.pk})) == [owned.pk]
    assert _rows(client.get(URL, {"assignee": "mine"})) == [mine.pk]
    assert mine.pk not in _rows(client.get(URL, {"assignee": "none"}))
    assert _rows(client.get(URL, {"source": "mlflow:1"})) == [old.pk]
    assert _rows(client.get(URL, {"subject_type": "identity"})) == []
    assert _rows(
        client.get(URL, {"subject_type": "deployment", "subject_id": shadow.subject_id})
    ) == [shadow.pk]
    assert _rows(client.get(URL, {"older_than": "30"})) == [old.pk]
    day = (timezone.localdate() - timedelta(days=20)).isoformat()
    assert _rows(client.get(URL, {"opened_before": day})) == [old.pk]
    assert old.pk not in _rows(client.get(URL, {"opened_after": day}))
    assert _rows(client.get(URL, {"q": shadow.title[:12]})) == [shadow.pk]


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "nope"},
        {"severity": "extreme"},
        {"tier": "9"},
        {"older_than": "-3"},
        {"older_than": "1.5"},
        {"older_than": "99999999999999999999"},
        {"opened_after": "2026-13-45"},
        {"subject_id": "abc"},
        {"team": "x"},
        {"after": "garbage"},
        {"after": "WyJhYmMiLCAxXQ"},  # ["abc", 1]: a forged cursor
        {"sort": "evidence"},
    ],
)
def test_bad_filters_never_fail(client, risk, team_a, params):
    make_finding(team=team_a)
    client.force_login(risk)
    response = client.get(URL, params)
    assert response.status_code == 200
    assert len(_rows(response)) == 1  # the invalid filter is ignored, and said so
    if set(params) - {"after", "sort"}:
        assert "were not valid and were ignored" in response.content.decode()


def test_owner_sees_their_teams_and_assigned_only(client, owner, team_a, team_b):
    theirs = make_finding(team=team_a)
    other = make_finding(team=team_b)
    assigned = make_finding(team=team_b, assignee=owner)
    client.force_login(owner)
    assert set(_rows(client.get(URL))) == {theirs.pk, assigned.pk}
    assert other.pk not in _rows(client.get(URL, {"status": "all"}))
    rows = _csv(client.get(URL, {"export": "csv"}))
    assert {int(r["id"]) for r in rows} == {theirs.pk, assigned.pk}


def test_csv_exports_what_the_filters_show(client, risk, team_a, team_b):
    a = make_finding(team=team_a, severity=4, title="Alpha <b>bold</b>")
    make_finding(team=team_b, severity=1)
    client.force_login(risk)
    response = client.get(URL, {"export": "csv", "severity": "critical"})
    assert response["Content-Type"].startswith("text/csv")
    rows = _csv(response)
    assert [int(r["id"]) for r in rows] == [a.pk]
    assert rows[0]["title"] == "Alpha <b>bold</b>"
    assert rows[0]["severity"] == "Critical" and rows[0]["team"] == team_a.name


def test_page_escapes_titles(client, risk, team_a):
    make_finding(team=team_a, title="<script>alert(1)</script>")
    client.force_login(risk)
    page = client.get(URL).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_htmx_fragment_has_no_chart_and_no_form(client, risk, team_a):
    make_finding(team=team_a)
    client.force_login(risk)
    response = client.get(URL, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert 'id="results"' in body and "chart-data" not in body
    assert "chart_data" not in response.context


# ---------------------------------------------------------------------------
# Bulk actions
# ---------------------------------------------------------------------------
def test_bulk_acknowledge_one_transaction_one_event_each(client, owner, team_a):
    findings = [make_finding(team=team_a) for _ in range(3)]
    done_already = make_finding(team=team_a, status="acknowledged")
    client.force_login(owner)
    response = client.post(
        BULK,
        {
            "action": "acknowledge",
            "ids": [f.pk for f in findings] + [done_already.pk, 999999],
            "back": URL + "?kind=missing_owner",
        },
        follow=True,
    )
    assert response.redirect_chain[-1][0] == URL + "?kind=missing_owner"
    text = response.content.decode()
    assert "Acknowledged 3 findings." in text
    assert "1 finding skipped" in text
    assert "1 finding not found or not yours to see" in text
    assert Finding.objects.filter(status="acknowledged").count() == 4
    assert AuditEvent.objects.filter(action="finding.acknowledge").count() == 3
    assert FindingEvent.objects.filter(action="acknowledged").count() == 3


@pytest.mark.parametrize("role", ["auditor", "compliance"])
def test_bulk_refused_for_readers(client, request, role, team_a):
    chosen = [make_finding(team=team_a) for _ in range(2)]
    client.force_login(request.getfixturevalue(role))
    for data in (
        {"action": "acknowledge", "ids": [f.pk for f in chosen]},
        {"action": "assign", "assignee": "rita", "ids": [f.pk for f in chosen]},
    ):
        assert client.post(BULK, data).status_code == 403
    assert not Finding.objects.exclude(status="open").exists()
    assert not Finding.objects.filter(assignee__isnull=False).exists()
    assert not AuditEvent.objects.filter(action__startswith="finding.").exists()


def test_bulk_assign_by_an_owner_is_refused_outside_their_team(
    client, owner, other_owner, team_a, team_b
):
    ours = make_finding(team=team_a)
    # Visible to the owner (assigned to them) but another team's to hand out.
    other_team = make_finding(team=team_b, assignee=owner)
    client.force_login(owner)
    response = client.post(
        BULK,
        {"action": "assign", "assignee": "olivia", "ids": [ours.pk, other_team.pk]},
    )
    assert response.status_code == 403
    assert not Finding.objects.filter(assigned_manually=True).exists()


def test_bulk_assign(
    client, risk, owner, team_a, django_capture_on_commit_callbacks, mailoutbox
):
    highs = [make_finding(team=team_a, severity=3) for _ in range(3)]
    client.force_login(risk)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            BULK,
            {"action": "assign", "assignee": "olivia", "ids": [f.pk for f in highs]},
            follow=True,
        )
    assert "Assigned 3 findings to olivia." in response.content.decode()
    assert Finding.objects.filter(assignee=owner, assigned_manually=True).count() == 3
    assert AuditEvent.objects.filter(action="finding.assign").count() == 3
    # One email for the three, one notification each.
    assert len(mailoutbox) == 1 and "3 findings assigned" in mailoutbox[0].subject
    assert owner.notifications.count() == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "acknowledge"}, "Tick at least one finding."),
        ({"action": "acknowledge", "ids": ["x", ""]}, "Tick at least one finding."),
        ({"action": "explode", "ids": ["1"]}, "Choose acknowledge or assign."),
        ({"action": "assign", "ids": ["1"], "assignee": ""}, "Choose a person"),
        ({"action": "assign", "ids": ["1"], "assignee": "ghost"}, "No active person"),
    ],
)
def test_bulk_bad_input_is_422(client, risk, team_a, data, message):
    f = make_finding(team=team_a)
    data = {**data, "ids": [str(f.pk) if i == "1" else i for i in data.get("ids", [])]}
    client.force_login(risk)
    response = client.post(BULK, data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not AuditEvent.objects.filter(action__startswith="finding.").exists()


def test_bulk_too_many_is_422(client, risk, team_a):
    client.force_login(risk)
    response = client.post(
        BULK, {"action": "acknowledge", "ids": [str(i) for i in range(1, 600)]}
    )
    assert response.status_code == 422
    assert "at most 500" in response.content.decode()


def test_bulk_back_link_stays_on_the_site(client, risk, team_a):
    f = make_finding(team=team_a)
    client.force_login(risk)
    response = client.post(
        BULK, {"action": "acknowledge", "ids": [f.pk], "back": "https://evil.example/"}
    )
    assert response.status_code == 302 and response["Location"] == URL


# ---------------------------------------------------------------------------
# The chart
# ---------------------------------------------------------------------------
def test_chart_counts_opened_and_resolved_per_day_by_kind(risk, owner, team_a, team_b):
    now = timezone.now()
    a = make_finding(team=team_a, kind="missing_owner")
    b = make_finding(team=team_b, kind="shadow_deployment", opened_days_ago=2)
    FindingEvent.objects.create(
        finding=a, kind=a.kind, action="resolved", at=now - timedelta(hours=1)
    )
    FindingEvent.objects.create(
        finding=a, kind=a.kind, action="reopened", at=now - timedelta(minutes=5)
    )
    FindingEvent.objects.create(  # acknowledgements do not count
        finding=b, kind=b.kind, action="acknowledged", at=now
    )
    FindingEvent.objects.create(  # older than 30 days
        finding=b, kind=b.kind, action="opened", at=now - timedelta(days=45)
    )
    data = selectors.findings_chart(user=risk, now=now)
    assert len(data["days"]) == 30 and data["days"][-1] == timezone.localdate(now)
    assert data["opened"]["missing_owner"][-1] == 2  # opened + reopened today
    assert data["resolved"]["missing_owner"][-1] == 1
    assert data["opened"]["shadow_deployment"][-3] == 1
    assert sum(data["opened"]["shadow_deployment"]) == 1
    # Scoped: the owner sees their team's only.
    theirs = selectors.findings_chart(user=owner, now=now)
    assert set(theirs["opened"]) == {"missing_owner"}
    specs = chart_specs(data)
    assert [s["id"] for s in specs] == [
        "chart-findings-opened",
        "chart-findings-resolved",
    ]
    assert {s["name"] for s in specs[0]["series"]} == {
        "Missing owner",
        "Shadow deployment",
    }


def test_chart_is_one_query(risk, team_a, django_assert_num_queries):
    for _ in range(5):
        make_finding(team=team_a)
    permissions.roles(risk)  # read once per request, before the chart
    with django_assert_num_queries(1):
        selectors.findings_chart(user=risk)


def test_page_draws_the_chart_from_static_plotly(client, risk, team_a):
    make_finding(team=team_a)
    client.force_login(risk)
    body = client.get(URL).content.decode()
    assert "/static/vendor/plotly/plotly.min.js" in body and "cdn" not in body.lower()
    assert 'id="chart-data"' in body and 'data-testid="findings-chart"' in body


# ---------------------------------------------------------------------------
# Query count
# ---------------------------------------------------------------------------
def _build(n, team, assignee):
    people = [
        UserFactory(username=f"p{n}-{i}", role=Role.OWNER, teams=[team])
        for i in range(3)
    ]
    for i in range(n):
        make_finding(
            team=team,
            assignee=people[i % 3] if i % 2 else None,
            owner=assignee if i % 3 == 0 else None,
            severity=1 + i % 4,
            tier=1 + i % 4,
            source="mlflow:1" if i % 2 else "manual",
        )


@pytest.mark.parametrize("role", ["risk", "owner"])
def test_query_count_does_not_grow(
    client, request, role, team_a, django_assert_max_num_queries
):
    """5 findings, then 60: the same queries. Unfiltered, the page is 6 queries: the
    session and the user (Django's), the roles, the chart, the page (rows and count in
    one) and the source names."""
    user = request.getfixturevalue(role)
    client.force_login(user)
    client.get(URL)  # the session's first request stamps it
    cases = [{}, {"team": team_a.pk, "kind": "missing_owner", "status": "all"}]
    _build(5, team_a, user)
    few = []
    for params in cases:
        with CaptureQueriesContext(connection) as ctx:
            assert len(_rows(client.get(URL, params))) == 5
        few.append(len(ctx))
        if not params:
            unfiltered = ctx
    _build(55, team_a, user)
    for params, count in zip(cases, few, strict=True):
        with django_assert_max_num_queries(count):
            assert len(_rows(client.get(URL, params))) == 50
    assert len(unfiltered) <= 6, [q["sql"][:100] for q in unfiltered.captured_queries]


def test_list_from_the_engine(client, risk):
    d = DeploymentFactory(owner=None)
    detection.run(kinds=["missing_owner"], notify=False)
    client.force_login(risk)
    response = client.get(URL, {"kind": "missing_owner"})
    assert [f.subject_id for f in response.context["page"].rows] == [d.pk]
    assert d.name in response.content.decode()


def test_bulk_returns_to_the_filters_the_user_last_saw(client, risk, team_a):
    f = make_finding(team=team_a)
    client.force_login(risk)
    response = client.post(
        BULK,
        {"action": "acknowledge", "ids": [f.pk], "back": URL},
        headers={"Referer": f"http://testserver{URL}?kind=missing_owner&tier=3"},
    )
    assert response["Location"] == URL + "?kind=missing_owner&tier=3"
    response = client.post(
        BULK,
        {"action": "acknowledge", "ids": [f.pk], "back": URL + "?tier=3"},
        headers={"Referer": "http://testserver/inventory/deployments/"},
    )
    assert response["Location"] == URL + "?tier=3"


# ---------------------------------------------------------------------------
# The fast paths draw what the general ones drew
# ---------------------------------------------------------------------------
def test_fast_rows_match_the_general_table(client, risk, team_a, owner):
    """FindingTable.rows_html (string building) against KeysetTable.rows_html (the
    render methods, cell by cell), over every subject, a missing subject, a team and
    none, an assignee and a queue, each source label and markup in names."""
    from governance.tables_findings import FindingTable
    from inventory.tables import KeysetTable
    from tests.factories import AIModelFactory, IdentityFactory

    deployment = DeploymentFactory(model__team=team_a, name="dep <b>\"&'")
    make_finding(team=team_a, deployment=deployment, title="<i>\"x\"</i> & 'y'")
    make_finding(assignee=owner, source="mlflow:1", severity=4, tier=1)
    make_finding(team=team_a, source="", status="acknowledged", kind="version_drift")
    make_finding(team=team_a, source="unknown:9", severity=1)
    model = AIModelFactory(team=team_a, name="m<&>")
    identity = IdentityFactory(name="id<&>")
    base = make_finding(team=team_a)
    for subject_type, target in (("model", model), ("identity", identity)):
        Finding.objects.create(
            kind="missing_owner",
            subject_type=subject_type,
            subject_id=target.pk,
            model=target if subject_type == "model" else None,
            identity=target if subject_type == "identity" else None,
            title=f"on a {subject_type}",
            severity=2,
            tier=3,
            queue=Finding.Queue.COMMITTEE,
            evidence={},
            evidence_key=subject_type,
            opened_at=base.opened_at,
            last_seen_at=base.last_seen_at,
        )
    Finding.objects.create(  # its subject is gone: "#id"
        kind="missing_owner",
        subject_type="deployment",
        subject_id=987654,
        title="gone",
        severity=3,
        tier=2,
        queue=Finding.Queue.TEAM,
        evidence={},
        evidence_key="gone",
    )
    client.force_login(risk)
    response = client.get(URL, {"status": "all"})
    table = response.context["table"]
    assert isinstance(table, FindingTable) and len(table.data) == 8
    fast = str(table.rows_html())
    assert fast == str(KeysetTable.rows_html(table))
    assert "dep &lt;b&gt;&quot;&amp;&#x27;" in fast and "#987654" in fast
    assert fast in response.content.decode()


def test_chart_numbers_match_the_series(client, risk, team_a):
    from governance.views_findings import chart_numbers_html

    make_finding(team=team_a, kind="missing_owner")
    client.force_login(risk)
    response = client.get(URL)
    figures = response.context["chart_figures"]
    assert [spec["id"] for spec, _ in figures] == [
        "chart-findings-opened",
        "chart-findings-resolved",
    ]
    spec, numbers = figures[0]
    assert numbers == chart_numbers_html(spec) and numbers in response.content.decode()
    heads = [
        f'<th scope="col" class="text-end">{day}</th>' for day in spec["categories"]
    ]
    assert numbers.startswith('<thead><tr><th scope="col">Kind</th>' + "".join(heads))
    series = next(s for s in spec["series"] if s["name"] == "Missing owner")
    assert series["values"][-1] == 1
    row = '<tr><th scope="row" class="fw-normal">Missing owner</th>' + "".join(
        f'<td class="text-end">{v}</td>' for v in series["values"]
    )
    assert row + "</tr>" in numbers
    evil = {
        "categories": ["<d>"],
        "series": [{"name": "<k>&", "values": [3]}],
    }
    assert chart_numbers_html(evil) == (
        '<thead><tr><th scope="col">Kind</th><th scope="col" class="text-end">&lt;d&gt;'
        '</th></tr></thead>\n<tbody><tr><th scope="row" class="fw-normal">&lt;k&gt;&amp;'
        '</th><td class="text-end">3</td></tr></tbody>'
    )


@pytest.mark.parametrize(
    "params",
    [{}, {"sort": "-opened_at"}, {"sort": "last_seen_at", "kind": "version_drift"}],
)
def test_owner_pages_read_from_each_part_of_their_scope(client, team_a, team_b, params):
    """An owner's page is read part by part (each team, their own, assigned to them:
    selectors_findings.narrow_to_pages): walking every page gives exactly their
    findings in the list's order, each once, with the whole count."""
    import re

    from governance.findings import finding_scope
    from tests.factories import TeamFactory

    third = TeamFactory(name="Third", slug="third")
    owner = UserFactory(username="multi", role=Role.OWNER, teams=[team_a, team_b])
    kinds = ["missing_owner", "version_drift"]
    for i in range(170):
        make_finding(
            team=[team_a, team_b, third][i % 3],
            owner=owner if i % 7 == 0 else None,
            assignee=owner if i % 11 == 0 else None,
            kind=kinds[i % 2],
            severity=1 + i % 4,
            tier=1 + (i // 4) % 4,
            opened_days_ago=i % 9,
        )
    client.force_login(owner)
    sort = params.get("sort", "priority")
    field = sort.lstrip("-")
    expected = finding_scope(Finding.objects.all(), owner).exclude(status="resolved")
    if "kind" in params:
        expected = expected.filter(kind=params["kind"])
    expected = list(
        expected.order_by(
            f"-{field}" if sort.startswith("-") else field,
            "-pk" if sort.startswith("-") else "pk",
        ).values_list("pk", flat=True)
    )
    assert len(expected) > 50  # more than one page, from every part
    seen, query, count = [], dict(params), None
    for _ in range(10):
        response = client.get(URL, query)
        seen += _rows(response)
        count = response.context["page"].matching
        after = re.search(
            r'data-testid="page-next" href="\?([^"]+)"', response.content.decode()
        )
        if not after:
            break
        query = dict(
            pair.split("=", 1)
            for pair in after.group(1).replace("&amp;", "&").split("&")
        )
    assert seen == expected and count == len(expected)
    # And back: the previous page of the last one is the one before it.
    last = response.context["page"]
    if last.prev_cursor:
        back = client.get(URL, {**params, "before": last.prev_cursor})
        assert (
            _rows(back)
            == expected[len(seen) - len(last.rows) - 50 : len(seen) - len(last.rows)]
        )
