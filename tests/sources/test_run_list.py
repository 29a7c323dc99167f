"""/sources/runs/ and /sources/events/: every sync run and every deployment event, filtered,
sorted, paged by keyset, refreshed in place by htmx and exported as CSV; read by everyone."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inventory import models as m
from sources import models as sm
from tests.factories import DeploymentFactory, IdentityFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db

RUNS = reverse("sources:run_list")
EVENTS = reverse("sources:event_list")
READ_ONLY = ["owner", "risk", "compliance", "auditor"]
DAY = datetime(2026, 3, 10, 12, 0, tzinfo=timezone.get_fixed_timezone(0))


def make_run(source, **fields) -> sm.SyncRun:
    at = fields.pop("requested_at", DAY)
    defaults = {
        "trigger": "schedule",
        "status": "succeeded",
        "requested_at": at,
        "started_at": at,
        "finished_at": at + timedelta(seconds=4),
    }
    defaults.update(fields)
    return sm.SyncRun.objects.create(source=source, **defaults)


def make_event(**fields) -> sm.DeploymentEvent:
    defaults = {
        "received_at": DAY,
        "model_name": "fraud-scorer",
        "version": "3",
        "environment": "production",
        "endpoint": "https://fraud.internal/v1/score",
        "commit": "9f3c2ab",
        "pipeline": "deploy-fraud-scorer",
        "pipeline_run": "https://ci.example.com/runs/1",
    }
    defaults.update(fields)
    return sm.DeploymentEvent.objects.create(**defaults)


def run_ids(client, query: str = "") -> list[int]:
    """The run ids the page lists, in order."""
    response = client.get(RUNS + query)
    assert response.status_code == 200
    return [
        int(pk)
        for pk in re.findall(
            r'href="/sources/runs/(\d+)/" data-testid="run-link"',
            response.content.decode(),
        )
    ]


def event_commits(client, query: str = "") -> list[str]:
    response = client.get(EVENTS + query)
    assert response.status_code == 200
    return re.findall(r"<td><code>([^<]+)</code></td>", response.content.decode())


def headers(body: str) -> list[str]:
    """The table's column headers, without the sort arrows."""
    cells = re.findall(r"<th[^>]*>(.*?)</th>", body, flags=re.S)
    return [re.sub(r"<[^>]+>|[▲▼]", "", c).strip() for c in cells]


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


@pytest.fixture
def runs(api_source, file_source, admin_user):
    """Five runs of two sources, each different from the others in one way."""
    registry = api_source(name="Registry")
    uploads = file_source(name="Uploads")
    return {
        "registry": registry,
        "uploads": uploads,
        "ok": make_run(registry, requested_at=DAY),
        "failed": make_run(
            registry,
            status="failed",
            trigger="manual",
            requested_by=admin_user,
            requested_at=DAY + timedelta(days=1),
            error="Connection refused by registry.example.com",
        ),
        "dry": make_run(
            registry,
            dry_run=True,
            trigger="manual",
            requested_at=DAY + timedelta(days=2),
        ),
        "upload": make_run(
            uploads,
            trigger="upload",
            status="partial",
            errors=2,
            requested_at=DAY + timedelta(days=3),
        ),
        "queued": make_run(
            uploads,
            trigger="upload",
            status="queued",
            started_at=None,
            finished_at=None,
            requested_at=DAY + timedelta(days=4),
        ),
    }


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------
def test_runs_list_newest_first_with_every_column(login, admin_user, runs):
    client = login(admin_user)
    body = client.get(RUNS).content.decode()
    assert run_ids(client) == [
        runs[k].pk for k in ("queued", "upload", "dry", "failed", "ok")
    ]
    assert headers(body) == [
        "Run",
        "Source",
        "Status",
        "Trigger",
        "Dry run",
        "Asked by",
        "Requested",
        "Duration",
        "Seen",
        "Created",
        "Updated",
        "Unchanged",
        "Gone",
        "Errors",
    ]
    assert f'href="/sources/{runs["uploads"].pk}/">Uploads</a>' in body
    assert 'data-testid="run-status">Failed<' in body
    assert "Uploaded file" in body and "Sync now" in body
    assert "4.0 s" in body and "2026-03-11 12:00:00" in body
    assert admin_user.get_username() in body
    assert 'aria-sort="descending"' in body


