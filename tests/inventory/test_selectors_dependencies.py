"""A deployment's dependencies: up to the limit each way, by name, only visible ones."""

from __future__ import annotations

import pytest

from inventory import models as m
from inventory import selectors
from tests.factories import DeploymentFactory, TeamFactory

pytestmark = pytest.mark.django_db


def test_dependencies_each_way_are_limited_sorted_and_scoped(
    monkeypatch, owner, team_a, django_assert_num_queries
):
    monkeypatch.setattr(selectors, "RELATED_LIMIT", 2)
    hub = DeploymentFactory(name="hub", team=team_a)
    hidden = DeploymentFactory(name="a-hidden", team=TeamFactory())
    for name in ["up-c", "up-a", "up-b"]:
        m.Dependency.objects.create(
            upstream=DeploymentFactory(name=name, team=team_a), downstream=hub
        )
    for name in ["down-b", "down-c", "down-a"]:
        m.Dependency.objects.create(
            upstream=hub, downstream=DeploymentFactory(name=name, team=team_a)
        )
    m.Dependency.objects.create(upstream=hidden, downstream=hub)
    m.Dependency.objects.create(upstream=hub, downstream=hidden)
    owner = type(owner).objects.get(pk=owner.pk)
    selectors.deployment_list(user=owner).exists()  # roles and teams, read once
    with django_assert_num_queries(2):
        upstream, downstream = selectors.deployment_dependencies(
            user=owner, deployment=hub
        )
        assert [d.upstream.name for d in upstream] == ["up-a", "up-b"]
        assert [d.downstream.name for d in downstream] == ["down-a", "down-b"]
        assert upstream[0].upstream.model.name and downstream[0].downstream.model.name
