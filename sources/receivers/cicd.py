"""CI/CD deployment events: a pipeline says "I deployed model M version V to E at X".

Nothing is fetched: pipelines push events to POST /api/v1/deployment-events (see
sources/api/views_events.py), whose view hands the body to `CicdReceiver`: decode (the
serializer and the Idempotency-Key header) -> one event -> apply
(`deployment_event_record()` below, in a single transaction). `CicdSource` is the kind, so
that a CI/CD DataSource shows health in the sources list and owns the rows events create
(their `source` column is its label); it has nothing to fetch.

A version a pipeline deploys that nobody registered is created *pending approval*: an
unregistered version running in production is itself something governance must see.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.exceptions import ValidationError as BadRequest

import audit
from audit.actors import Actor
from audit.services import Change
from inventory import history
from inventory import models as m
from inventory.snapshots import snapshot
from sources import models as sm
from sources.api.serializers import DeploymentEventInSerializer
from sources.receivers.base import Receiver
from sources.receivers.baselines import baselines_from_approved
from sources.sync import services
from sources.sync.base import PushSource

CICD_KIND = "cicd"
CICD_SOURCE_NAME = "CI/CD deployment events"
EVENT_ACTION = "deployment.deploy_event"
OBSERVED_MODEL_NOTE = "Deployed by a CI/CD pipeline; not in any registry."


class CicdSource(PushSource):
    """The CI/CD kind: pushed events only, so no fetch and no apply; see CicdReceiver."""

    kind = CICD_KIND
    label = "CI/CD deployment events"
    description = (
        "Pipelines POST each deployment to /api/v1/deployment-events with a token that "
        "has the 'deploy' scope. Nothing is fetched."
    )
    owns = (m.AIModel, m.ModelVersion, m.Deployment)
    receiver = "sources.receivers.cicd.CicdReceiver"


@dataclass(frozen=True)
class DeployEvent:
    """A validated event, as the API's serializer hands it over."""

    model: str
    version: str
    environment: str
    endpoint: str
    deployment: str = ""
    commit: str = ""
    pipeline: str = ""
    pipeline_run: str = ""
    deployed_at: datetime | None = None
    idempotency_key: str = ""

    @property
    def key(self) -> str:
        """The sender's Idempotency-Key, else a digest of what makes the event itself."""
        if self.idempotency_key:
            return self.idempotency_key
        if not self.pipeline_run:
            return ""
        ident = "|".join(
            (self.pipeline_run, self.model, self.version, self.environment)
        )
        return "sha256:" + hashlib.sha256(ident.encode()).hexdigest()


def cicd_source(*, actor_label: str) -> sm.DataSource:
    """The CI/CD source, created on the first event if there is none yet."""
    source = sm.DataSource.objects.filter(kind=CICD_KIND).order_by("pk").first()
    if source is not None:
        return source
    try:
        with transaction.atomic():
            return services.source_create(
                actor=None,
                actor_label=actor_label,
                name=CICD_SOURCE_NAME,
                kind=CICD_KIND,
                schedule_minutes=0,
            )
    except (ValidationError, IntegrityError):
        # Another request created it first (or a source of another kind took the name).
        source = sm.DataSource.objects.filter(kind=CICD_KIND).order_by("pk").first()
        if source is not None:
            return source
        with transaction.atomic():
            return services.source_create(
                actor=None,
                actor_label=actor_label,
                name=f"{CICD_SOURCE_NAME} ({CICD_KIND})",
                kind=CICD_KIND,
                schedule_minutes=0,
            )


def duplicate_of(event: DeployEvent) -> sm.DeploymentEvent | None:
    """The event already recorded under the same key (Idempotency-Key or pipeline run)."""
    if not event.key:
        return None
    return (
        sm.DeploymentEvent.objects.filter(idempotency_key=event.key)
        .select_related("deployment", "model_version")
        .first()
    )


