"""Compiled rows: every list draws exactly the cells django-tables2 would, without its
per-cell machinery. If a django-tables2 upgrade changes what a cell holds, these fail."""

from __future__ import annotations

import pytest
from django.utils import timezone
from django.utils.html import conditional_escape
from django_tables2.rows import BoundRow

from governance import selectors as governance_selectors
from governance.tables import AuditEventTable
from inventory import models as m
from inventory import services, source_names, tables
from inventory.pagination import capped_count
from inventory.tables import KeysetTable, PageUrls
from inventory.views import SPECS
from sources import models as sm
from sources import selectors as source_selectors
from sources import tables as source_tables
from sources.sync import services as source_services
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
    SystemFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def everything(admin_user):
    team = TeamFactory(description="Scores <credit> & risk")
    person = UserFactory(teams=[team])
    source = source_services.source_create(
        actor=admin_user, name="CI & CD", kind="cicd"
    )
    model = AIModelFactory(team=team, owner=person, source=source.source_label)
    AIModelFactory(team=None, owner=None, lifecycle="retired")
    approved = ModelVersionFactory(
        model=model, approval="approved", digest="sha256:" + "a" * 64
    )
    running = ModelVersionFactory(model=model)
    system = SystemFactory(team=team, owner=person, business_purpose="x" * 120)
    deployment = DeploymentFactory(
        model=model,
        team=team,
        owner=person,
        system=system,
        observed_version=running,
        approved_version=approved,
        write_access=True,
        decision_making=True,
        exposure="external",
        gone_at=timezone.now(),
    )
    DeploymentFactory(observed_version=None, observed_version_label="9.9", owner=None)
    IdentityFactory(team=team, owner=person, deployments=[deployment])
    IdentityFactory(team=None, owner=None)
    sm.SyncRun.objects.create(
        source=source,
        trigger="manual",
        requested_by=admin_user,
        requested_at=timezone.now(),
        started_at=timezone.now(),
        finished_at=timezone.now(),
        status="failed",
        error="boom",
        dry_run=True,
    )
    sm.DataSource.objects.filter(pk=source.pk).update(
        last_error="a\n  long <error> " * 20, last_success_at=timezone.now()
    )
    source_services.source_create(actor=admin_user, name="Never ran", kind="cicd")
    sm.DeploymentEvent.objects.create(
        received_at=timezone.now(),
        model_name="fraud-scorer",
        version=running.version,
        model_version=running,
        environment="production",
        endpoint="https://fraud.internal/v1/score?a=<b>",
        deployment=deployment,
        commit="9f3c2ab",
        pipeline_run="javascript:alert(1)",
    )
    sm.DeploymentEvent.objects.create(
        received_at=timezone.now(),
        model_name="m",
        version="1",
        environment="staging",
        endpoint="https://x.internal",
    )
    services.object_update(actor=admin_user, instance=team)


def tables_under_test(admin_user) -> list[tuple[type[KeysetTable], list]]:
    found = [
        (spec.table, list(spec.selector(user=admin_user))) for spec in SPECS.values()
    ]
    found += [
        (
            source_tables.SourceTable,
            list(source_selectors.datasource_list(user=admin_user)),
        ),
        (
            source_tables.SyncRunTable,
            list(source_selectors.syncrun_list(user=admin_user)),
        ),
        (
            source_tables.DeploymentEventTable,
            list(source_selectors.deploymentevent_list(user=admin_user)),
        ),
        (AuditEventTable, list(governance_selectors.audit_event_list(user=admin_user))),
    ]
    return found


def test_compiled_cells_are_the_cells_django_tables2_renders(admin_user, everything):
    for table_class, rows in tables_under_test(admin_user):
        assert len(rows) >= 1, table_class
        table = table_class(rows)
        for record in rows:
            stock = [
                str(conditional_escape(cell)) for cell in BoundRow(record, table=table)
            ]
            assert table.row_cells(record) == stock, (table_class.__name__, record)


def test_every_column_of_every_list_is_compiled(admin_user, everything):
    for table_class, rows in tables_under_test(admin_user):
        table = table_class(rows)
        slow = [name for name in table.columns.names() if not table.compiles(name)]
        assert slow == [], table_class.__name__


def test_rows_html_is_the_tbody_of_those_cells(admin_user, everything):
    rows = list(SPECS["deployment"].selector(user=admin_user))
    table = tables.DeploymentTable(rows)
    html = table.rows_html()
    assert html.count("<tr>") == len(rows)
    for record in rows:
        assert "".join(f"<td>{c}</td>" for c in table.row_cells(record)) in html
    assert "<b>" not in str(
        tables.TeamTable([TeamFactory(description="<b>x</b>")]).rows_html()
    )


