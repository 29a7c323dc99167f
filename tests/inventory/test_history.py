"""History of governed fields by hand, cascades that are audited, the change queue and
the retention of history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.chain import audit_chain_verify
from audit.models import AuditEvent
from inventory import history, services
from inventory import models as m
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
)

pytestmark = pytest.mark.django_db


# ---------------------------------------------------------------------------
# Hand edits
# ---------------------------------------------------------------------------
def test_a_hand_edit_of_governed_fields_is_history_with_the_person(owner, risk, team_a):
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a), name="old")
    deployment.endpoint = "https://moved.internal"
    deployment.name = "renamed"  # not governed: audited, not history
    services.object_update(actor=owner, instance=deployment)
    # The status moves only by the committee's decision, which is history too.
    services.deployment_set_status(
        actor=risk, deployment=deployment, status=m.Deployment.Status.QUARANTINED
    )
    rows = {r.field: r for r in m.FieldChange.objects.all()}
    assert set(rows) == {"status", "endpoint"}
    assert rows["endpoint"].after == "https://moved.internal"
    assert rows["endpoint"].actor_label == owner.username
    assert (rows["status"].before, rows["status"].after) == ("active", "quarantined")
    assert rows["status"].actor_kind == "person"
    assert rows["status"].actor_label == risk.username
    assert rows["status"].source == "" and rows["status"].run_id is None
    assert m.ChangeNotice.objects.filter(object_id=deployment.pk).count() == 2


def test_binding_by_hand_is_history_on_both_sides(owner, team_a):
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a))
    identity = IdentityFactory(team=team_a)
    services.identity_bind(actor=owner, identity=identity, deployment=deployment)
    services.identity_unbind(actor=owner, identity=identity, deployment=deployment)
    rows = [
        (r.object_type, r.field, r.before, r.after)
        for r in m.FieldChange.objects.order_by("id")
    ]
    assert rows == [
        ("inventory.nonhumanidentity", "deployments", [], [deployment.pk]),
        ("inventory.deployment", "identities", [], [identity.pk]),
        ("inventory.nonhumanidentity", "deployments", [deployment.pk], []),
        ("inventory.deployment", "identities", [identity.pk], []),
    ]


def test_adding_and_removing_a_dependency_is_history_of_the_downstream(owner, team_a):
    up = DeploymentFactory(model=AIModelFactory(team=team_a))
    down = DeploymentFactory(model=AIModelFactory(team=team_a))
    edge = services.object_create(
        actor=owner, instance=m.Dependency(upstream=up, downstream=down)
    )
    services.dependency_remove(actor=owner, dependency=edge)
    rows = [
        (r.object_id, r.field, r.before, r.after)
        for r in m.FieldChange.objects.order_by("id")
    ]
    assert rows == [
        (down.pk, "dependencies", [], [up.pk]),
        (down.pk, "dependencies", [up.pk], []),
    ]


def test_an_identity_edit_records_status_rotation_and_expiry(owner, team_a):
    identity = IdentityFactory(team=team_a)
    now = timezone.now().replace(microsecond=0)
    identity.status = m.NonHumanIdentity.Status.REVOKED
    identity.rotated_at = now
    identity.expires_at = now + timedelta(days=90)
    services.object_update(actor=owner, instance=identity)
    rows = {r.field: r.after for r in m.FieldChange.objects.all()}
    assert rows == {
        "status": "revoked",
        "rotated_at": now.isoformat(),
        "expires_at": (now + timedelta(days=90)).isoformat(),
    }


# ---------------------------------------------------------------------------
# Cascades: every governed row a delete removes or changes has its event
# ---------------------------------------------------------------------------
def test_deleting_a_model_audits_each_version_it_removes(admin_user):
    model = AIModelFactory()
    versions = [ModelVersionFactory(model=model, version=str(i)) for i in range(3)]
    model_id, version_ids = model.pk, sorted(v.pk for v in versions)
    services.object_delete(actor=admin_user, instance=model)
    assert not m.ModelVersion.objects.exists()
    removed = AuditEvent.objects.filter(action="modelversion.cascade_delete")
    assert sorted(int(e.object_id) for e in removed) == version_ids
    assert {e.before["deleted_with"]["id"] for e in removed} == {model_id}
    assert AuditEvent.objects.filter(action="aimodel.delete").count() == 1
    assert audit_chain_verify().ok


def test_deleting_a_deployment_audits_its_dependencies_and_bindings(admin_user):
    gone, other = DeploymentFactory(), DeploymentFactory()
    edge = m.Dependency.objects.create(upstream=gone, downstream=other)
    identity = IdentityFactory()
    identity.deployments.add(gone, other)
    m.UsageHour.objects.create(deployment=gone, hour=timezone.now(), calls=1)
    gone_id = gone.pk
    services.object_delete(actor=admin_user, instance=gone)

    dep_event = AuditEvent.objects.get(action="dependency.cascade_delete")
    assert dep_event.object_id == str(edge.pk)
    unbind = AuditEvent.objects.get(action="nonhumanidentity.unbind")
    assert unbind.object_id == str(identity.pk)
    assert (unbind.before["deployments"], unbind.after["deployments"]) == (
        sorted([gone_id, other.pk]),
        [other.pk],
    )
    main = AuditEvent.objects.get(action="deployment.delete")
    assert main.before["cascade"] == {"usage_hours": 1}
    fields = {
        (r.object_type, r.object_id, r.field): (r.before, r.after)
        for r in m.FieldChange.objects.all()
    }
    assert fields == {
        ("inventory.nonhumanidentity", identity.pk, "deployments"): (
            sorted([gone_id, other.pk]),
            [other.pk],
        ),
        ("inventory.deployment", other.pk, "dependencies"): ([gone_id], []),
    }


def test_deleting_a_version_audits_the_deployments_that_pointed_at_it(admin_user):
    version = ModelVersionFactory()
    running = DeploymentFactory(model=version.model, observed_version=version)
    pinned = DeploymentFactory(model=version.model, approved_version=version)
    services.object_delete(actor=admin_user, instance=version)
    cleared = {
        (int(e.object_id), next(iter(e.before)))
        for e in AuditEvent.objects.filter(action="deployment.cascade_update")
    }
    assert cleared == {
        (running.pk, "observed_version_id"),
        (pinned.pk, "approved_version_id"),
    }
    row = m.FieldChange.objects.get()
    assert (row.object_id, row.field) == (running.pk, "observed_version")
    assert row.after["observed_version_id"] is None


def test_a_protected_delete_writes_nothing(admin_user):
    from django.db.models import ProtectedError

    deployment = DeploymentFactory()
    before = AuditEvent.objects.count()
    with pytest.raises(ProtectedError):
        services.object_delete(actor=admin_user, instance=deployment.model)
    assert AuditEvent.objects.count() == before
    assert m.AIModel.objects.filter(pk=deployment.model_id).exists()


# ---------------------------------------------------------------------------
# The change queue
# ---------------------------------------------------------------------------
def test_a_claim_is_idempotent_and_a_dead_consumers_claim_expires():
    history.announce(
        objects=[("inventory.deployment", 1), ("inventory.deployment", 2)],
        source="kubernetes:1",
        run_id=5,
    )
    first = history.change_notices_claim(consumer="governance")
    assert [(n.object_id, n.run_id) for n in first] == [(1, 5), (2, 5)]
    assert history.change_notices_claim(consumer="governance") == []
    assert history.change_notices_claim(consumer="other") == []

    # Its consumer died: after the lease another consumer gets the same rows.
    m.ChangeNotice.objects.update(claimed_at=timezone.now() - timedelta(hours=1))
    second = history.change_notices_claim(consumer="other")
    assert [n.pk for n in second] == [n.pk for n in first]
    assert history.change_notices_consume(notices=first) == 0, "its claim was lost"
    assert history.change_notices_consume(notices=second) == 2
    assert history.change_notices_consume(notices=second) == 0
    m.ChangeNotice.objects.update(claimed_at=timezone.now() - timedelta(hours=1))
    assert history.change_notices_claim(consumer="late") == []
    assert history.change_notices_pending() == []


def test_a_claim_takes_at_most_its_limit_oldest_first():
    history.announce(objects=[("inventory.deployment", i) for i in range(5)])
    assert [
        n.object_id for n in history.change_notices_claim(consumer="a", limit=2)
    ] == [0, 1]
    assert [
        n.object_id for n in history.change_notices_claim(consumer="b", limit=10)
    ] == [2, 3, 4]
    with pytest.raises(ValueError, match="between 1 and"):
        history.change_notices_claim(consumer="a", limit=0)


# ---------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------
def test_prune_keeps_each_fields_latest_row_however_old(settings):
    settings.FIELD_HISTORY_RETENTION_DAYS = 30
    now = timezone.now()
    old, recent = now - timedelta(days=90), now - timedelta(days=1)

    def row(obj_id, field, at, value):
        history.record_changes(
            deltas=[history.Delta("inventory.deployment", obj_id, field, None, value)],
            source="k8s:1",
            at=at,
        )
        return m.FieldChange.objects.latest("id").pk

    a_old = row(1, "endpoint", old, "a")
    a_old_latest = row(1, "endpoint", old + timedelta(days=1), "b")  # latest: kept
    b_old = row(1, "status", old, "quarantined")
    b_recent = row(1, "status", recent, "active")
    c_only = row(2, "endpoint", old, "only")  # an object's one row: kept
    result = history.field_history_prune(now=now)
    kept = set(m.FieldChange.objects.values_list("pk", flat=True))
    assert kept == {a_old_latest, b_recent, c_only}
    assert a_old not in kept and b_old not in kept
    assert result["history"] == 2
    assert history.field_history_prune(now=now)["history"] == 0


def test_prune_command_and_consumed_notices(settings):
    settings.CHANGE_NOTICE_RETENTION_DAYS = 7
    history.announce(objects=[("inventory.deployment", 1), ("inventory.deployment", 2)])
    claimed = history.change_notices_claim(consumer="g")
    history.change_notices_consume(notices=claimed[:1])
    m.ChangeNotice.objects.filter(consumed_at__isnull=False).update(
        consumed_at=timezone.now() - timedelta(days=8)
    )
    from io import StringIO

    out = StringIO()
    call_command("prune_history", stdout=out)
    assert "1 consumed change notice" in out.getvalue()
    assert list(m.ChangeNotice.objects.values_list("object_id", flat=True)) == [2]


def test_the_prune_has_a_daily_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["field-history-prune"]
    assert entry["task"] == "inventory.tasks.field_history_prune"
    from inventory.tasks import field_history_prune

    field_history_prune()  # runs with nothing to do


# ---------------------------------------------------------------------------
# The "Reported history" page
# ---------------------------------------------------------------------------
def _history_of(deployment, n, *, identity=None, version=None):
    deltas = []
    for i in range(n):
        deltas.append(
            history.Delta(
                "inventory.deployment", deployment.pk, "endpoint", f"e{i}", f"e{i + 1}"
            )
        )
        if identity is not None:
            deltas.append(
                history.Delta(
                    "inventory.deployment",
                    deployment.pk,
                    "identities",
                    [],
                    [identity.pk],
                )
            )
        if version is not None:
            deltas.append(
                history.Delta(
                    "inventory.deployment",
                    deployment.pk,
                    "observed_version",
                    {"observed_version_id": None, "observed_version_label": "9"},
                    {"observed_version_id": version.pk, "observed_version_label": "3"},
                )
            )
    history.record_changes(deltas=deltas, source="kubernetes:4", run_id=12)


def test_history_page_shows_changes_newest_first_with_source_and_run(
    client, owner, team_a
):
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a), team=team_a)
    version = ModelVersionFactory(model=deployment.model, version="3")
    identity = IdentityFactory(team=team_a, name="svc-visible")
    _history_of(deployment, 1, identity=identity, version=version)
    client.force_login(owner)

    detail = client.get(deployment.get_absolute_url())
    url = f"/inventory/deployments/{deployment.pk}/history/"
    assert f'href="{url}"' in detail.content.decode()
    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("observed version") < html.index("bound identities")
    assert f'href="{version.get_absolute_url()}">3</a>' in html
    assert "9 (not in the registry)" in html
    assert f'href="{identity.get_absolute_url()}">svc-visible</a>' in html
    assert "<code>kubernetes:4</code>" in html and "run 12" in html


def test_history_page_is_keyset_paged_and_ignores_a_forged_cursor(
    client, owner, team_a
):
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a), team=team_a)
    _history_of(deployment, history.HISTORY_PAGE_SIZE + 5)
    client.force_login(owner)
    url = f"/inventory/deployments/{deployment.pk}/history/"
    first = client.get(url)
    newest = m.FieldChange.objects.order_by("-id")
    cut = newest[history.HISTORY_PAGE_SIZE - 1].pk
    assert f'href="?before={cut}"' in first.content.decode()
    second = client.get(url, {"before": cut})
    assert second.content.decode().count("<tr>") == 1 + 5
    for forged in ("abc", "-1", "1e9", "9" * 40, "\x00"):
        assert client.get(url, {"before": forged}).status_code == 200


def test_history_page_is_404_for_someone_elses_object(client, other_owner, team_a):
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a), team=team_a)
    client.force_login(other_owner)
    assert (
        client.get(f"/inventory/deployments/{deployment.pk}/history/").status_code
        == 404
    )


@pytest.mark.parametrize(
    "key,plural", [("identity", "identities"), ("modelversion", "versions")]
)
def test_identity_and_version_pages_have_their_history(client, admin_user, key, plural):
    obj = IdentityFactory() if key == "identity" else ModelVersionFactory()
    field = "status" if key == "identity" else "approval"
    history.record_changes(
        deltas=[history.Delta(obj._meta.label_lower, obj.pk, field, "a", "b")],
        actor=admin_user,
    )
    client.force_login(admin_user)
    assert (
        f"/inventory/{plural}/{obj.pk}/history/"
        in client.get(obj.get_absolute_url()).content.decode()
    )
    page = client.get(f"/inventory/{plural}/{obj.pk}/history/").content.decode()
    assert "(by hand)" in page and admin_user.username in page


@pytest.mark.parametrize("rows", [3, 30])
def test_history_page_queries_do_not_grow_with_rows(
    client, owner, team_a, rows, django_assert_max_num_queries
):
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a), team=team_a)
    version = ModelVersionFactory(model=deployment.model)
    identities = [IdentityFactory(team=team_a) for _ in range(3)]
    for identity in identities:
        _history_of(deployment, rows, identity=identity, version=version)
    client.force_login(owner)
    client.get("/")  # the session and the user are loaded once, as on any page
    with django_assert_max_num_queries(8):
        response = client.get(f"/inventory/deployments/{deployment.pk}/history/")
    assert response.status_code == 200


def test_the_committees_approval_is_history_of_the_version(risk):
    from governance import services as governance_services

    version = ModelVersionFactory(approval=m.ModelVersion.Approval.PENDING)
    governance_services.model_version_set_approval(
        actor=risk, version=version, approval=m.ModelVersion.Approval.APPROVED
    )
    row = m.FieldChange.objects.get()
    assert (row.object_type, row.object_id, row.field) == (
        "inventory.modelversion",
        version.pk,
        "approval",
    )
    assert (row.before, row.after, row.actor_kind) == ("pending", "approved", "person")
