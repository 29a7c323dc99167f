"""Data for the incident timeline and pipelines tests: a production deployment that moved
from v3 to v4 eight days ago, with its callers before and after, a credential bound to it,
a finding and governance actions made through the real services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from governance import detection
from governance.models import Finding
from inventory import history, services
from inventory import models as m
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
)


@dataclass
class Incident:
    model: m.AIModel
    v3: m.ModelVersion
    v4: m.ModelVersion
    deployment: m.Deployment
    identity: m.NonHumanIdentity
    changed_at: object


def hour(at):
    return at.replace(minute=0, second=0, microsecond=0)


def usage(deployment, at, caller, calls, errors=0, identity=None):
    return m.UsageHour.objects.create(
        deployment=deployment,
        hour=hour(at),
        caller_service=caller,
        identity=identity,
        calls=calls,
        errors=errors,
        duration_ms_total=calls * 10.0,
        duration_ms_max=20.0,
    )


def build_incident(*, team, risk, name="fraud-prod", calls_days: int = 3) -> Incident:
    now = timezone.now()
    model = AIModelFactory(name=f"{name}-model", team=team)
    v3 = ModelVersionFactory(model=model, version="3", approval="approved")
    m.ModelVersion.objects.filter(pk=v3.pk).update(created_at=now - timedelta(days=20))
    v4 = ModelVersionFactory(model=model, version="4", approval="pending")
    m.ModelVersion.objects.filter(pk=v4.pk).update(created_at=now - timedelta(days=10))
    # The committee approves v4 (audit event and history row, through the service).
    services.model_version_set_approval(
        actor=risk, version=v4, approval="approved", note="Bias review passed."
    )
    deployment = DeploymentFactory(
        name=name,
        model=model,
        team=team,
        owner=None,
        observed_version=v3,
        observed_version_label="3",
    )
    identity = IdentityFactory(name=f"svc-{name}", team=team, deployments=[deployment])
    changed_at = now - timedelta(days=8)
    # The runtime reports v4: one history row, as a sync writes it.
    m.Deployment.objects.filter(pk=deployment.pk).update(
        observed_version=v4, observed_version_label="4"
    )
    history.record_changes(
        deltas=[
            history.Delta(
                history.DEPLOYMENT,
                deployment.pk,
                "observed_version",
                {"observed_version_id": v3.pk, "observed_version_label": "3"},
                {"observed_version_id": v4.pk, "observed_version_label": "4"},
            )
        ],
        source="k8s-prod",
        at=changed_at,
    )
    history.record_changes(
        deltas=[
            history.Delta(
                history.IDENTITY,
                identity.pk,
                "rotated_at",
                None,
                (now - timedelta(days=5)).isoformat(),
            )
        ],
        source="aws-iam",
        at=now - timedelta(days=5),
    )
    m.NonHumanIdentity.objects.filter(pk=identity.pk).update(
        rotated_at=now - timedelta(days=5), last_used_at=now - timedelta(days=1)
    )
    # Before the change: the old batch job; after it: the bound service and a stranger.
    usage(deployment, changed_at - timedelta(hours=12), "batch-old", 40, 1)
    for day in range(calls_days):
        at = now - timedelta(days=day + 1)
        usage(deployment, at, identity.name, 100 + day, 2, identity=identity)
        usage(deployment, at, "mystery-svc", 7)
    # A finding (no owner), opened by the real detection engine.
    detection.run(kinds=[Finding.Kind.MISSING_OWNER])
    deployment.refresh_from_db()
    # A governance action by a committee member.
    services.deployment_set_status(
        actor=risk, deployment=deployment, status="quarantined", note="Incident 42"
    )
    deployment.refresh_from_db()
    return Incident(model, v3, v4, deployment, identity, changed_at)


@dataclass
class Graph:
    system: m.System
    nodes: list[m.Deployment]
    unapproved: m.Deployment
    drifting: m.Deployment
    withdrawn: m.Deployment


def build_pipeline(*, team, n: int = 50, width: int = 5) -> Graph:
    """A system of n deployments in layers of `width`, each feeding the next layer's
    same-position and next-position nodes; one runs an unapproved version, one drifts from
    its baseline, one is withdrawn; the rest run their approved baseline."""
    from tests.factories import SystemFactory

    system = SystemFactory(name="claims-pipeline", team=team)
    model = AIModelFactory(name="claims-model", team=team)
    approved = ModelVersionFactory(model=model, version="7", approval="approved")
    newer = ModelVersionFactory(model=model, version="8", approval="approved")
    pending = ModelVersionFactory(model=model, version="9", approval="pending")
    m.AIModel.objects.filter(pk=model.pk).update(baseline_version=approved)
    nodes = [
        DeploymentFactory(
            name=f"step-{i:02d}",
            model=model,
            team=team,
            system=system,
            observed_version=approved,
        )
        for i in range(n)
    ]
    unapproved, drifting, withdrawn = (
        nodes[n // 7],
        nodes[2 * n // 5],
        nodes[3 * n // 4],
    )
    m.Deployment.objects.filter(pk=unapproved.pk).update(observed_version=pending)
    m.Deployment.objects.filter(pk=drifting.pk).update(observed_version=newer)
    m.Deployment.objects.filter(pk=withdrawn.pk).update(status="withdrawn")
    edges = []
    for i, d in enumerate(nodes):
        for j in (i + width, i + width + 1):
            if j < n and (j % width) >= (i % width):
                edges.append(
                    m.Dependency(upstream=d, downstream=nodes[j], kind="pipeline")
                )
    m.Dependency.objects.bulk_create(edges)
    for d in (unapproved, drifting, withdrawn):
        d.refresh_from_db()
    return Graph(system, nodes, unapproved, drifting, withdrawn)
