"""Upgrading a database: 0011 moves the baselines the registry's sync copied onto
deployments to their model, keeps hand-picked ones as pins, and changes no deployment's
effective baseline."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("inventory", "0010_sources_move_to_sources_app")]
AFTER = [("inventory", "0011_aimodel_baseline_policy")]


def _effective(deployment, models) -> int | None:
    return (
        deployment.approved_version_id
        or models[deployment.model_id].baseline_version_id
    )


@pytest.mark.django_db(transaction=True)
def test_registry_baselines_move_to_the_model_and_hand_picked_pins_stay():
    if connection.vendor == "postgresql":
        # The flush after a transactional test TRUNCATEs the audit table, which its
        # trigger allows only in a maintenance session (as tests/conftest.py does).
        with connection.cursor() as cursor:
            cursor.execute("SET runproof.audit_maintenance = 'on'")
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    AIModel = old.get_model("inventory", "AIModel")
    Version = old.get_model("inventory", "ModelVersion")
    Deployment = old.get_model("inventory", "Deployment")

    synced = AIModel.objects.create(name="synced", source="mlflow:x", external_id="s")
    champion = Version.objects.create(
        model=synced,
        version="2",
        approval="approved",
        source="mlflow:x",
        external_id="s/2",
    )
    hand = Version.objects.create(model=synced, version="h", approval="approved")
    mixed = AIModel.objects.create(name="mixed", source="mlflow:x", external_id="m")
    m1 = Version.objects.create(
        model=mixed,
        version="1",
        approval="approved",
        source="mlflow:x",
        external_id="m/1",
    )
    m2 = Version.objects.create(
        model=mixed,
        version="2",
        approval="approved",
        source="mlflow:x",
        external_id="m/2",
    )
    rows = {
        "follows": Deployment.objects.create(
            name="a", model=synced, approved_version=champion
        ),
        "follows-too": Deployment.objects.create(
            name="b", model=synced, approved_version=champion
        ),
        "hand-picked": Deployment.objects.create(
            name="c", model=synced, approved_version=hand
        ),
        "mixed-1": Deployment.objects.create(
            name="d", model=mixed, approved_version=m1
        ),
        "mixed-2": Deployment.objects.create(
            name="e", model=mixed, approved_version=m2
        ),
    }
    before = {k: d.approved_version_id for k, d in rows.items()}

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    models = {m.pk: m for m in new.get_model("inventory", "AIModel").objects.all()}
    after = {
        k: new.get_model("inventory", "Deployment").objects.get(pk=d.pk)
        for k, d in rows.items()
    }
    assert models[synced.pk].baseline_version_id == champion.pk
    assert models[mixed.pk].baseline_version_id is None, "ambiguous: left as pins"
    assert after["follows"].approved_version_id is None
    assert after["hand-picked"].approved_version_id == hand.pk
    assert {k: _effective(d, models) for k, d in after.items()} == before
    policy = new.get_model("inventory", "Policy").objects.get(pk=1)
    assert (policy.unused_after_days, policy.unrotated_after_days) == (90, 90)

    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)  # and back: every deployment carries its baseline again
    back = executor.loader.project_state(BEFORE).apps.get_model(
        "inventory", "Deployment"
    )
    assert {
        k: back.objects.get(pk=d.pk).approved_version_id for k, d in rows.items()
    } == (before)
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())
