"""The kept counts (inventory.summary) equal a fresh count with the rules, for every
headline and chart, in every scope, after writes through each path: edit forms, services,
a sync, an OTLP push, deletes (with their cascades), a policy change, and time passing.

`dashboard_figures` reads the summary; `dashboard_figures_counted` counts the base tables
with the rules, as the dashboard did before. Both run on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance import selectors
from inventory import models as m
from inventory import services, summary
from inventory.roles import Role
from sources import models as sm
from sources.connectors import CONNECTORS
from sources.sync import runner
from sources.sync.base import Connector, FetchContext, Record
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
    TeamFactory,
    UserFactory,
)
from tests.otlp.spans import chat_spans, protobuf_body

pytestmark = pytest.mark.django_db

D, NHI, L = m.Deployment, m.NonHumanIdentity, m.AIModel.Lifecycle
NOW = timezone.now()


def assert_exact(users, now=None) -> None:
    """Every figure equal to the fresh count, for each user; and the nightly check finds
    nothing to report."""
    now = now or timezone.now()
    for user in users:
        kept = selectors.dashboard_figures(user=user, now=now)
        counted = selectors.dashboard_figures_counted(user=user, now=now)
        differ = {k: (kept[k], counted[k]) for k in kept if kept[k] != counted.get(k)}
        assert kept == counted, (user.username, differ)
    assert summary.rebuild(fix=False) == []
    assert not m.SummaryDirty.objects.exists()


def _moments(rng: random.Random, now: datetime) -> datetime | None:
    """Times around every cutoff the dashboard uses, and around their days' midnights."""
    if rng.random() < 0.1:
        return None
    days = rng.choice(
        [0, 1, 2, 29, 30, 31, 89, 90, 91, 179, 180, 181, 364, 365, 366, 800]
    )
    at = now - timedelta(days=days)
    if rng.random() < 0.3:  # the cutoff's own day, before and after the cutoff's time
        midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight + timedelta(seconds=rng.choice([0, 1, -1, 3600]))
    return at + timedelta(microseconds=rng.choice([-1, 0, 1, 0, 3_600_000_000]))


def _hours_ago(rng: random.Random, now: datetime) -> datetime:
    return now - timedelta(hours=rng.choice([0, 1, 23, 24, 25, 47, 48, 49, 24 * 30]))


@pytest.fixture
def people(team_a, team_b):
    team_c = TeamFactory(name="Payments", slug="payments")
    olivia = UserFactory(username="olivia", role=Role.OWNER, teams=[team_a])
    oscar = UserFactory(username="oscar", role=Role.OWNER, teams=[team_b, team_c])
    pat = UserFactory(username="pat", role=Role.OWNER, teams=[])  # owns, in no team
    admin = UserFactory(username="ada", role=Role.ADMIN, is_staff=True)
    return {
        "teams": [team_a, team_b, team_c, None],
        "people": [olivia, oscar, pat, None],
        "admin": admin,
        "readers": [admin, olivia, oscar, pat],
    }


