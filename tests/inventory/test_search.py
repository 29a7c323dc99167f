"""Issue 9, item 8: the lists' free-text search (`?q=`), one helper for every list
(inventory.querysets.search_q), answered by trigram indexes on PostgreSQL.

Correctness runs on SQLite and PostgreSQL; the plan test only on PostgreSQL."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inventory import models as m
from inventory import querysets, services
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
    SystemFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def found(client, admin_user):
    """Names of `candidates` a list shows for `?q=term`, as an administrator sees it, and
    checked against what the API returns for the same term."""
    client.force_login(admin_user)
    _, raw = services.api_token_issue(
        actor=admin_user, name="reader", scopes=[m.APIToken.Scope.READ], days=30
    )

    def names(key: str, term: str, candidates, api: str | None = None) -> set[str]:
        response = client.get(reverse(f"inventory:{key}_list"), {"q": term})
        assert response.status_code == 200
        body = response.content.decode()
        shown = {c for c in candidates if f">{c}<" in body}
        if api:
            listed = client.get(
                f"/api/v1/{api}/",
                {"q": term, "page_size": 200},
                headers={"Authorization": f"Bearer {raw}"},
            )
            assert listed.status_code == 200, listed.content
            returned = {row["name"] for row in listed.json()["results"]}
            assert returned & set(candidates) == shown
        return shown

    return names


@pytest.fixture
def deployments():
    fraud = AIModelFactory(name="fraud-scorer")
    churn = AIModelFactory(name="churn-predictor")
    return {
        # Found by its model's name only.
        "payments-live": DeploymentFactory(
            name="payments-live", model=fraud, endpoint="https://p.internal/"
        ),
        "churn-batch": DeploymentFactory(
            name="churn-batch", model=churn, endpoint="https://c.internal/"
        ),
        # Found by its own name, whatever its model.
        "fraud-shadow": DeploymentFactory(
            name="fraud-shadow", model=churn, endpoint="https://s.internal/"
        ),
        # Found by its endpoint and purpose.
        "edge": DeploymentFactory(
            name="edge",
            model=churn,
            endpoint="https://gateway.example/FraudCheck",
            business_purpose="Screens card payments",
        ),
        # Characters LIKE would read as wildcards.
        "100% safe": DeploymentFactory(
            name="100% safe", model=churn, endpoint="https://x.internal/"
        ),
        "1000 safe": DeploymentFactory(
            name="1000 safe", model=churn, endpoint="https://y.internal/"
        ),
        "a_b": DeploymentFactory(
            name="a_b", model=churn, endpoint="https://z.internal/"
        ),
        "axb": DeploymentFactory(
            name="axb", model=churn, endpoint="https://w.internal/"
        ),
    }


def test_deployments_are_found_by_model_name_own_name_and_endpoint(found, deployments):
    names = set(deployments)
    assert found("deployment", "fraud", names, api="deployments") == {
        "payments-live",
        "fraud-shadow",
        "edge",
    }
    # Case does not matter, and the term's surrounding spaces are dropped.
    assert found("deployment", "  FRAUD-sc ", names) == {"payments-live"}
    assert found("deployment", "card payments", names) == {"edge"}
    # Every other deployment runs churn-predictor.
    assert found("deployment", "churn", names) == names - {"payments-live"}
    assert found("deployment", "zzzqqq", names, api="deployments") == set()


def test_terms_of_one_or_two_characters_are_searched(found, deployments):
    names = set(deployments)
    # "fr": fraud-scorer's deployment (model name), fraud-shadow and edge ("FraudCheck").
    assert found("deployment", "fr", names) == {"payments-live", "fraud-shadow", "edge"}
    assert found("deployment", "b", names) == {"churn-batch", "a_b", "axb"}
    assert found("deployment", "qj", names) == set()


def test_percent_and_underscore_are_literal(found, deployments):
    names = set(deployments)
    assert found("deployment", "%", names, api="deployments") == {"100% safe"}
    assert found("deployment", "0% s", names) == {"100% safe"}
    assert found("deployment", "_", names) == {"a_b"}
    assert found("deployment", "a_b", names) == {"a_b"}
    # A backslash is a character too, not an escape.
    assert found("deployment", "\\", names) == set()


def test_an_empty_term_lists_everything(found, deployments):
    assert found("deployment", "   ", set(deployments)) == set(deployments)


def test_identities_are_found_by_name_external_id_and_vendor(found):
    IdentityFactory(name="ci-deployer", external_id="github:token:77", vendor="GitHub")
    IdentityFactory(name="svc_fraud", external_id="aws:role:1", provider="aws")
    IdentityFactory(name="svc-fraud", external_id="aws:role:2", provider="aws")
    names = {"ci-deployer", "svc_fraud", "svc-fraud"}
    assert found("identity", "github", names, api="identities") == {"ci-deployer"}
    assert found("identity", "ROLE:2", names) == {"svc-fraud"}
    assert found("identity", "c_f", names) == {"svc_fraud"}
    assert found("identity", "zzzqqq", names, api="identities") == set()


def test_every_other_list_searches_with_the_same_helper(found):
    scorer = AIModelFactory(name="fraud-scorer", description="Scores card payments")
    AIModelFactory(name="churn", description="Predicts churn")
    ModelVersionFactory(model=scorer, version="7.1.0")
    ModelVersionFactory(model=AIModelFactory(name="other"), version="7.2.0")
    SystemFactory(name="checkout", business_purpose="Takes card payments")
    SystemFactory(name="crm", business_purpose="Customer records")
    TeamFactory(name="Payments", slug="payments", description="Cards")
    TeamFactory(name="Risk", slug="risk")

    assert found("aimodel", "card pay", {"fraud-scorer", "churn"}) == {"fraud-scorer"}
    assert found("system", "card", {"checkout", "crm"}) == {"checkout"}
    assert found("team", "cards", {"Payments", "Risk"}) == {"Payments"}
    # A version is found by its model's name, searched in the model's own table.
    versions = m.ModelVersion.objects.filter(
        querysets.search_q(m.ModelVersion, ("version", "model__name"), "FRAUD")
    )
    assert {v.version for v in versions} == {"7.1.0"}
    versions = m.ModelVersion.objects.filter(
        querysets.search_q(m.ModelVersion, ("version", "model__name"), "7.")
    )
    assert {v.version for v in versions} == {"7.1.0", "7.2.0"}


def test_a_term_many_related_rows_match_is_searched_by_subquery(monkeypatch):
    """Past SEARCH_RELATED_IDS matching models, the model ids stay a subquery: same rows."""
    a, b = AIModelFactory(name="fraud-a"), AIModelFactory(name="fraud-b")
    expected = {
        DeploymentFactory(name="one", model=a).pk,
        DeploymentFactory(name="two", model=b).pk,
        DeploymentFactory(name="fraud-own", model=AIModelFactory(name="x")).pk,
    }
    DeploymentFactory(name="other", model=AIModelFactory(name="y"))
    fields = ("name", "model__name")
    for cap in (querysets.SEARCH_RELATED_IDS, 1):
        monkeypatch.setattr(querysets, "SEARCH_RELATED_IDS", cap)
        found = m.Deployment.objects.filter(
            querysets.search_q(m.Deployment, fields, "FRAUD")
        )
        assert set(found.values_list("pk", flat=True)) == expected
        assert (" IN (SELECT " in str(found.query)) == (cap == 1)


def test_related_ids_go_as_one_array_parameter_with_the_rows_of_an_in_list():
    """`AnyOf` (a search's matching related ids) selects what `__in` selects; on
    PostgreSQL the whole list is one parameter, `= ANY(%s::bigint[])`, and an empty list
    selects nothing."""
    models = [AIModelFactory(name=f"m{n}") for n in range(4)]
    for model in models:
        DeploymentFactory(model=model)
    wanted = [models[0].pk, models[2].pk]
    any_of = m.Deployment.objects.filter(querysets.AnyOf(F("model_id"), wanted))
    in_list = m.Deployment.objects.filter(model_id__in=wanted)
    assert set(any_of.values_list("pk", flat=True)) == set(
        in_list.values_list("pk", flat=True)
    )
    assert any_of.count() == 2
    assert not m.Deployment.objects.filter(querysets.AnyOf(F("model_id"), [])).exists()
    with CaptureQueriesContext(connection) as queries:
        list(any_of.values_list("pk", flat=True))
    sql = queries.captured_queries[-1]["sql"]
    if connection.vendor == "postgresql":
        assert "= ANY(" in sql and " IN (" not in sql
    else:
        assert " IN (" in sql


def test_search_across_anything_but_a_forward_foreign_key_is_refused():
    with pytest.raises(ValueError, match="forward foreign key"):
        querysets.search_q(m.AIModel, ("deployments__name",), "x")


# ---------------------------------------------------------------------------
# PostgreSQL: the plans use the trigram indexes
# ---------------------------------------------------------------------------
def _queries(client, url: str) -> tuple[str, list[str]]:
    """The page's list query (the longest one paged by LIMIT), and every query that
    searches with LIKE."""
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    sqls = [q["sql"] for q in captured.captured_queries]
    paged = [sql for sql in sqls if re.search(r"LIMIT \d+$", sql)]
    assert paged, sqls
    return max(paged, key=len), [sql for sql in sqls if " LIKE " in sql]


def _plan(sql: str, params=None) -> str:
    """The plan PostgreSQL picks when it may not read a table whole nor walk an index in
    order: only bitmap scans are left cheap, so a search branch without a usable index
    shows up as a sequential scan. (A test table is too small for the planner to prefer
    an index on its own.)"""
    settings = ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan")
    with connection.cursor() as cursor:
        for setting in settings:
            cursor.execute(f"SET {setting} = off")
        try:
            cursor.execute("EXPLAIN " + sql, params)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            for setting in settings:
                cursor.execute(f"RESET {setting}")


@pytest.mark.services
def test_deployment_and_identity_searches_use_the_trigram_indexes(
    client, admin_user, deployments
):
    assert connection.vendor == "postgresql"
    IdentityFactory(name="svc-fraud", external_id="aws:role:2")
    client.force_login(admin_user)

    main, searching = _queries(
        client, reverse("inventory:deployment_list") + "?q=fraud"
    )
    plan = _plan(main)
    assert "Bitmap Index Scan on deployment_search_trgm" in plan, plan
    # The matching models' ids, through deployment.model_id beside the other branches.
    assert re.search(r"Index Cond: \(model_id = ", plan), plan
    assert "Seq Scan on inventory_deployment" not in plan, plan
    # The model's name searched first, in the model's own index, in a query of its own.
    (models,) = [sql for sql in searching if sql != main]
    plan = _plan(models)
    assert "Bitmap Index Scan on aimodel_search_trgm" in plan, plan
    assert "Seq Scan" not in plan, plan

    main, _ = _queries(client, reverse("inventory:identity_list") + "?q=fraud")
    plan = _plan(main)
    assert "Bitmap Index Scan on nhi_search_trgm" in plan, plan
    assert "Seq Scan on inventory_nonhumanidentity" not in plan, plan


@pytest.mark.services
def test_every_searched_column_has_a_trigram_index(client, admin_user):
    """A column added to a list's search_fields without an index would scan. (The sources
    list, a few dozen rows, is the one list left to scan.)"""
    from governance.filters import AuditEventFilter
    from inventory import filters
    from sources.filters import DeploymentEventFilter, SyncRunFilter

    assert connection.vendor == "postgresql"
    for filterset in (
        filters.TeamFilter,
        filters.AIModelFilter,
        filters.ModelVersionFilter,
        filters.SystemFilter,
        filters.DeploymentFilter,
        filters.IdentityFilter,
        SyncRunFilter,
        DeploymentEventFilter,
        AuditEventFilter,
    ):
        model = filterset._meta.model
        sql, params = (
            model._default_manager.filter(
                querysets.search_q(model, filterset.search_fields, "fraud")
            )
            .order_by()
            .values("pk")
            .query.sql_with_params()
        )
        plan = _plan(sql, params)
        assert "Seq Scan" not in plan, (filterset.__name__, plan)
        assert "_search_trgm" in plan, (filterset.__name__, plan)


def test_the_search_folds_with_the_function_its_indexes_hold():
    """On PostgreSQL a term of 3 characters or more is `runproof_fold(column) LIKE …` on
    both sides (two a field), the expression of the trigram indexes (migration inventory
    0021), whose COST keeps the planner off a sequential scan; SQLite and shorter terms
    keep Django's icontains."""
    fields = ("name", "external_id")
    sql = str(
        m.NonHumanIdentity.objects.filter(
            querysets.search_q(m.NonHumanIdentity, fields, "fraud")
        ).query
    )
    short = str(
        m.NonHumanIdentity.objects.filter(
            querysets.search_q(m.NonHumanIdentity, fields, "fr")
        ).query
    )
    assert querysets.SEARCH_FOLD not in short
    if connection.vendor == "postgresql":
        assert sql.count(f"{querysets.SEARCH_FOLD}(") == 4, sql
        assert "UPPER(" not in sql, sql
    else:
        assert querysets.SEARCH_FOLD not in sql
        assert sql.count(" LIKE ") == 2, sql