def test_page_urls_are_the_urls_reverse_builds(everything):
    urls = PageUrls()
    for deployment in m.Deployment.objects.all():
        assert urls.of(deployment) == deployment.get_absolute_url()
    run = sm.SyncRun.objects.first()
    assert urls.path("sources:run_detail", run.pk) == run.get_absolute_url()


def _page_queryset(spec, user):
    """The list's own query for a first page: the selector, what the list adds, the
    keyset order and the capped count (inventory.lists.keyset_list)."""
    base = spec.selector(user=user)
    base = spec.prepare(base) if spec.prepare else base
    return base.order_by("pk").annotate(keyset_matching=capped_count(base))[:51]


@pytest.mark.parametrize("key", sorted(SPECS))
def test_rows_read_as_tuples_draw_the_cells_of_model_instances(
    key, admin_user, everything, django_assert_num_queries
):
    spec = SPECS[key]
    assert spec.table.row_fields, f"{key}: the list reads model instances"
    queryset = _page_queryset(spec, admin_user)
    instances = list(queryset)
    assert instances, key
    names = source_names.names()
    # One query, and no more while drawing: every field a cell reads was read.
    with django_assert_num_queries(1):
        read = spec.table.read_rows(queryset)
        table = spec.table(read, source_names=lambda: names)
        cells = [table.row_cells(record) for record in read]
    stock_table = spec.table(instances)
    stock = [
        [str(conditional_escape(c)) for c in BoundRow(record, table=stock_table)]
        for record in instances
    ]
    assert cells == stock
    assert [r.pk for r in read] == [r.pk for r in instances]
    assert [r.keyset_matching for r in read] == [r.keyset_matching for r in instances]


def test_a_field_the_rows_were_not_read_with_is_read_from_the_database(
    admin_user, everything, django_assert_num_queries
):
    """A cell reading an undeclared field still gets its value (a query per row, which the
    query-count tests catch), never a silent empty cell."""
    spec = SPECS["deployment"]
    queryset = _page_queryset(spec, admin_user)
    read = spec.table.read_rows(queryset)
    expected = {d.pk: d.endpoint for d in m.Deployment.objects.all()}
    with django_assert_num_queries(1):
        assert read[0].endpoint == expected[read[0].pk]


def test_the_header_is_rendered_once_per_sort_and_query_string(admin_user, rf):
    """The cached <thead> is the template's, and each query string gets its own: the sort
    links keep the filters (and drop the cursor)."""
    from django.template.loader import get_template

    def header(query: str, order_by: str = "name") -> str:
        request = rf.get(f"/inventory/deployments/?{query}")
        table = tables.DeploymentTable([], order_by=order_by)
        table.before_render(request)
        return str(table.thead_html()), table, request

    tables._THEAD_CACHE.clear()
    first, table, request = header("q=alpha&after=abc")
    assert tables._THEAD_CACHE, "not cached"
    assert first == get_template(tables.THEAD_TEMPLATE).render(
        {"table": table}, request
    )
    assert "q=alpha&amp;sort=-name" in first and "after=" not in first
    again, _, _ = header("q=alpha&after=xyz")  # another cursor: the same header
    assert again == first and len(tables._THEAD_CACHE) == 1
    other, _, _ = header("q=beta")
    assert "q=beta&amp;sort=-name" in other and "alpha" not in other
    descending, _, _ = header("q=alpha", order_by="-name")
    assert 'aria-sort="descending"' in descending and "sort=name" in descending


@pytest.mark.parametrize(
    "fmt", ["%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%d %b"]
)
def test_a_timestamp_cell_is_its_utc_strftime(fmt):
    import datetime as dt
    import zoneinfo

    paris = zoneinfo.ZoneInfo("Europe/Paris")
    column = tables.WhenColumn(fmt=fmt)
    for value in [
        dt.datetime(2026, 12, 1, 11, 34, 3, 123456, tzinfo=dt.UTC),
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=zoneinfo.ZoneInfo("UTC")),
        dt.datetime(1000, 1, 1, tzinfo=dt.UTC),
        dt.datetime(999, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 29, 1, 30, tzinfo=paris),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    ]:
        assert column.render(value) == value.astimezone(dt.UTC).strftime(fmt), value
