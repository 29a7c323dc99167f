"""The pipelines pages: graph contents, highlights of risky handoffs, cycles, bounds,
permissions and query counts."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from governance import detection, pipelines
from governance.models import Finding
from inventory import models as m
from tests.factories import DeploymentFactory, ModelVersionFactory, SystemFactory
from tests.timeline_data import build_pipeline

pytestmark = pytest.mark.django_db


def chain(team, n, *, system=None, kind="pipeline"):
    version = ModelVersionFactory(approval="approved", model__team=team)
    nodes = [
        DeploymentFactory(
            name=f"n{i}",
            model=version.model,
            team=team,
            system=system,
            observed_version=version,
        )
        for i in range(n)
    ]
    m.Dependency.objects.bulk_create(
        m.Dependency(upstream=a, downstream=b, kind=kind)
        for a, b in zip(nodes, nodes[1:], strict=False)
    )
    return nodes


def _graph(response):
    body = response.content.decode()
    start = body.index('<script id="pipeline-data" type="application/json">')
    end = body.index("</script>", start)
    return json.loads(body[body.index(">", start) + 1 : end])


def test_deployment_pipeline_goes_up_and_downstream(login, risk, team_a):
    nodes = chain(team_a, 5)
    side = DeploymentFactory(name="unrelated", team=team_a)
    response = login(risk).get(
        reverse("governance:pipeline_deployment", args=[nodes[2].pk])
    )
    assert response.status_code == 200
    p = response.context["pipeline"]
    assert [n.name for n in p.nodes] == ["n0", "n1", "n2", "n3", "n4"]
    assert [(e.upstream_name, e.downstream_name) for e in p.edges] == [
        ("n0", "n1"),
        ("n1", "n2"),
        ("n2", "n3"),
        ("n3", "n4"),
    ]
    assert {e.kind_label for e in p.edges} == {"Pipeline step"}
    assert [n.name for n in p.nodes if n.in_scope] == ["n2"]
    assert side.name not in response.content.decode()
    graph = _graph(response)
    assert len(graph["nodes"]) == 5 and len(graph["edges"]) == 4
    assert graph["edges"][0]["data"]["source"].startswith("d")


def test_node_facts(login, risk, team_a):
    nodes = chain(team_a, 2)
    m.Deployment.objects.filter(pk=nodes[1].pk).update(risk_tier=1, owner=None)
    detection.run(kinds=[Finding.Kind.MISSING_OWNER])
    p = pipelines.pipeline_for_deployment(user=risk, pk=nodes[0].pk)
    by_name = {n.name: n for n in p.nodes}
    n1 = by_name["n1"]
    assert n1.tier == 1
    assert n1.open_findings == Finding.objects.filter(deployment=nodes[1]).count() > 0
    assert n1.approval_label == "Approved" and n1.status_label == "Active"
    assert n1.model == nodes[1].model.name
    assert n1.version == nodes[1].observed_version.version
    assert n1.state == "ok"


def test_highlights_unapproved_drifting_and_withdrawn(login, risk, team_a):
    g = build_pipeline(team=team_a, n=30)
    response = login(risk).get(
        reverse("governance:pipeline_system", args=[g.system.pk])
    )
    p = response.context["pipeline"]
    states = {n.name: n.state for n in p.nodes}
    assert states[g.unapproved.name] == "bad"
    assert states[g.withdrawn.name] == "bad"
    assert states[g.drifting.name] == "warn"
    assert {n.name for n in p.flagged} == {
        g.unapproved.name,
        g.withdrawn.name,
        g.drifting.name,
    }
    for e in p.edges:
        ends = {e.upstream_name, e.downstream_name}
        if ends & {g.unapproved.name, g.withdrawn.name}:
            assert e.state == "bad"
        elif g.drifting.name in ends:
            assert e.state == "warn"
        else:
            assert e.state == "ok"
    assert any(e.state == "bad" for e in p.edges)
    body = response.content.decode()
    assert f'data-node="{g.unapproved.pk}"' in body
    assert body.count('data-testid="node-flag"') == 3
    reasons = {n.name: n.reasons for n in p.nodes}
    # It also runs another version than its baseline: both reasons, red wins.
    assert reasons[g.unapproved.name] == [
        "runs 9, which is pending approval",
        "drifting from its baseline",
    ]
    assert reasons[g.withdrawn.name] == ["withdrawn"]
    assert reasons[g.drifting.name] == ["drifting from its baseline"]


def test_unregistered_version_is_unapproved(risk, team_a):
    nodes = chain(team_a, 2)
    m.Deployment.objects.filter(pk=nodes[1].pk).update(
        observed_version=None, observed_version_label="v-mystery"
    )
    p = pipelines.pipeline_for_deployment(user=risk, pk=nodes[0].pk)
    n1 = next(n for n in p.nodes if n.name == "n1")
    assert n1.state == "bad" and n1.approval_label == "Unregistered"


def test_cycles_end(risk, team_a):
    a, b, c = chain(team_a, 3)
    m.Dependency.objects.create(upstream=c, downstream=a, kind="handoff")
    p = pipelines.pipeline_for_deployment(user=risk, pk=b.pk)
    assert sorted(n.name for n in p.nodes) == ["n0", "n1", "n2"]
    assert sorted((e.upstream_name, e.downstream_name, e.kind) for e in p.edges) == [
        ("n0", "n1", "pipeline"),
        ("n1", "n2", "pipeline"),
        ("n2", "n0", "handoff"),
    ]
    assert not p.depth_reached and not p.truncated


def test_depth_is_bounded(risk, team_a):
    nodes = chain(team_a, 12)
    p = pipelines.pipeline_for_deployment(user=risk, pk=nodes[0].pk, max_depth=4)
    assert [n.name for n in p.nodes] == ["n0", "n1", "n2", "n3", "n4"]
    assert p.depth_reached


def test_node_count_is_bounded(login, risk, team_a, monkeypatch):
    g = build_pipeline(team=team_a, n=40)
    p = pipelines.pipeline_for_deployment(user=risk, pk=g.nodes[0].pk, max_nodes=10)
    assert len(p.nodes) == 10 and p.truncated
    ps = pipelines.pipeline_for_system(user=risk, pk=g.system.pk, max_nodes=10)
    assert len(ps.nodes) == 10 and ps.truncated
    monkeypatch.setattr(pipelines, "MAX_NODES", 10)
    response = login(risk).get(
        reverse("governance:pipeline_system", args=[g.system.pk])
    )
    assert 'data-testid="pipeline-truncated"' in response.content.decode()


def test_system_pipeline_includes_neighbours_outside(risk, team_a):
    system = SystemFactory(team=team_a)
    inside = chain(team_a, 3, system=system)
    outside = DeploymentFactory(name="feeder", team=team_a)
    m.Dependency.objects.create(upstream=outside, downstream=inside[0], kind="handoff")
    p = pipelines.pipeline_for_system(user=risk, pk=system.pk)
    assert sorted(n.name for n in p.nodes) == ["feeder", "n0", "n1", "n2"]
    assert {n.name for n in p.nodes if n.in_scope} == {"n0", "n1", "n2"}
    assert ("feeder", "n0", "Agent handoff") in {
        (e.upstream_name, e.downstream_name, e.kind_label) for e in p.edges
    }


def test_owner_sees_only_what_they_may_read(login, owner, team_a, team_b):
    mine = chain(team_a, 2)
    theirs = DeploymentFactory(name="their-step", team=team_b)
    m.Dependency.objects.create(upstream=mine[1], downstream=theirs, kind="pipeline")
    response = login(owner).get(
        reverse("governance:pipeline_deployment", args=[mine[0].pk])
    )
    assert [n.name for n in response.context["pipeline"].nodes] == ["n0", "n1"]
    assert "their-step" not in response.content.decode()
    assert (
        login(owner)
        .get(reverse("governance:pipeline_deployment", args=[theirs.pk]))
        .status_code
        == 404
    )
    system = SystemFactory(team=team_b)
    assert (
        login(owner)
        .get(reverse("governance:pipeline_system", args=[system.pk]))
        .status_code
        == 404
    )


def test_missing_is_404(login, risk, db):
    client = login(risk)
    assert client.get("/governance/pipelines/deployment/999999/").status_code == 404
    assert client.get("/governance/pipelines/system/999999/").status_code == 404


@pytest.mark.parametrize("view", ["pipeline_deployment", "pipeline_system"])
def test_constant_queries(login, risk, team_a, view, django_assert_max_num_queries):
    small = build_pipeline(team=team_a, n=10)
    client = login(risk)
    pk = small.system.pk if view == "pipeline_system" else small.nodes[0].pk
    path = reverse(f"governance:{view}", args=[pk])
    client.get(path)
    # Session, user, roles (3); the root (1); the hops or the members and edges; nodes (1).
    limit = 3 + 1 + pipelines.MAX_DEPTH + 1
    with django_assert_max_num_queries(limit) as few:
        client.get(path)
    m.Dependency.objects.all().delete()
    m.Deployment.objects.all().delete()
    m.System.objects.all().delete()
    big = build_pipeline(team=team_a, n=60)
    pk = big.system.pk if view == "pipeline_system" else big.nodes[0].pk
    with django_assert_max_num_queries(limit) as many:
        response = client.get(reverse(f"governance:{view}", args=[pk]))
    assert len(response.context["pipeline"].nodes) > 10
    if view == "pipeline_system":
        assert len(many.captured_queries) == len(few.captured_queries)


def test_detail_pages_link_to_the_pipeline(login, risk, team_a):
    system = SystemFactory(team=team_a)
    (d,) = chain(team_a, 1, system=system)
    client = login(risk)
    body = client.get(d.get_absolute_url()).content.decode()
    assert reverse("governance:pipeline_deployment", args=[d.pk]) in body
    body = client.get(system.get_absolute_url()).content.decode()
    assert reverse("governance:pipeline_system", args=[system.pk]) in body


def test_exports(login, risk, team_a):
    import csv
    import io

    g = build_pipeline(team=team_a, n=10)
    client = login(risk)
    path = reverse("governance:pipeline_system", args=[g.system.pk])
    data = client.get(path, {"format": "json"}).json()
    assert len(data["nodes"]) == 10
    bad = {n["name"] for n in data["nodes"] if n["state"] == "bad"}
    assert bad == {g.unapproved.name, g.withdrawn.name}
    response = client.get(path, {"format": "csv"})
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 10
    assert {r["name"] for r in rows if r["state"] == "warn"} == {g.drifting.name}
    response = client.get(path, {"format": "csv", "table": "edges"})
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    edges = list(csv.DictReader(io.StringIO(text)))
    assert len(edges) == m.Dependency.objects.count()
    assert client.get(path, {"format": "pdf"}).status_code == 400