def _model(name: str, label: str, now: datetime, created: list[Change]) -> m.AIModel:
    """The model by name from any source (the registry's wins over observed ones)."""
    found = (
        m.AIModel.objects.filter(name=name)
        .order_by(F("gone_at").asc(nulls_first=True), "-id")
        .first()
    )
    if found is not None:
        return found
    model, was_created = m.AIModel.objects.get_or_create(
        source=label,
        external_id=f"model:{name}",
        defaults={
            "name": name,
            "lifecycle": m.AIModel.Lifecycle.ACTIVE,
            "description": OBSERVED_MODEL_NOTE,
            "seen_at": now,
        },
    )
    if was_created:
        created.append(
            Change("aimodel.create", model, None, snapshot(model), model.team_id)
        )
    return model


def _version(
    model: m.AIModel, version: str, label: str, now: datetime, created: list[Change]
) -> m.ModelVersion:
    found = m.ModelVersion.objects.filter(model=model, version=version).first()
    if found is not None:
        return found
    row = m.ModelVersion.objects.create(
        model=model,
        version=version,
        approval=m.ModelVersion.Approval.PENDING,
        source=label,
        external_id=f"version:{model.pk}:{version}",
        seen_at=now,
    )
    created.append(
        Change("modelversion.create", row, None, snapshot(row), model.team_id)
    )
    return row


# Deployment.external_id holds 500 characters; "<environment>|<endpoint>" can be 521.
EXTERNAL_ID_MAX = 500


def deployment_external_id(environment: str, endpoint: str) -> str:
    """The deployment's key: environment and endpoint, or a digest of a long endpoint.

    Keys that fit are unchanged; an endpoint too long for the column is keyed by its
    SHA-256, so the same long endpoint still finds the same deployment.
    """
    key = f"{environment}|{endpoint}"
    if len(key) <= EXTERNAL_ID_MAX:
        return key
    return f"{environment}|sha256:{hashlib.sha256(endpoint.encode()).hexdigest()}"


def _deployment_name(event: DeployEvent) -> str:
    if event.deployment:
        return event.deployment
    name = f"{event.model} @ {event.endpoint}"
    return name if len(name) <= 200 else name[:199] + "…"


def deployment_event_record(
    *, event: DeployEvent, token: m.APIToken
) -> tuple[sm.DeploymentEvent, bool]:
    """Apply one event; return (event row, created). The same event twice is recorded once.

    In one transaction: the CI/CD source (created if need be), the model and version
    (created if unknown), the deployment keyed "<environment>|<endpoint>" in the CI/CD
    source, the event row, the source's health, and the audit event.
    """
    existing = duplicate_of(event)
    if existing is not None:
        return existing, False
    try:
        return _record(event, token), True
    except IntegrityError:
        # A concurrent request recorded the same key a moment ago; all of ours rolled back.
        existing = duplicate_of(event)
        if existing is None:
            raise
        return existing, False