def _estate(rng: random.Random, people: dict, now: datetime) -> dict:
    teams, persons = people["teams"], people["people"]
    models, versions = [], []
    for i in range(8):
        model = AIModelFactory(
            name=f"model-{i}",
            team=rng.choice(teams),
            owner=rng.choice(persons),
            lifecycle=rng.choice(L.values),
        )
        mine = [ModelVersionFactory(model=model, version=str(v)) for v in range(3)]
        if rng.random() < 0.6:
            model.baseline_version = mine[0]
            model.save(update_fields=["baseline_version"])
        models.append(model)
        versions += mine
    deployments = []
    for i in range(25):
        model = rng.choice(models)
        own = [v for v in versions if v.model_id == model.pk]
        observed = rng.choice([*own, None])
        deployments.append(
            DeploymentFactory(
                name=f"dep-{i}",
                model=model,
                team=rng.choice(teams),
                owner=rng.choice(persons),
                environment=rng.choice(D.Environment.values),
                exposure=rng.choice(D.Exposure.values),
                status=rng.choice([D.Status.ACTIVE] * 3 + D.Status.values),
                observed_version=observed,
                observed_version_label="" if observed or rng.random() < 0.5 else "99",
                approved_version=rng.choice([None, None, *own]),
                last_seen_at=_hours_ago(rng, now),
            )
        )
    identities = []
    for i in range(40):
        issued = _moments(rng, now)
        identities.append(
            IdentityFactory(
                name=f"nhi-{i}",
                team=rng.choice(teams),
                owner=rng.choice(persons),
                status=rng.choice([NHI.Status.ACTIVE] * 3 + NHI.Status.values),
                issued_at=issued,
                rotated_at=_moments(rng, now) if rng.random() < 0.5 else None,
                last_used_at=_moments(rng, now) if rng.random() < 0.7 else None,
                expires_at=(now + timedelta(days=rng.choice([-1, 0, 1])))
                + timedelta(seconds=rng.choice([-1, 1, 0]))
                if rng.random() < 0.5
                else None,
                model=rng.choice([None, *models]),
                deployments=rng.sample(deployments, rng.choice([0, 1, 2])),
            )
        )
    return {
        "models": models,
        "versions": versions,
        "deployments": deployments,
        "identities": identities,
    }


class TwoTablesConnector(Connector):
    """A test double syncing deployments and identities from its settings."""

    kind = "test_two_tables"
    label = "Test two tables"
    owns = (m.Deployment, m.NonHumanIdentity)

    def fetch(self, ctx: FetchContext) -> Iterator[Record]:
        for item in ctx.settings.get("records", []):
            yield Record(item["ext"], item)

    @staticmethod
    def _fields(record) -> dict:
        return {
            k: datetime.fromisoformat(v) if k.endswith("_at") else v
            for k, v in record.payload["fields"].items()
        }

    def apply(self, batch, ctx) -> None:
        deps = [
            (r.external_id, self._fields(r)) for r in batch if r.payload["kind"] == "d"
        ]
        ids = ctx.upsert(m.Deployment, deps)
        nhis = [
            (r.external_id, self._fields(r)) for r in batch if r.payload["kind"] == "i"
        ]
        nhi_ids = ctx.upsert(m.NonHumanIdentity, nhis)
        ctx.bind(
            nhi_ids.values(),
            {
                nhi_ids[r.external_id]: {
                    ids[e] for e in r.payload.get("bind", []) if e in ids
                }
                for r in batch
                if r.payload["kind"] == "i" and r.external_id in nhi_ids
            },
        )


def _sync_records(
    rng: random.Random, estate: dict, people: dict, now: datetime
) -> list:
    team_ids = [t.pk if t else None for t in people["teams"]]
    person_ids = [p.pk if p else None for p in people["people"]]
    records = []
    for i in range(6):
        model = rng.choice(estate["models"])
        records.append(
            {
                "ext": f"d{i}",
                "kind": "d",
                "fields": {
                    "name": f"synced-{i}",
                    "model_id": model.pk,
                    "team_id": rng.choice(team_ids),
                    "owner_id": rng.choice(person_ids),
                    "exposure": rng.choice(D.Exposure.values),
                    "environment": rng.choice(D.Environment.values),
                    "last_seen_at": _hours_ago(rng, now).isoformat(),
                },
            }
        )
    for i in range(6):
        records.append(
            {
                "ext": f"i{i}",
                "kind": "i",
                "fields": {
                    "name": f"synced-nhi-{i}",
                    "team_id": rng.choice(team_ids),
                    "owner_id": rng.choice(person_ids),
                    "issued_at": (_moments(rng, now) or now).isoformat(),
                    "last_used_at": (_moments(rng, now) or now).isoformat(),
                },
                "bind": rng.sample([f"d{j}" for j in range(6)], 2),
            }
        )
    return records


@pytest.fixture
def two_tables(monkeypatch):
    monkeypatch.setitem(CONNECTORS, "test_two_tables", f"{__name__}.TwoTablesConnector")


