"""Data for the proof card tests: deployments built for each answer and each verdict."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governance.models import Finding
from inventory import models as m
from sources import models as sm
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
    UserFactory,
)

# A Monday, mid-morning: "Tue 02:00-04:00 UTC" next opens the next day at 02:00.
NOW = datetime(2026, 11, 30, 10, 30, tzinfo=UTC)
WINDOW = "Tue 02:00-04:00 UTC; CAB for model swaps"


def sources() -> tuple[sm.DataSource, sm.DataSource, sm.DataSource]:
    """A revoking source (AWS IAM), a non-revoking one (GCP keys) and a runtime (k8s)."""
    aws = sm.DataSource.objects.get_or_create(
        name="AWS prod", defaults={"kind": "aws_iam", "schedule_minutes": 0}
    )[0]
    gcp = sm.DataSource.objects.get_or_create(
        name="GCP keys", defaults={"kind": "gcp_keys", "schedule_minutes": 0}
    )[0]
    k8s = sm.DataSource.objects.get_or_create(
        name="Prod cluster", defaults={"kind": "kubernetes", "schedule_minutes": 0}
    )[0]
    return aws, gcp, k8s


def usage(deployment, *, hour, calls=10, errors=0, service="", user="", identity=None):
    return m.UsageHour.objects.create(
        deployment=deployment,
        hour=hour,
        caller_service=service,
        caller_user=user,
        identity=identity,
        calls=calls,
        errors=errors,
    )


def ready_deployment(team, *, owner=None, name="scorer-prod", now=NOW):
    """Every answer complete, verdict ready: a revocable owned identity, owner, window."""
    aws, _gcp, k8s = sources()
    owner = owner or UserFactory(teams=[team])
    model = AIModelFactory(team=team, name=f"{name}-model")
    version = ModelVersionFactory(model=model, version="4.0", digest="sha256:abc")
    model.baseline_version = version
    model.save(update_fields=["baseline_version"])
    deployment = DeploymentFactory(
        name=name,
        model=model,
        team=team,
        owner=owner,
        observed_version=version,
        platform="kubernetes",
        platform_locator="prod/scorer",
        change_window=WINDOW,
        source=k8s.source_label,
        external_id=f"{name}-ext",
        first_seen_at=now - timedelta(days=40),
        last_seen_at=now - timedelta(hours=1),
    )
    identity = IdentityFactory(
        name=f"{name}-svc",
        team=team,
        owner=owner,
        source=aws.source_label,
        external_id=f"{name}-key",
        issued_at=now - timedelta(days=100),
        rotated_at=now - timedelta(days=10),
        last_used_at=now - timedelta(hours=2),
        deployments=[deployment],
    )
    usage(
        deployment,
        hour=now - timedelta(hours=3),
        calls=50,
        errors=2,
        service=identity.name,
        identity=identity,
    )
    return deployment, identity


def finding(deployment, *, status="open", severity=3, kind="version_drift"):
    return Finding.objects.create(
        kind=kind,
        subject_type="deployment",
        subject_id=deployment.pk,
        deployment=deployment,
        model=deployment.model,
        team=deployment.team,
        title=f"{kind} on {deployment.name}",
        severity=severity,
        status=status,
        queue="owner",
        evidence_key=f"{kind}-{deployment.pk}-{status}",
        resolved_at=NOW if status == "resolved" else None,
    )


def grow(deployment, n: int, *, now=NOW) -> None:
    """More of everything the card reads: identities, callers, history, findings,
    downstream deployments (for the query count at two sizes)."""
    aws, gcp, _ = sources()
    team = deployment.team
    previous = deployment
    for i in range(n):
        ident = IdentityFactory(
            team=team,
            source=(aws if i % 2 else gcp).source_label,
            external_id=f"grow-{deployment.pk}-{i}",
            owner=deployment.owner,
            deployments=[deployment],
        )
        usage(
            deployment,
            hour=now - timedelta(hours=5 + i),
            service=ident.name,
            identity=ident,
        )
        usage(deployment, hour=now - timedelta(hours=5 + i), service=f"stranger-{i}")
        m.FieldChange.objects.create(
            object_type="inventory.deployment",
            object_id=deployment.pk,
            field=["endpoint", "status", "exposure"][i % 3],
            before="a",
            after="b",
            changed_at=now - timedelta(days=i + 1),
            source=aws.source_label,
        )
        finding(deployment, kind=Finding.Kind.values[i % len(Finding.Kind.values)])
        if i == 0:  # a withdrawal in the past: the card measures it
            m.FieldChange.objects.create(
                object_type="inventory.deployment",
                object_id=deployment.pk,
                field="status",
                before="active",
                after="withdrawn",
                changed_at=now - timedelta(days=3),
                actor_kind="person",
                actor_label="rita",
            )
        child = DeploymentFactory(model=deployment.model, team=team)
        m.Dependency.objects.create(upstream=previous, downstream=child)
        previous = child if i % 4 == 3 else previous  # depth n/4: within the bound