def _record(event: DeployEvent, token: m.APIToken) -> sm.DeploymentEvent:
    actor_label = f"token:{token.prefix}"
    with transaction.atomic():
        source = cicd_source(actor_label=actor_label)
        label = source.source_label
        now = timezone.now()
        # The push's audit events, written together at the end (one lock of the chain).
        events: list[Change] = []
        model = _model(event.model, label, now, events)
        version = _version(model, event.version, label, now, events)
        external_id = deployment_external_id(event.environment, event.endpoint)
        fields = {
            "name": _deployment_name(event),
            "model": model,
            "observed_version": version,
            "environment": event.environment,
            "endpoint": event.endpoint,
            "last_seen_at": now,
            "seen_at": now,
            "gone_at": None,
        }
        deployment = m.Deployment.objects.filter(
            source=label, external_id=external_id
        ).first()
        before = snapshot(deployment) if deployment is not None else None
        if deployment is None:
            try:
                with transaction.atomic():
                    deployment = m.Deployment.objects.create(
                        source=label,
                        external_id=external_id,
                        first_seen_at=now,
                        team_id=source.team_id,
                        **fields,
                    )
            except IntegrityError:
                # A concurrent event for the same endpoint created it: update that one.
                deployment = m.Deployment.objects.get(
                    source=label, external_id=external_id
                )
                before = snapshot(deployment)
            else:
                # New here: held to its model's approved version now, not next sync.
                baselines_from_approved(model_ids=[model.pk], source_label=label)
        if before is not None:
            for name, value in fields.items():
                setattr(deployment, name, value)
            deployment.save(update_fields=[*fields, "updated_at"])
        row = _event_create(event, now, deployment, version, token)
        sm.DataSource.objects.filter(pk=source.pk).update(
            health=sm.DataSource.Health.HEALTHY,
            last_run_at=now,
            last_success_at=now,
        )
        after = snapshot(deployment)
        deltas = history.diff_snapshots(deployment, before, after)
        history.record_changes(
            deltas=deltas, actor=Actor.token(token.prefix), source=label
        )
        events.append(
            Change(
                EVENT_ACTION,
                deployment,
                before,
                {
                    **after,
                    "deploy_event": {
                        "id": row.pk,
                        "model": event.model,
                        "version": event.version,
                        "environment": event.environment,
                        "endpoint": event.endpoint,
                        "commit": event.commit,
                        "pipeline": event.pipeline,
                        "pipeline_run": event.pipeline_run,
                        "deployed_at": event.deployed_at.isoformat()
                        if event.deployed_at
                        else None,
                    },
                },
                deployment.team_id,
            )
        )
        audit.record_many(actor=token.audit_actor(), changes=events)
        history.announce(
            objects={(e.target._meta.label_lower, e.target.pk) for e in events},
            source=label,
        )
        return row


def _event_create(
    event: DeployEvent,
    now: datetime,
    deployment: m.Deployment,
    version: m.ModelVersion,
    token: m.APIToken,
) -> sm.DeploymentEvent:
    return sm.DeploymentEvent.objects.create(
        received_at=now,
        model_name=event.model,
        version=event.version,
        environment=event.environment,
        endpoint=event.endpoint,
        deployment_name=event.deployment,
        commit=event.commit,
        pipeline=event.pipeline,
        pipeline_run=event.pipeline_run,
        deployed_at=event.deployed_at,
        deployment=deployment,
        model_version=version,
        sent_by=token.identity,
        idempotency_key=event.key,
    )


IDEMPOTENCY_KEY_MAX = 200
IDEMPOTENCY_KEY_TOO_LONG = f"At most {IDEMPOTENCY_KEY_MAX} characters."
IDEMPOTENCY_KEY_NOT_PRINTABLE = "Printable text only (no NUL or control characters)."


class CicdReceiver(Receiver[DeployEvent, DeployEvent, tuple[sm.DeploymentEvent, bool]]):
    """One deployment event: validated by the API's serializer, applied in one transaction.

    `decode` raises rest_framework's ValidationError (the API's 400 with field errors);
    one event is one batch, so `aggregate` is the base's identity.
    """

    kind = CICD_KIND

    def __init__(self, *, token: m.APIToken) -> None:
        self.token = token

    def decode(self, body: Any, headers: Mapping[str, str]) -> DeployEvent:
        key = headers.get("Idempotency-Key", "").strip()
        if len(key) > IDEMPOTENCY_KEY_MAX:
            raise BadRequest({"Idempotency-Key": [IDEMPOTENCY_KEY_TOO_LONG]})
        if not key.isprintable():
            raise BadRequest({"Idempotency-Key": [IDEMPOTENCY_KEY_NOT_PRINTABLE]})
        data = DeploymentEventInSerializer(data=body)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        return DeployEvent(
            model=v["model"],
            version=v["version"],
            environment=v["environment"],
            endpoint=v["endpoint"],
            deployment=v.get("deployment", ""),
            commit=v.get("commit", ""),
            pipeline=v.get("pipeline", ""),
            pipeline_run=v.get("pipeline_run", ""),
            deployed_at=v.get("deployed_at"),
            idempotency_key=key,
        )

    def apply(self, batch: DeployEvent) -> tuple[sm.DeploymentEvent, bool]:
        return deployment_event_record(event=batch, token=self.token)