def _sync(source, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        run, created = runner.request_sync(source=source, trigger="command")
    run.refresh_from_db()
    errors = list(sm.SyncError.objects.filter(run=run).values_list("reason", flat=True))
    assert run.status == sm.SyncRun.Status.SUCCEEDED, (run.status, run.__dict__, errors)


def _form_data(form) -> dict:
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None:
            continue
        if isinstance(value, list | tuple) and value and hasattr(value[0], "pk"):
            value = [v.pk for v in value]
        elif hasattr(value, "pk"):
            value = value.pk
        elif isinstance(value, dict | list):
            import json

            value = json.dumps(value)
        data[name] = value
    return data


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kept_counts_equal_fresh_counts_after_every_kind_of_write(
    seed, people, client, two_tables, django_capture_on_commit_callbacks
):
    rng = random.Random(seed)
    now = timezone.now()
    readers = people["readers"]
    estate = _estate(rng, people, now)
    assert_exact(readers)

    # Edit forms (ORM saves through services.object_update): team, owner, exposure, bindings.
    admin = people["admin"]
    client.force_login(admin)
    deployment = rng.choice(estate["deployments"])
    url = reverse("inventory:deployment_edit", args=[deployment.pk])
    data = {
        **_form_data(client.get(url).context["form"]),
        "team": people["teams"][1].pk,
        "owner": "",
        "exposure": D.Exposure.EXTERNAL,
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.context["form"].errors
    identity = rng.choice(estate["identities"])
    url = reverse("inventory:identity_edit", args=[identity.pk])
    data = {
        **_form_data(client.get(url).context["form"]),
        "owner": people["people"][0].pk,
        "deployments": [d.pk for d in rng.sample(estate["deployments"], 3)],
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.context["form"].errors
    assert_exact(readers)

    # Services: retire a model (drift and retired-model counts of other teams move), move a
    # baseline, pin a deployment, withdraw one, revoke a token.
    for model in estate["models"]:
        model.refresh_from_db()
        targets = services.lifecycle_targets(model.lifecycle)
        if L.RETIRED in targets:
            services.aimodel_set_lifecycle(
                actor=admin, model=model, lifecycle=L.RETIRED
            )
            break
    assert_exact(readers)
    for model in estate["models"]:
        model.refresh_from_db()
        approved = [v for v in estate["versions"] if v.model_id == model.pk]
        version = approved[-1]
        m.ModelVersion.objects.filter(pk=version.pk).update(approval="approved")
        version.refresh_from_db()
        if model.lifecycle == L.RETIRED:
            continue  # a retired model takes no new baseline
        services.aimodel_set_baseline(actor=admin, model=model, version=version)
        break
    dep = rng.choice(estate["deployments"])
    dep.refresh_from_db()
    services.deployment_pin_baseline(actor=admin, deployment=dep, version=None)
    for dep in estate["deployments"]:
        dep.refresh_from_db()
        if D.Status.WITHDRAWN in services.deployment_status_targets(dep.status):
            services.deployment_set_status(
                actor=admin, deployment=dep, status=D.Status.WITHDRAWN
            )
            break
    token, raw = services.api_token_issue(actor=None, name="t", scopes=["read"], days=1)
    assert_exact(readers)
    assert services.api_token_authenticate(raw) is not None  # touches last used
    services.api_token_revoke(actor=None, token=token, actor_label="test")
    assert_exact(readers)

    # A sync that creates, then moves rows between teams and rebinds.
    source = sm.DataSource.objects.create(
        name="Two",
        kind="test_two_tables",
        config={"records": _sync_records(rng, estate, people, now)},
    )
    _sync(source, django_capture_on_commit_callbacks)
    assert_exact(readers)
    source.config = {"records": _sync_records(rng, estate, people, now)}
    source.save()
    _sync(source, django_capture_on_commit_callbacks)
    assert_exact(readers)

    # An OTLP push: creates a deployment and a model, moves last seen.
    _, telemetry = services.api_token_issue(
        actor=None, name="collector", scopes=["telemetry"], days=1
    )
    start = now - timedelta(hours=rng.choice([1, 30]))
    for minute in (0, 1):
        response = client.generic(
            "POST",
            "/v1/traces",
            data=protobuf_body(chat_spans(start + timedelta(minutes=minute))),
            content_type="application/x-protobuf",
            headers={"Authorization": f"Bearer {telemetry}"},
        )
        assert response.status_code == 200
    assert_exact(readers)

    # Deletes and their cascades: a deployment (bindings go), an identity, a baseline
    # version (SET NULL on models and deployments), a person (SET NULL owner).
    client.post(
        reverse("inventory:deployment_delete", args=[estate["deployments"][0].pk])
    )
    assert not D.objects.filter(pk=estate["deployments"][0].pk).exists()
    estate["identities"][0].delete()
    baseline = m.AIModel.objects.filter(baseline_version__isnull=False).first()
    if baseline:
        baseline.baseline_version.delete()
    people["people"][2].delete()
    readers = readers[:3]
    assert_exact(readers)

    # Policy: a new number moves the cutoffs, nothing needs recounting.
    services.policy_update(
        actor=admin,
        unused_after_days=30,
        unrotated_after_days=180,
        silent_after_hours=48,
    )
    assert_exact(readers)
    # Time passing: the buckets stay, the cutoffs move.
    for later in (timedelta(hours=5), timedelta(days=1), timedelta(days=31)):
        assert_exact(readers, now=now + later)


def test_boundary_day_counts_exactly_around_the_cutoff(people):
    """Identities used just before, at and after the cutoff, and at its day's midnight."""
    policy = services.policy_update(actor=people["admin"], unused_after_days=90)
    now = datetime(2026, 6, 15, 13, 30, 15, 500, tzinfo=UTC)
    cutoff = now - timedelta(days=policy.unused_after_days)
    midnight = cutoff.replace(hour=0, minute=0, second=0, microsecond=0)
    team = people["teams"][0]
    for at in (
        cutoff - timedelta(microseconds=1),
        cutoff,
        cutoff + timedelta(microseconds=1),
        midnight,
        midnight - timedelta(microseconds=1),
        midnight + timedelta(days=1),
    ):
        IdentityFactory(team=team, issued_at=at - timedelta(days=1), last_used_at=at)
    admin = people["admin"]
    figures = selectors.dashboard_figures(user=admin, now=now)
    # before the cutoff: cutoff-1µs, midnight, midnight-1µs
    assert figures["identities"]["unused"] == 3
    assert figures == selectors.dashboard_figures_counted(user=admin, now=now)


def test_a_model_retired_elsewhere_moves_other_teams_counts(people):
    team_a, team_b = people["teams"][:2]
    model = AIModelFactory(team=team_a, lifecycle=L.ACTIVE)
    dep = DeploymentFactory(model=model, team=team_b)
    IdentityFactory(team=team_b, deployments=[dep])
    oscar = people["people"][1]  # team B only
    assert selectors.dashboard_figures(user=oscar)["identities"]["retired_model"] == 0
    services.aimodel_set_lifecycle(
        actor=people["admin"], model=model, lifecycle=L.DEPRECATED
    )
    services.aimodel_set_lifecycle(
        actor=people["admin"], model=model, lifecycle=L.RETIRED
    )
    assert selectors.dashboard_figures(user=oscar)["identities"]["retired_model"] == 1
    assert_exact(people["readers"])


def test_rebuild_reports_a_wrong_count_and_fixes_it(people):
    IdentityFactory(team=people["teams"][0])
    summary.refresh_dirty()
    row = m.SummaryCount.objects.filter(
        metric="i.status.active", team_key__gt=0
    ).first()
    m.SummaryCount.objects.filter(pk=row.pk).update(n=row.n + 5)
    found = summary.rebuild()
    assert found == [
        f"team {row.team_key} person {row.owner_key} i.status.active 0001-01-01: "
        f"stored {row.n + 5}, counted {row.n}"
    ]
    assert summary.rebuild(fix=False) == []
    m.SummaryCount.objects.filter(
        team_key=summary.ALL, metric="i.status.active"
    ).update(n=0)
    assert len(summary.rebuild()) == 1  # the all-teams row
    assert summary.rebuild(fix=False) == []


def test_the_migration_mark_counts_everything_on_first_read(people):
    IdentityFactory(team=people["teams"][0])
    summary.refresh_dirty()
    m.SummaryCount.objects.all().delete()  # as after `migrate` on an existing database
    m.SummaryDirty.objects.bulk_create(
        [m.SummaryDirty(team_key=t.pk if t else 0) for t in people["teams"]]
    )
    assert_exact(people["readers"])


def test_a_teams_recount_costs_the_same_queries_whatever_its_size(people):
    team = people["teams"][0]

    def grow(n: int) -> None:
        for _ in range(n):
            dep = DeploymentFactory(model=AIModelFactory(team=team), team=team)
            IdentityFactory(team=team, deployments=[dep], issued_at=NOW)
        summary.refresh_dirty()

    grow(2)
    summary.mark_dirty([team.pk])
    with CaptureQueriesContext(connection) as few:
        summary.refresh_dirty()
    grow(20)
    summary.mark_dirty([team.pk])
    with CaptureQueriesContext(connection) as many:
        summary.refresh_dirty()
    assert len(many) == len(few)


def test_a_seeded_demo_is_counted(people):
    """The demo seeder bulk-inserts (no signals): it marks and counts every team."""
    from devtools import demo

    demo.seed_demo(seed=5, models=30, deployments=60, identities=120)
    assert m.SummaryCount.objects.filter(team_key=summary.ALL).exists()
    assert_exact(people["readers"])


def test_a_small_write_is_recounted_right_after_its_commit(
    people, django_capture_on_commit_callbacks
):
    team = people["teams"][0]
    with django_capture_on_commit_callbacks(execute=True):
        identity = IdentityFactory(team=team)
        identity.save()  # a second save of the same team queues a second callback
    assert not m.SummaryDirty.objects.filter(team_key=team.pk).exists()
    assert (
        m.SummaryCount.objects.get(
            team_key=team.pk, owner_key=0, metric="i.status.active", day=summary.NO_DAY
        ).n
        == 1
    )
    assert summary.rebuild(fix=False) == []


def test_delete_in_bulk_marks_once_and_stays_exact(
    admin_user, django_assert_max_num_queries
):
    """Deleting many rows marks their teams set-based, not a lookup per row, and the
    counts stay exact."""
    teams = [TeamFactory(), TeamFactory()]
    model = AIModelFactory(team=teams[0])
    for i in range(30):
        DeploymentFactory(model=model, team=teams[i % 2])
    summary.refresh_dirty()
    doomed = D.objects.filter(model=model)
    with django_assert_max_num_queries(
        30
    ):  # a per-row pre_delete costs 3+ queries a row
        assert summary.delete_in_bulk(doomed) >= 30
    assert m.SummaryDirty.objects.exists()
    assert_exact([admin_user])


def test_batched_registry_moves_mark_the_teams_they_change(admin_user):
    """The registry's batched services (bulk UPDATEs, no signals) mark the teams whose
    counts a lifecycle or baseline move changes: another team's deployments and the
    identities bound to them."""
    from audit.actors import Actor

    home, other = TeamFactory(), TeamFactory()
    model = AIModelFactory(team=home, lifecycle=L.ACTIVE)
    old, new = (
        ModelVersionFactory(model=model, approval="approved"),
        ModelVersionFactory(model=model, approval="approved"),
    )
    model.baseline_version = old
    model.save()
    dep = DeploymentFactory(model=model, team=other, observed_version=old)
    IdentityFactory(team=other, deployments=[dep])
    summary.refresh_dirty()
    assert_exact([admin_user])
    registry = Actor.source("mlflow:1")
    assert (
        services.aimodels_set_baselines(actor=registry, targets={model.pk: new.pk})
        == {}
    )
    assert_exact([admin_user])  # drift moved in the other team
    refused = services.aimodels_set_lifecycle(
        actor=registry, model_ids=[model.pk], lifecycle=L.RETIRED
    )
    assert model.pk not in refused
    assert_exact(
        [admin_user]
    )  # the bound identity now counts as bound to a retired one