def test_filters_narrow_the_runs(login, auditor, runs):
    client = login(auditor)
    registry, uploads = runs["registry"], runs["uploads"]

    assert run_ids(client, "?status=failed") == [runs["failed"].pk]
    assert run_ids(client, f"?source={uploads.pk}") == [
        runs["queued"].pk,
        runs["upload"].pk,
    ]
    assert run_ids(client, "?trigger=manual") == [runs["dry"].pk, runs["failed"].pk]
    assert run_ids(client, "?dry_run=true") == [runs["dry"].pk]
    assert runs["dry"].pk not in run_ids(client, "?dry_run=false")
    assert len(run_ids(client, "?dry_run=")) == 5
    assert run_ids(client, "?q=REFUSED") == [runs["failed"].pk]
    assert run_ids(client, f"?source={registry.pk}&trigger=manual&dry_run=false") == [
        runs["failed"].pk
    ]
    # Both days count: from the 11th to the 12th is the failed and the dry run.
    assert run_ids(
        client, "?requested_after=2026-03-11&requested_before=2026-03-12"
    ) == [runs["dry"].pk, runs["failed"].pk]
    assert run_ids(client, "?requested_before=2026-03-09") == []
    # The source filter is a select of the sources, by name.
    body = client.get(RUNS).content.decode()
    assert f'<option value="{registry.pk}">Registry</option>' in body


def test_sorting_runs_by_source_status_and_time(login, risk, runs):
    client = login(risk)
    assert run_ids(client, "?sort=requested_at") == [
        runs[k].pk for k in ("ok", "failed", "dry", "upload", "queued")
    ]
    by_source = run_ids(client, "?sort=source")
    registry_runs = {runs[k].pk for k in ("ok", "failed", "dry")}
    assert set(by_source[:3]) == registry_runs
    assert run_ids(client, "?sort=-source")[:2] == sorted(
        [runs["upload"].pk, runs["queued"].pk], reverse=True
    )
    statuses = [
        sm.SyncRun.objects.get(pk=pk).status for pk in run_ids(client, "?sort=status")
    ]
    assert statuses == sorted(statuses)
    body = client.get(RUNS + "?sort=-status").content.decode()
    assert 'aria-sort="descending"' in body
    # Duration is not sortable; asking for it gives the default order, not an error.
    assert run_ids(client, "?sort=duration") == run_ids(client)


