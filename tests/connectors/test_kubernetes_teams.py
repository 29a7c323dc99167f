"""Issue 9, item 2: one cluster serves many teams. A workload takes its model's team; the
source's team only those whose model has none (a model the cluster alone names)."""

from __future__ import annotations

import pytest

from inventory import models as m
from tests.connectors import fake_apiserver
from tests.connectors.test_kubernetes import deployments, sync  # noqa: F401 (fixture)
from tests.factories import AIModelFactory, TeamFactory

pytestmark = pytest.mark.django_db

k8s_api = fake_apiserver.k8s_api
k8s_source = fake_apiserver.k8s_source


def test_each_workload_takes_its_model_team_else_the_source_team(
    k8s_api,
    k8s_source,
    sync,  # noqa: F811
):
    platform, fraud_team = TeamFactory(name="Platform"), TeamFactory(name="Fraud")
    fraud = AIModelFactory(name="fraud-scorer", team=fraud_team)
    churn = AIModelFactory(name="churn-predictor", team=None)
    source = k8s_source(k8s_api.url)
    source.team = platform
    source.save(update_fields=["team"])

    run = sync(source)

    assert run.status == "succeeded"
    rows = deployments(source)
    for ext in (
        "Deployment/ml-serving/fraud-scorer",
        "Deployment/staging-ml/fraud-scorer",
    ):
        assert (rows[ext].model_id, rows[ext].team_id) == (fraud.pk, fraud_team.pk)
    churn_workload = rows["InferenceService/ml-serving/churn-predictor"]
    assert churn_workload.model_id == churn.pk
    assert churn_workload.team_id == platform.pk, "its model has no team"
    # A model only the cluster names is made in the source's team, and so is its workload.
    ranker = rows["Deployment/team-b/recsys-ranker"]
    assert ranker.model.team_id == ranker.team_id == platform.pk
    assert {d.team_id for d in rows.values()} == {fraud_team.pk, platform.pk}
    assert not m.Deployment.objects.filter(source=source.source_label, team=None)