@pytest.mark.services
def test_a_count_the_planner_is_free_to_plan_uses_the_trigram_index():
    """The page's capped count, planned with every plan allowed, over a table big enough
    and analysed, where a third of the rows match: reading it whole looks cheap to a
    planner that prices UPPER() at one operator (`UPPER(…) LIKE` on an UPPER() index
    built the same way plans this as a Seq Scan, 983 against 992), while the fold's COST
    makes the bitmap scan of the trigram index the cheaper plan by twice.

    The index is rebuilt first, as migration 0021 leaves it on an existing database: one
    built empty (the test database's) and filled since keeps every row in its pending list
    and no statistics until a VACUUM, which no transaction may run."""
    from inventory.pagination import capped_count

    assert connection.vendor == "postgresql"
    team = TeamFactory()
    # One in three matches: enough for a sequential scan to look worth it.
    m.NonHumanIdentity.objects.bulk_create(
        [
            m.NonHumanIdentity(
                name=f"svc-fraud-{n}" if n % 3 == 0 else f"svc-{n}",
                external_id=f"aws:role:{n}",
                provider="aws",
                kind=m.NonHumanIdentity.Kind.SERVICE_ACCOUNT,
                team=team,
                issued_at=timezone.now(),
            )
            for n in range(6000)
        ],
        batch_size=1000,
    )
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending trigger events
        cursor.execute("REINDEX INDEX nhi_search_trgm")
        cursor.execute("ANALYZE inventory_nonhumanidentity")
    fields = ("name", "external_id", "vendor", "provider")
    matching = m.NonHumanIdentity.objects.filter(
        querysets.search_q(m.NonHumanIdentity, fields, "fraud")
    )
    count = capped_count(matching)
    sql, params = count.sql, count.params
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute(sql, params)
        assert cursor.fetchone()[0] == 2000
    assert "Bitmap Index Scan on nhi_search_trgm" in plan, plan
    assert "Seq Scan on inventory_nonhumanidentity" not in plan, plan
