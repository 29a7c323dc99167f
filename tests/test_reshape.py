"""The reshape into audit < inventory < sources < governance < reviews keeps existing data.

An existing database upgrades with `migrate` alone: the moved models keep their tables, the
audit events written before the move still verify, and old object labels still find their
events.
"""

from __future__ import annotations

import pytest
from django.apps import apps as global_apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from audit.actors import Actor, ActorKind
from audit.chain import audit_chain_verify, canonical, event_hash
from audit.models import AuditEvent
from audit.services import object_types, record
from inventory import models as m
from sources import models as sm

BEFORE_RESHAPE = [
    ("inventory", "0009_syncrun_requested_index"),
    ("governance", "0003_auditevent_owner_indexes"),
    ("sources", None),
    ("audit", None),
]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    applied = [target for target in targets if target[1] is not None]
    return MigrationExecutor(connection).loader.project_state(applied).apps


@pytest.mark.django_db(transaction=True)
def test_a_database_from_before_the_reshape_upgrades_with_migrate_alone(
    transactional_db,
):
    old = _migrate(BEFORE_RESHAPE)
    OldSource = old.get_model("inventory", "DataSource")
    OldRun = old.get_model("inventory", "SyncRun")
    ContentType = old.get_model("contenttypes", "ContentType")
    source = OldSource.objects.create(name="Registry", kind="mlflow", config={"a": 1})
    OldRun.objects.create(source=source, trigger="manual", status="succeeded", seen=7)
    ContentType.objects.get_or_create(app_label="inventory", model="datasource")

    latest = [
        (app, node[1])
        for app in ("inventory", "governance", "sources", "audit")
        for node in MigrationExecutor(connection).loader.graph.leaf_nodes(app)
    ]
    _migrate(latest)

    moved = sm.DataSource.objects.get(name="Registry")
    assert moved.config == {"a": 1}
    assert sm.SyncRun.objects.get(source=moved).seen == 7
    ct = global_apps.get_model("contenttypes", "ContentType")
    assert ct.objects.filter(app_label="sources", model="datasource").exists()
    assert not ct.objects.filter(app_label="inventory", model="datasource").exists()


@pytest.mark.django_db
def test_events_from_before_actor_kinds_still_verify_and_new_ones_hash_their_kind(
    admin_user, team_a
):
    old = record(actor=admin_user, action="team.update", target=team_a)
    # An event as the audit trail wrote it before actor kinds: no kind, form 1.
    old_form = AuditEvent(
        **{f.name: getattr(old, f.name) for f in AuditEvent._meta.fields}
    )
    old_form.actor_kind = None
    assert '"actor_kind"' not in canonical(old_form)
    assert '"canonical_form":2' in canonical(old)
    assert event_hash(old.prev_hash, old_form) != old.hash

    token = record(actor=Actor.token("rp_abc"), action="team.update", target=team_a)
    assert (token.actor_kind, token.actor_label, token.actor_id) == (
        ActorKind.TOKEN,
        "token:rp_abc",
        None,
    )
    assert old.actor_kind == ActorKind.PERSON and old.actor_id == admin_user.pk
    assert audit_chain_verify().ok


@pytest.mark.django_db
def test_an_altered_actor_kind_breaks_the_chain(admin_user, team_a):
    event = record(actor=admin_user, action="team.update", target=team_a)
    assert audit_chain_verify().ok
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE governance_auditevent DISABLE TRIGGER governance_auditevent_no_update_delete"
            )
    try:
        AuditEvent.objects.filter(pk=event.pk).update(actor_kind=ActorKind.SYSTEM)
        report = audit_chain_verify()
    finally:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "ALTER TABLE governance_auditevent ENABLE TRIGGER governance_auditevent_no_update_delete"
                )
    assert not report.ok and report.problem.seq == event.seq


@pytest.mark.django_db
def test_a_moved_models_history_finds_events_under_its_old_label(client, admin_user):
    source = sm.DataSource.objects.create(name="Registry", kind="mlflow")
    AuditEvent.objects.all()  # nothing yet
    record(actor=admin_user, action="datasource.update", target=source)
    assert object_types("sources.datasource") == (
        "sources.datasource",
        "inventory.datasource",
    )
    client.force_login(admin_user)
    response = client.get(
        f"/governance/audit/?object_type=sources.datasource&object_id={source.pk}"
    )
    assert [row.object_id for row in response.context["table"].data] == [str(source.pk)]
    assert m.Team.objects.count() == 0
