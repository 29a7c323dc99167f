"""Built data for the release gate's tests: a clean production release, and its token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from governance.models import Finding
from inventory import models as m
from inventory import services
from tests.factories import AIModelFactory, DeploymentFactory, ModelVersionFactory

ALWAYS_OPEN = "Daily 00:00-24:00 UTC"


def clean_release(team: m.Team | None = None) -> dict[str, Any]:
    """An active model, an approved version and a healthy production deployment whose
    change window is always open: the gate allows it."""
    model = AIModelFactory(name="fraud-scorer", **({"team": team} if team else {}))
    version = ModelVersionFactory(model=model, version="4")
    deployment = DeploymentFactory(
        name="fraud-scorer-prod",
        model=model,
        observed_version=version,
        change_window=ALWAYS_OPEN,
        endpoint="https://fraud.internal/v1/score",
    )
    return {"model": model, "version": version, "deployment": deployment}


def finding(
    deployment: m.Deployment,
    *,
    severity: int = Finding.Severity.CRITICAL,
    status: str = Finding.Status.OPEN,
    kind: str = Finding.Kind.UNAPPROVED_VERSION,
    **fields: Any,
) -> Finding:
    return Finding.objects.create(
        kind=kind,
        subject_type=Finding.Subject.DEPLOYMENT,
        subject_id=deployment.pk,
        deployment=deployment,
        model=deployment.model,
        team=deployment.team,
        title=f"{kind} on {deployment.name}",
        severity=severity,
        status=status,
        queue=Finding.Queue.TEAM,
        evidence_key="k",
        **fields,
    )


def gate_token(*, scopes: tuple[str, ...] = ("gate",), days: int = 1):
    """A real token, issued by the inventory service (raw value returned once)."""
    return services.api_token_issue(
        actor=None, actor_label="tests", name="ci gate", scopes=list(scopes), days=days
    )


def expire(token: m.APIToken) -> None:
    m.APIToken.objects.filter(pk=token.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
