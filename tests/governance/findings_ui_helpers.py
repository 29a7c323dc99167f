"""Findings built directly for the findings-ui tests (the engine's own tests build them
from detectors)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.utils import timezone

from governance.models import Finding, FindingEvent
from tests.factories import DeploymentFactory

_n = [0]


def make_finding(
    *,
    team=None,
    owner=None,
    assignee=None,
    kind: str = Finding.Kind.MISSING_OWNER,
    severity: int = Finding.Severity.MEDIUM,
    tier: int = 3,
    status: str = Finding.Status.OPEN,
    opened_days_ago: int = 0,
    source: str = "manual",
    title: str | None = None,
    deployment=None,
    evidence: dict | None = None,
) -> Finding:
    """A finding on a (new) deployment of `team`, with its opened event."""
    _n[0] += 1
    if deployment is None:
        kwargs = {"owner": owner}
        if team is not None:
            kwargs["model__team"] = team
        deployment = DeploymentFactory(**kwargs)
    opened = timezone.now() - timedelta(days=opened_days_ago)
    evidence = evidence or {
        "facts": {"owner": None, "deployment": deployment.name},
        "records": [{"source": source, "what": "reported", "at": opened.isoformat()}],
    }
    finding = Finding.objects.create(
        kind=kind,
        subject_type=Finding.Subject.DEPLOYMENT,
        subject_id=deployment.pk,
        deployment=deployment,
        team=deployment.team,
        owner=owner,
        assignee=assignee,
        title=title or f"{kind} on {deployment.name}",
        severity=severity,
        tier=tier,
        status=status,
        queue=Finding.Queue.OWNER if assignee else Finding.Queue.TEAM,
        source=source,
        evidence=evidence,
        evidence_key=hashlib.sha256(str(evidence["facts"]).encode()).hexdigest(),
        opened_at=opened,
        first_opened_at=opened,
        last_seen_at=opened,
        resolved_at=opened if status == Finding.Status.RESOLVED else None,
    )
    FindingEvent.objects.create(
        finding=finding, kind=kind, action=FindingEvent.Action.OPENED, at=opened
    )
    return finding
