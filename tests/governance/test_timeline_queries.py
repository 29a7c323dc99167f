"""The timeline reads a constant number of queries whatever the data, caps its rows and
says so."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from governance import timeline as tl
from inventory import history
from inventory import models as m
from tests.factories import DeploymentFactory, IdentityFactory, ModelVersionFactory
from tests.timeline_data import build_incident, usage

pytestmark = pytest.mark.django_db
# Session and user (2), roles and teams (1), the subject (1), history (1), the names it
# points at (3 at most), versions, identities, finding events, audit, usage x4 (8).
MAX_QUERIES = 16


def _grow(incident, n):
    """n more of everything around the incident's deployment."""
    now = timezone.now()
    d = incident.deployment
    for i in range(n):
        v = ModelVersionFactory(model=incident.model, version=f"5.{i}")
        other = DeploymentFactory(model=incident.model, team=d.team, name=f"sib-{i}")
        IdentityFactory(team=d.team, deployments=[d, other])
        usage(d, now - timedelta(hours=i + 30), f"caller-{i}", 5, 1)
        history.record_changes(
            deltas=[
                history.Delta(history.DEPLOYMENT, d.pk, "endpoint", f"a{i}", f"b{i}"),
                history.Delta(history.VERSION, v.pk, "approval", "pending", "approved"),
            ],
            source="mlflow",
            at=now - timedelta(hours=i + 2),
        )


@pytest.mark.parametrize("subject", ["deployment", "model", "identity"])
def test_constant_queries_at_two_sizes(
    login, risk, team_a, subject, django_assert_max_num_queries
):
    incident = build_incident(team=team_a, risk=risk)
    pk = {
        "deployment": incident.deployment.pk,
        "model": incident.model.pk,
        "identity": incident.identity.pk,
    }[subject]
    client = login(risk)
    path = reverse("governance:timeline", args=[subject, pk])
    client.get(path)  # the first request after login also saves the session
    with django_assert_max_num_queries(MAX_QUERIES) as small:
        assert client.get(path).status_code == 200
    _grow(incident, 25)
    with django_assert_max_num_queries(MAX_QUERIES) as large:
        response = client.get(path)
    assert response.status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)
    if subject != "identity":
        assert len(response.context["timeline"].events) > 40


def test_constant_queries_for_an_owner(
    login, owner, risk, team_a, django_assert_max_num_queries
):
    incident = build_incident(team=team_a, risk=risk)
    client = login(owner)
    path = reverse("governance:timeline", args=["model", incident.model.pk])
    client.get(path)
    with django_assert_max_num_queries(MAX_QUERIES) as small:
        client.get(path)
    _grow(incident, 10)
    with django_assert_max_num_queries(MAX_QUERIES) as large:
        assert client.get(path).status_code == 200
    assert len(large.captured_queries) == len(small.captured_queries)


def test_rows_are_capped_and_the_page_says_so(login, risk, team_a, monkeypatch):
    monkeypatch.setattr(tl, "ROW_CAP", 5)
    incident = build_incident(team=team_a, risk=risk)
    _grow(incident, 8)
    response = login(risk).get(
        reverse("governance:timeline", args=["deployment", incident.deployment.pk])
    )
    t = response.context["timeline"]
    assert len(t.events) == 5 and t.capped
    assert 'data-testid="capped"' in response.content.decode()
    # The latest are kept.
    assert [e.at for e in t.events] == sorted((e.at for e in t.events), reverse=True)


def test_an_other_teams_deployment_of_the_model_is_left_out(
    login, owner, risk, team_a, team_b
):
    incident = build_incident(team=team_a, risk=risk)
    hidden = DeploymentFactory(model=incident.model, team=team_b, name="not-yours")
    history.record_changes(
        deltas=[history.Delta(history.DEPLOYMENT, hidden.pk, "endpoint", "x", "y")],
        source="k8s",
    )
    usage(hidden, timezone.now() - timedelta(hours=3), "secret-caller", 9)
    response = login(owner).get(
        reverse("governance:timeline", args=["model", incident.model.pk])
    )
    text = response.content.decode()
    assert "not-yours" not in text and "secret-caller" not in text
    seen = login(risk).get(
        reverse("governance:timeline", args=["model", incident.model.pk])
    )
    assert "not-yours" in seen.content.decode()
    assert m.Deployment.objects.filter(name="not-yours").exists()
