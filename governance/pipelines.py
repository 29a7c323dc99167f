"""Pipelines: the dependency graph around one deployment (up- and downstream through
`Dependency` edges) or through one system, with each component's approval state, tier,
open findings and status, and the handoffs where a risky component sits highlighted.

Bounded: at most `MAX_DEPTH` hops from the deployment (one query a hop, cycles stop at
nodes already seen) and `MAX_NODES` nodes; then one query for the nodes and their open
findings. Only what the user may read is walked or shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Q
from django.urls import reverse

from governance.models import Finding
from inventory import models as m
from inventory import permissions

MAX_DEPTH = 8
MAX_NODES = 200

OK = "ok"
WARN = "warn"  # drifting: another version than its baseline
BAD = "bad"  # running an unapproved version, or withdrawn / quarantined
UNKNOWN = "unknown"  # nothing observed yet
SEVERITY = {UNKNOWN: 0, OK: 0, WARN: 1, BAD: 2}
STATE_LABELS = {
    OK: "OK",
    WARN: "Drifting",
    BAD: "At risk",
    UNKNOWN: "Nothing observed",
}


@dataclass
class Node:
    id: int
    name: str
    model: str
    version: str
    approval: str
    approval_label: str
    tier: int
    open_findings: int
    status: str
    status_label: str
    environment: str
    system: str
    in_scope: bool  # in the system (a system pipeline) or the deployment itself
    url: str
    state: str = OK
    reasons: list[str] = field(default_factory=list)

    @property
    def state_label(self) -> str:
        return STATE_LABELS[self.state]

    def as_data(self) -> dict[str, Any]:
        return {
            "id": f"d{self.id}",
            "label": f"{self.name}\n{self.model} {self.version}\ntier {self.tier}"
            + (f" · {self.open_findings} open" if self.open_findings else ""),
            "state": self.state,
            "focus": self.in_scope,
            "url": self.url,
        }


@dataclass
class Edge:
    upstream: int
    downstream: int
    kind: str
    kind_label: str
    state: str = OK
    upstream_name: str = ""
    downstream_name: str = ""

    def as_data(self) -> dict[str, Any]:
        return {
            "id": f"e{self.upstream}-{self.downstream}",
            "source": f"d{self.upstream}",
            "target": f"d{self.downstream}",
            "label": self.kind_label,
            "state": self.state,
        }


@dataclass
class Pipeline:
    title: str
    root: Any
    nodes: list[Node]
    edges: list[Edge]
    truncated: bool
    depth_reached: bool

    @property
    def flagged(self) -> list[Node]:
        return [n for n in self.nodes if n.state in (WARN, BAD)]

    @property
    def flagged_edges(self) -> list[Edge]:
        return [e for e in self.edges if e.state in (WARN, BAD)]

    def graph(self) -> dict[str, Any]:
        return {
            "nodes": [{"data": n.as_data()} for n in self.nodes],
            "edges": [{"data": e.as_data()} for e in self.edges],
        }


def _readable(user: Any) -> Any:
    return permissions.scope(m.Deployment.objects.all(), user)


def _edges_q(user: Any) -> Any:
    """Edges whose both ends the user may read (no subquery for who reads everything)."""
    edges = m.Dependency.objects.all()
    if not permissions.reads_all(user):
        readable = _readable(user).values("id")
        edges = edges.filter(upstream_id__in=readable, downstream_id__in=readable)
    return edges


def _judge(d: m.Deployment, open_findings: int, in_scope: bool) -> Node:
    version = d.observed_version
    if version is not None:
        label, approval = version.version, version.approval
        approval_label = version.get_approval_display()
    elif d.observed_version_label:
        label, approval = d.observed_version_label, "unregistered"
        approval_label = "Unregistered"
    else:
        label, approval, approval_label = "—", "", "Nothing observed"
    node = Node(
        id=d.pk,
        name=d.name,
        model=d.model.name,
        version=label,
        approval=approval,
        approval_label=approval_label,
        tier=d.risk_tier,
        open_findings=open_findings,
        status=d.status,
        status_label=d.get_status_display(),
        environment=d.get_environment_display(),
        system=d.system.name if d.system_id else "",
        in_scope=in_scope,
        url=d.get_absolute_url(),
    )
    if approval == "":
        node.state = UNKNOWN
    if approval and approval != m.ModelVersion.Approval.APPROVED:
        node.reasons.append(f"runs {label}, which is {approval_label.lower()}")
        node.state = BAD
    if d.status != m.Deployment.Status.ACTIVE:
        node.reasons.append(d.get_status_display().lower())
        node.state = BAD
    if d.version_drift:
        node.reasons.append("drifting from its baseline")
        if node.state != BAD:
            node.state = WARN
    return node


def _build(
    *,
    title: str,
    root: Any,
    ids: set[int],
    focus: set[int],
    edge_rows: list[tuple[int, int, str]],
    truncated: bool,
    depth_reached: bool,
) -> Pipeline:
    unresolved = Q(findings__status__in=Finding.UNRESOLVED)
    rows = (
        m.Deployment.objects.filter(id__in=ids)
        .select_related(
            "model__baseline_version", "observed_version", "approved_version", "system"
        )
        .annotate(open_findings=Count("findings", filter=unresolved))
        .order_by("name", "id")
    )
    nodes = [_judge(d, d.open_findings, d.pk in focus) for d in rows]
    by_id = {n.id: n for n in nodes}
    labels = dict(m.Dependency.Kind.choices)
    edges = []
    for up, down, kind in sorted(edge_rows):
        if up in by_id and down in by_id:
            worst = max(by_id[up].state, by_id[down].state, key=SEVERITY.get)
            edges.append(
                Edge(
                    up,
                    down,
                    kind,
                    labels.get(kind, kind),
                    worst if worst in (WARN, BAD) else OK,
                    by_id[up].name,
                    by_id[down].name,
                )
            )
    return Pipeline(
        title=title,
        root=root,
        nodes=nodes,
        edges=edges,
        truncated=truncated,
        depth_reached=depth_reached,
    )


def pipeline_for_deployment(
    *, user: Any, pk: Any, max_depth: int | None = None, max_nodes: int | None = None
) -> Pipeline:
    max_depth = max_depth or MAX_DEPTH
    max_nodes = max_nodes or MAX_NODES
    root = permissions.get_for_user(m.Deployment.objects.all(), user, pk)
    edges = _edges_q(user)
    seen = {root.pk}
    up_frontier, down_frontier = {root.pk}, {root.pk}
    found: dict[tuple[int, int], str] = {}
    truncated = False
    for _ in range(max_depth):
        if not (up_frontier or down_frontier):
            break
        limit = max_nodes * 4
        rows = list(
            edges.filter(
                Q(upstream_id__in=down_frontier) | Q(downstream_id__in=up_frontier)
            )
            .order_by("id")
            .values_list("upstream_id", "downstream_id", "kind")[:limit]
        )
        truncated |= len(rows) == limit
        next_up: set[int] = set()
        next_down: set[int] = set()
        for up, down, kind in rows:
            going_down = up in down_frontier
            going_up = down in up_frontier
            for new, frontier, ok in (
                (down, next_down, going_down),
                (up, next_up, going_up),
            ):
                if not ok:
                    continue
                if new not in seen:
                    if len(seen) >= max_nodes:
                        truncated = True
                        continue
                    seen.add(new)
                    frontier.add(new)
                found[(up, down)] = kind
        up_frontier, down_frontier = next_up, next_down
    # Nodes found on the last hop were not followed further: the graph may go on.
    depth_reached = bool(up_frontier or down_frontier)
    return _build(
        title=f"Pipeline around {root.name}",
        root=root,
        ids=seen,
        focus={root.pk},
        edge_rows=[(u, d, k) for (u, d), k in found.items()],
        truncated=truncated,
        depth_reached=depth_reached,
    )


def pipeline_for_system(
    *, user: Any, pk: Any, max_nodes: int | None = None
) -> Pipeline:
    max_nodes = max_nodes or MAX_NODES
    system = permissions.get_for_user(m.System.objects.all(), user, pk)
    members = list(
        _readable(user)
        .filter(system_id=system.pk)
        .order_by("id")
        .values_list("id", flat=True)[: max_nodes + 1]
    )
    truncated = len(members) > max_nodes
    members = members[:max_nodes]
    inside = set(members)
    rows = list(
        _edges_q(user)
        .filter(Q(upstream_id__in=inside) | Q(downstream_id__in=inside))
        .order_by("id")
        .values_list("upstream_id", "downstream_id", "kind")[: max_nodes * 4]
    )
    truncated |= len(rows) == max_nodes * 4
    ids = set(inside)
    kept = []
    for up, down, kind in rows:
        for end in (up, down):
            if end not in ids:
                if len(ids) >= max_nodes:
                    truncated = True
                    break
                ids.add(end)
        else:
            kept.append((up, down, kind))
    return _build(
        title=f"Pipelines of {system.name}",
        root=system,
        ids=ids,
        focus=inside,
        edge_rows=kept,
        truncated=truncated,
        depth_reached=False,
    )


def pipeline_url(obj: Any) -> str:
    if isinstance(obj, m.System):
        return reverse("governance:pipeline_system", args=[obj.pk])
    return reverse("governance:pipeline_deployment", args=[obj.pk])