def test_keyset_pages_cover_every_run_once(login, admin_user, api_source):
    client = login(admin_user)
    sources = [api_source(name=f"src-{i}") for i in range(3)]
    for i in range(61):
        make_run(sources[i % 3], requested_at=DAY + timedelta(minutes=i // 2))
    for sort in ("", "?sort=source", "?sort=-status"):
        seen, url = [], RUNS + sort
        while url:
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(url)
            sql = " ".join(q["sql"].upper() for q in ctx.captured_queries)
            # The one count is the list's capped count of matching rows (issue 9).
            assert " OFFSET " not in sql and sql.count("COUNT(") == 1
            assert "LIMIT 10001)" in sql
            body = response.content.decode()
            seen += [
                int(pk) for pk in re.findall(r'/sources/runs/(\d+)/" data-testid', body)
            ]
            nxt = re.search(r'data-testid="page-next" href="([^"]+)"', body)
            url = RUNS + nxt.group(1).replace("&amp;", "&") if nxt else None
        assert sorted(seen) == sorted(sm.SyncRun.objects.values_list("pk", flat=True))
        assert len(seen) == len(set(seen)) == 61


def test_runs_csv_has_the_filtered_rows_and_defuses_formulas(
    login, compliance, api_source, admin_user
):
    source = api_source(name="@SUM(A1) registry")
    other = api_source(name="Other")
    bad = make_run(
        source,
        status="failed",
        requested_by=admin_user,
        error='=HYPERLINK("http://evil.example","click")',
    )
    make_run(other, status="failed", requested_at=DAY - timedelta(days=1))
    make_run(source, status="succeeded", requested_at=DAY - timedelta(days=2))

    response = login(compliance).get(
        RUNS + f"?status=failed&source={source.pk}&export=csv&after=junk"
    )

    assert re.match(
        r'attachment; filename="runproof-runs-\d{8}-\d{6}\.csv"',
        response["Content-Disposition"],
    )
    rows = csv_rows(response)
    header = rows[0]
    assert header[:6] == ["id", "source_id", "source", "status", "trigger", "dry_run"]
    assert len(rows) == 2
    row = dict(zip(header, rows[1], strict=True))
    assert row["id"] == str(bad.pk)
    assert row["source"] == "'@SUM(A1) registry"
    assert row["error"] == '\'=HYPERLINK("http://evil.example","click")'
    assert row["requested_by"] == admin_user.get_username()
    assert row["requested_at"] == "2026-03-10T12:00:00+00:00"
    assert row["duration_seconds"] == "4.0"
    assert row["dry_run"] == "false"


@pytest.mark.parametrize("role", [*READ_ONLY, "admin_user"])
def test_everyone_signed_in_reads_runs_and_events(role, request, login, runs):
    make_event()
    client = login(request.getfixturevalue(role))
    assert len(run_ids(client)) == 5
    # Runs are shared; an event about no deployment of theirs is not an owner's to read
    # (issue 8, item 15: tests/sources/test_scoping.py has the owner's own events).
    assert event_commits(client) == ([] if role == "owner" else ["9f3c2ab"])
    assert client.get(RUNS + "?export=csv").status_code == 200
    assert client.get(EVENTS + "?export=csv").status_code == 200


def test_signed_out_visitors_are_sent_to_sign_in(client):
    for url in (RUNS, EVENTS, RUNS + "?export=csv"):
        response = client.get(url)
        assert response.status_code == 302
        assert reverse("login") in response["Location"]


def test_htmx_gets_only_the_results_fragment(login, auditor, runs):
    client = login(auditor)
    for url in (RUNS + "?status=failed", EVENTS + "?environment=staging"):
        full = client.get(url).content.decode()
        fragment = client.get(url, headers={"HX-Request": "true"})
        text = fragment.content.decode()
        assert "<html" in full and 'id="filters"' in full
        assert "<html" not in text and 'id="results"' in text
        assert 'id="filters"' not in text
        assert "HX-Request" in fragment["Vary"]
        restore = client.get(
            url, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
        )
        assert "<html" in restore.content.decode()
    fragment = client.get(RUNS + "?status=failed", headers={"HX-Request": "true"})
    assert re.findall(
        r'/sources/runs/(\d+)/" data-testid', fragment.content.decode()
    ) == [str(runs["failed"].pk)]


@pytest.mark.parametrize(
    "query",
    [
        "?status=moon",
        "?trigger=42",
        "?source=abc",
        "?source=99999999999999999999",
        "?source=-1",
        "?requested_after=yesterday",
        "?requested_after=0001-01-01",
        "?requested_before=9999-12-31",
        "?requested_before=2026-02-30",
    ],
)
def test_bad_run_filters_are_ignored_with_a_message(login, auditor, runs, query):
    response = login(auditor).get(RUNS + query)
    assert response.status_code == 200
    assert "were not valid" in response.content.decode()
    assert len(run_ids(login(auditor), query)) == 5


@pytest.mark.parametrize(
    "query",
    [
        "?sort=-nope&after=%%%",
        "?after=WyJub3QtYS1kYXRlIiwgMV0",
        "?sort=source&before=WzEsMl0",
        "?dry_run=maybe",
        "?q=" + "x" * 5000,
        "?requested_after=2026-03-10&requested_before=2026-03-01",
    ],
)
def test_odd_run_queries_answer_a_page_never_a_500(login, auditor, runs, query):
    client = login(auditor)
    assert client.get(RUNS + query).status_code == 200
    assert client.get(RUNS + query + "&export=csv").status_code == 200


def test_run_pages_cost_the_same_queries_with_3_or_30_runs(
    login, owner, api_source, django_assert_max_num_queries
):
    client = login(owner)
    client.get(RUNS)  # the first request stamps the session
    sources = [api_source(name=f"s-{i}") for i in range(3)]
    requester = owner

    def add(n):
        for i in range(n):
            make_run(
                sources[i % 3],
                requested_by=requester,
                requested_at=DAY - timedelta(minutes=sm.SyncRun.objects.count()),
            )

    def count(url, **kw):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url, **kw).status_code == 200
        return len(ctx)

    urls = [
        RUNS,
        RUNS + f"?source={sources[0].pk}&status=succeeded",
        RUNS + "?sort=source",
    ]
    add(3)
    small = [count(u) for u in urls]
    add(27)
    large = [count(u) for u in urls]
    assert small == large
    with django_assert_max_num_queries(8):
        client.get(urls[1], headers={"HX-Request": "true"})
    with django_assert_max_num_queries(8):
        client.get(RUNS)


# ---------------------------------------------------------------------------
# Links to the lists
# ---------------------------------------------------------------------------
def test_sources_pages_link_to_the_lists(login, auditor, runs, token_for):
    client = login(auditor)
    listing = client.get(reverse("sources:source_list")).content.decode()
    assert f'href="{RUNS}">All runs</a>' in listing
    registry = runs["registry"]
    detail = client.get(registry.get_absolute_url()).content.decode()
    link = f'href="{RUNS}?source={registry.pk}">All runs of this source</a>'
    assert link in detail
    assert run_ids(client, f"?source={registry.pk}") == [
        runs[k].pk for k in ("dry", "failed", "ok")
    ]
    assert "All events" not in detail

    _, raw = token_for("deploy")
    sent = Client(headers={"Authorization": f"Bearer {raw}"}).post(
        "/api/v1/deployment-events",
        json.dumps(
            {
                "model": "fraud-scorer",
                "version": "3",
                "environment": "production",
                "endpoint": "https://fraud.internal/v1/score",
                "commit": "abc1234",
                "pipeline": "deploy-fraud-scorer",
            }
        ),
        content_type="application/json",
    )
    assert sent.status_code == 201, sent.content
    cicd = sm.DataSource.objects.get(kind="cicd")
    page = client.get(cicd.get_absolute_url()).content.decode()
    assert f'href="{EVENTS}">All events</a>' in page
    events = client.get(EVENTS).content.decode()
    deployment = m.Deployment.objects.get(source=cicd.source_label)
    assert f'href="{deployment.get_absolute_url()}">{deployment.name}</a>' in events
    assert event_commits(client) == ["abc1234"]


# ---------------------------------------------------------------------------
# Deployment events
# ---------------------------------------------------------------------------
@pytest.fixture
def events():
    deployment = DeploymentFactory(name="fraud-prod")
    return {
        "prod": make_event(commit="c-prod", deployment=deployment),
        "staging": make_event(
            commit="c-staging",
            environment="staging",
            endpoint="https://fraud-staging.internal/v1/score",
            received_at=DAY + timedelta(days=1),
        ),
        "churn": make_event(
            commit="c-churn",
            model_name="churn-predictor",
            pipeline="nightly-churn",
            endpoint="https://churn.internal/predict",
            received_at=DAY + timedelta(days=2),
        ),
    }


def test_event_filters_narrow_the_list(login, auditor, events):
    client = login(auditor)
    assert event_commits(client) == ["c-churn", "c-staging", "c-prod"]
    assert event_commits(client, "?model_name=CHURN") == ["c-churn"]
    assert event_commits(client, "?environment=staging") == ["c-staging"]
    assert event_commits(client, "?q=nightly") == ["c-churn"]
    assert event_commits(client, "?q=c-prod") == ["c-prod"]
    assert event_commits(client, "?q=fraud-staging.internal") == ["c-staging"]
    assert event_commits(client, "?received_after=2026-03-11") == [
        "c-churn",
        "c-staging",
    ]
    assert event_commits(client, "?received_before=2026-03-11") == [
        "c-staging",
        "c-prod",
    ]
    assert event_commits(client, "?sort=received_at") == [
        "c-prod",
        "c-staging",
        "c-churn",
    ]
    body = client.get(EVENTS).content.decode()
    assert ">fraud-prod</a>" in body
    assert "https://churn.internal/predict" in body


def test_event_pages_are_keyset_pages(login, auditor):
    client = login(auditor)
    for i in range(55):
        make_event(commit=f"c{i:03d}", received_at=DAY + timedelta(seconds=i // 3))
    seen, url = [], EVENTS
    while url:
        body = client.get(url).content.decode()
        seen += re.findall(r"<td><code>([^<]+)</code></td>", body)
        nxt = re.search(r'data-testid="page-next" href="([^"]+)"', body)
        url = EVENTS + nxt.group(1).replace("&amp;", "&") if nxt else None
    assert sorted(seen) == [f"c{i:03d}" for i in range(55)]


def test_events_csv_has_the_filtered_rows_and_defuses_formulas(login, risk, events):
    make_event(
        commit="=cmd|' /C calc'!A0",
        pipeline="+deploy",
        pipeline_run="-1+1",
        environment="staging",
    )
    response = login(risk).get(EVENTS + "?environment=staging&export=csv")
    assert re.match(
        r'attachment; filename="runproof-events-\d{8}-\d{6}\.csv"',
        response["Content-Disposition"],
    )
    rows = csv_rows(response)
    header = rows[0]
    assert header[:5] == ["id", "received_at", "model", "version", "environment"]
    by_commit = {
        r[header.index("commit")]: dict(zip(header, r, strict=True)) for r in rows[1:]
    }
    assert set(by_commit) == {"c-staging", "'=cmd|' /C calc'!A0"}
    evil = by_commit["'=cmd|' /C calc'!A0"]
    assert evil["pipeline"] == "'+deploy" and evil["pipeline_run"] == "'-1+1"
    prod = login(risk).get(EVENTS + "?environment=production&q=c-prod&export=csv")
    rows = csv_rows(prod)
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["deployment"] == "fraud-prod"
    assert row["deployment_id"] == str(events["prod"].deployment_id)


@pytest.mark.parametrize(
    "query",
    [
        "?environment=moon",
        "?received_after=0001-01-01",
        "?received_before=9999-12-31",
        "?received_after=not-a-date",
        "?model_name=" + "x" * 300,
    ],
)
def test_bad_event_filters_are_ignored_with_a_message(login, auditor, events, query):
    client = login(auditor)
    response = client.get(EVENTS + query)
    assert response.status_code == 200
    assert "were not valid" in response.content.decode()
    assert len(event_commits(client, query)) == 3
    assert client.get(EVENTS + query + "&export=csv&sort=-nope").status_code == 200


def test_event_pages_cost_the_same_queries_with_3_or_30_events(
    login, compliance, django_assert_max_num_queries
):
    client = login(compliance)
    client.get(EVENTS)  # the first request stamps the session

    def add(n):
        for _ in range(n):
            deployment = DeploymentFactory()
            make_event(
                deployment=deployment,
                model_version=ModelVersionFactory(model=deployment.model),
                sent_by=IdentityFactory(),
            )

    def count(url):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx)

    urls = [EVENTS, EVENTS + "?environment=production&q=internal&sort=received_at"]
    add(3)
    small = [count(u) for u in urls]
    add(27)
    large = [count(u) for u in urls]
    assert small == large
    with django_assert_max_num_queries(6):
        client.get(urls[1], headers={"HX-Request": "true"})
