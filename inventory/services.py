"""Writes to the inventory. Views, the admin, the API and commands all call these.

Each service checks permission, validates, writes in one transaction and records the
change in the audit trail (`audit.record`) in that same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

import audit
from audit.actors import Actor, ActorKind
from audit.services import Change
from inventory import cascades, history, permissions, summary
from inventory import models as m
from inventory.snapshots import snapshot

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    User = AbstractBaseUser

TOKEN_UNKNOWN_SCOPE = "Unknown scope {scope!r}; choose from {choices}."
TOKEN_NO_SCOPES = "Give the token at least one scope."
TOKEN_DAYS_RANGE = "A token lives between 1 and 730 days."
TOKEN_ALREADY_REVOKED = "This token was already revoked."
TEAM_CHANGE_NOT_YOURS = "You can only move an object to one of your own teams."
GOVERNED_STATE_VIA_SERVICE = (
    "{fields} change only through their own decision (the approval, lifecycle, status or "
    "baseline forms), not an edit."
)
# Fields with one writer each (the services at the end of this module): a generic update
# that would change them is refused, whoever asks.
GOVERNED_FIELDS: dict[type[Model], tuple[str, ...]] = {
    m.ModelVersion: ("approval", "approved_by_id", "approved_at"),
    m.AIModel: ("lifecycle", "baseline_version_id"),
    m.Deployment: ("status", "approved_version_id"),
}


def governed_changes(stored: Model, instance: Model) -> list[str]:
    """The governed fields `instance` changed in memory against the `stored` row."""
    return [
        name
        for name in GOVERNED_FIELDS.get(type(instance), ())
        if getattr(stored, name) != getattr(instance, name)
    ]


def owning_team_id(obj: Model) -> int | None:
    if isinstance(obj, m.Team):
        return obj.pk
    if isinstance(obj, m.ModelVersion):
        return obj.model.team_id
    if isinstance(obj, m.Dependency):
        return obj.downstream.team_id
    if isinstance(obj, m.APIToken):
        return None
    return getattr(obj, "team_id", None)


def change_record(
    *,
    actor: User | None,
    action: str,
    target: Model,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    actor_label: str = "",
) -> None:
    """Record a change in the audit trail; call inside the writing transaction."""
    audit.record(
        actor=actor,
        actor_label=actor_label,
        action=action,
        target=target,
        before=before,
        after=after,
        team_id=owning_team_id(target),
    )


def hand_history(*, actor: Any, deltas: list[history.Delta]) -> None:
    """History rows (and change notices) for governed fields changed through a service: by
    hand, or by a source (a registry reporting an approval), whose label they then carry."""
    if deltas:
        source = ""
        if isinstance(actor, Actor) and actor.kind == ActorKind.SOURCE:
            source = actor.label
        history.record_changes(deltas=deltas, actor=actor, source=source)
        history.announce(objects=history.changed_objects(deltas), source=source)


def _action_name(obj: Model, verb: str) -> str:
    return f"{obj._meta.model_name}.{verb}"


def _set_m2m(obj: Model, m2m: dict[str, Iterable[Any]] | None) -> None:
    for name, values in (m2m or {}).items():
        getattr(obj, name).set(values)


def _require_owned_team(actor: User, obj: Model) -> None:
    """An owner may only put an object in one of their teams (or own it personally)."""
    if permissions.is_admin(actor):
        return
    if not permissions.owns(actor, obj):
        raise PermissionDenied(TEAM_CHANGE_NOT_YOURS)


@transaction.atomic
def object_create(
    *, actor: User, instance: Model, m2m: dict[str, Iterable[Any]] | None = None
) -> Model:
    if not permissions.can_create(actor, type(instance)):
        raise PermissionDenied(permissions.ADMIN_ONLY)
    _require_owned_team(actor, instance)
    instance.full_clean()
    dependencies = (
        history.dependency_ids([instance.downstream_id])
        if isinstance(instance, m.Dependency)
        else None
    )
    instance.save()
    _set_m2m(instance, m2m)
    after = snapshot(instance)
    change_record(
        actor=actor,
        action=_action_name(instance, "create"),
        target=instance,
        before=None,
        after=after,
    )
    deltas = history.dependency_deltas(dependencies) if dependencies else []
    if isinstance(instance, m.NonHumanIdentity) and after.get("deployments"):
        deltas += history.binding_deltas(
            {instance.pk: (set(), set(after["deployments"]))}
        )
    hand_history(actor=actor, deltas=deltas)
    _announce_edit(instance, already=history.changed_objects(deltas))
    return instance


@transaction.atomic
def object_update(
    *, actor: User, instance: Model, m2m: dict[str, Iterable[Any]] | None = None
) -> Model:
    """Save changes made to `instance` in memory; the stored row is the "before"."""
    stored = type(instance)._default_manager.get(pk=instance.pk)
    permissions.require_change(actor, stored)
    _require_owned_team(actor, instance)
    if (
        isinstance(instance, m.ModelVersion)
        and not permissions.can_approve_versions(actor)
        and (instance.approval, instance.approved_by_id)
        != (stored.approval, stored.approved_by_id)
    ):
        raise PermissionDenied(permissions.APPROVAL_RISK_ONLY)
    changed = governed_changes(stored, instance)
    if changed:
        raise PermissionDenied(
            GOVERNED_STATE_VIA_SERVICE.format(fields=", ".join(changed).capitalize())
        )
    before = snapshot(stored)
    instance.full_clean()
    instance.save()
    _set_m2m(instance, m2m)
    after = snapshot(instance)
    if after != before:
        change_record(
            actor=actor,
            action=_action_name(instance, "update"),
            target=instance,
            before=before,
            after=after,
        )
        deltas = history.diff_snapshots(instance, before, after)
        hand_history(actor=actor, deltas=deltas)
        _announce_edit(instance, already=history.changed_objects(deltas))
    return instance


# Objects whose findings and tiers depend on what a person types (owner, purpose, change
# window, exposure, …): an edit announces them, like a source's change, so the change
# consumer concludes within seconds rather than at the nightly run.
ANNOUNCED_ON_EDIT = (
    m.Deployment,
    m.NonHumanIdentity,
    m.AIModel,
    m.ModelVersion,
    m.System,
    m.Dependency,
)


def _announce_edit(
    instance: Model, already: set[tuple[str, int]] = frozenset()
) -> None:
    """Announce the edited object, unless its history rows already did."""
    pair = (instance._meta.label_lower, instance.pk)
    if isinstance(instance, ANNOUNCED_ON_EDIT) and pair not in already:
        history.announce(objects=[pair])


@transaction.atomic
def object_delete(*, actor: User, instance: Model) -> None:
    if not permissions.can_delete(actor, instance):
        raise PermissionDenied(permissions.ADMIN_ONLY)
    _delete_audited(
        actor=actor, instance=instance, action=_action_name(instance, "delete")
    )


def _delete_audited(*, actor: User | None, instance: Model, action: str) -> None:
    """Delete with one event for the object and one for each governed row its delete
    removes or changes by cascade (versions, dependencies, bindings, version references)."""
    before = snapshot(instance)
    events, deltas, counts = cascades.collect(instance, owning_team_id)
    if counts:
        before["cascade"] = counts
    # Record first: the targets still exist, and a failed delete rolls the record back too.
    audit.record_many(
        actor=actor,
        changes=[
            Change(action, instance, before, None, owning_team_id(instance)),
            *events,
        ],
    )
    edges = (
        history.dependency_ids([instance.downstream_id])
        if isinstance(instance, m.Dependency)
        else None
    )
    instance.delete()
    if edges:
        deltas += history.dependency_deltas(edges)
    hand_history(actor=actor, deltas=deltas)


@transaction.atomic
def dependency_remove(*, actor: User, dependency: m.Dependency) -> None:
    """Owners of the downstream deployment may remove its edges (object_delete is admin-only)."""
    permissions.require_change(actor, dependency.downstream)
    _delete_audited(actor=actor, instance=dependency, action="dependency.delete")


IDENTITY_ALREADY_BOUND = "This identity can already invoke that deployment."
IDENTITY_NOT_BOUND = "This identity is not bound to that deployment."


@transaction.atomic
def identity_bind(
    *, actor: User, identity: m.NonHumanIdentity, deployment: m.Deployment
) -> None:
    """Record that `identity` can invoke `deployment` (the owner of the identity decides)."""
    permissions.require_change(actor, identity)
    before = snapshot(identity)
    if deployment.pk in before["deployments"]:
        raise ValidationError(IDENTITY_ALREADY_BOUND)
    identity.deployments.add(deployment)
    after = snapshot(identity)
    change_record(
        actor=actor,
        action="nonhumanidentity.bind",
        target=identity,
        before=before,
        after=after,
    )
    hand_history(actor=actor, deltas=history.diff_snapshots(identity, before, after))


@transaction.atomic
def identity_unbind(
    *, actor: User, identity: m.NonHumanIdentity, deployment: m.Deployment
) -> None:
    permissions.require_change(actor, identity)
    before = snapshot(identity)
    if deployment.pk not in before["deployments"]:
        raise ValidationError(IDENTITY_NOT_BOUND)
    identity.deployments.remove(deployment)
    after = snapshot(identity)
    change_record(
        actor=actor,
        action="nonhumanidentity.unbind",
        target=identity,
        before=before,
        after=after,
    )
    hand_history(actor=actor, deltas=history.diff_snapshots(identity, before, after))


# ---------------------------------------------------------------------------
# API tokens
# ---------------------------------------------------------------------------
TOKEN_PREFIX = "rp"


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def api_token_issue(
    *,
    actor: User | None,
    name: str,
    scopes: Iterable[str],
    days: int,
    actor_label: str = "",
) -> tuple[m.APIToken, str]:
    """Issue a token; return it with its raw value, which is shown once and never stored."""
    if actor is not None:
        permissions.require_admin(actor)
    scopes = sorted(set(scopes))
    if not scopes:
        raise ValidationError(TOKEN_NO_SCOPES)
    valid = set(m.APIToken.Scope.values)
    for scope in scopes:
        if scope not in valid:
            raise ValidationError(
                TOKEN_UNKNOWN_SCOPE.format(
                    scope=scope, choices=", ".join(sorted(valid))
                )
            )
    if not 1 <= days <= 730:
        raise ValidationError(TOKEN_DAYS_RANGE)
    now = timezone.now()
    prefix = secrets.token_hex(6)
    raw = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    identity = m.NonHumanIdentity(
        name=f"Runproof API token: {name}",
        kind=m.NonHumanIdentity.Kind.RUNPROOF_TOKEN,
        provider="runproof",
        source="runproof",
        external_id=f"apitoken:{prefix}",
        scopes=scopes,
        issued_at=now,
        expires_at=now + timedelta(days=days),
        owner=actor,
    )
    identity.full_clean()
    identity.save()
    token = m.APIToken(
        name=name,
        prefix=prefix,
        token_hash=token_hash(raw),
        scopes=scopes,
        identity=identity,
        created_by=actor,
        created_at=now,
        expires_at=identity.expires_at,
    )
    token.full_clean()
    token.save()
    change_record(
        actor=actor,
        actor_label=actor_label,
        action="apitoken.issue",
        target=token,
        before=None,
        after=snapshot(token),
    )
    _announce_edit(identity)
    return token, raw


@transaction.atomic
def api_token_revoke(
    *, actor: User | None, token: m.APIToken, actor_label: str = ""
) -> m.APIToken:
    if actor is not None:
        permissions.require_admin(actor)
    now = timezone.now()
    # Claim the revocation: a second, concurrent revoke updates nothing.
    if not m.APIToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=now
    ):
        raise ValidationError(TOKEN_ALREADY_REVOKED)
    before = snapshot(token)
    token.refresh_from_db()
    m.NonHumanIdentity.objects.filter(pk=token.identity_id).update(
        status=m.NonHumanIdentity.Status.REVOKED, updated_at=now
    )
    summary.mark_objects(m.NonHumanIdentity, [token.identity_id])
    change_record(
        actor=actor,
        actor_label=actor_label,
        action="apitoken.revoke",
        target=token,
        before=before,
        after=snapshot(token),
    )
    return token


def api_token_authenticate(raw: str) -> m.APIToken | None:
    """The active token for a raw bearer value, or None. Compares hashes in constant time."""
    if not raw.isprintable():
        return None  # a NUL or a control character is no token (PostgreSQL refuses NUL)
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    token = (
        m.APIToken.objects.select_related("identity").filter(prefix=parts[1]).first()
    )
    if token is None or not hmac.compare_digest(token.token_hash, token_hash(raw)):
        return None
    if not token.is_active:
        return None
    now = timezone.now()
    # Touch last-used at most once a minute, so a busy client does not write on every call.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        m.APIToken.objects.filter(pk=token.pk).update(last_used_at=now)
        m.NonHumanIdentity.objects.filter(pk=token.identity_id).update(last_used_at=now)
        summary.mark_later(m.NonHumanIdentity, [token.identity_id])
        token.last_used_at = now
    return token


# ---------------------------------------------------------------------------
# Governed state: one writer each. A version's approval, a model's lifecycle and baseline,
# a deployment's status and baseline pin change only here: the committee's pages (in
# governance) and the registry's sync (in sources) both call these; no form or admin page
# saves those fields. Each checks the from-state against an explicit table and records
# its own audit event in the writing transaction.
# ---------------------------------------------------------------------------
Approval = m.ModelVersion.Approval
Lifecycle = m.AIModel.Lifecycle
DeploymentStatus = m.Deployment.Status

# The committee's moves of a version's approval. Retired is final; a rejected version goes
# back to pending (resubmitted) before it can be approved.
APPROVAL_TRANSITIONS: dict[str, frozenset[str]] = {
    Approval.PENDING: frozenset({Approval.APPROVED, Approval.REJECTED}),
    Approval.APPROVED: frozenset({Approval.DEPRECATED, Approval.RETIRED}),
    Approval.DEPRECATED: frozenset({Approval.RETIRED}),
    Approval.REJECTED: frozenset({Approval.PENDING}),
    Approval.RETIRED: frozenset(),
}
# The moves a registry may report. Wider than the committee's (an alias that moves away
# takes an approved version back to pending; a revoke tag rejects it), but nothing leaves
# Retired: a registry that says otherwise is recorded as a skipped record, not applied.
REGISTRY_APPROVAL_TRANSITIONS: dict[str, frozenset[str]] = {
    Approval.PENDING: frozenset(
        {Approval.APPROVED, Approval.REJECTED, Approval.DEPRECATED, Approval.RETIRED}
    ),
    Approval.APPROVED: frozenset(
        {Approval.PENDING, Approval.REJECTED, Approval.DEPRECATED, Approval.RETIRED}
    ),
    Approval.REJECTED: frozenset(
        {Approval.PENDING, Approval.APPROVED, Approval.DEPRECATED, Approval.RETIRED}
    ),
    Approval.DEPRECATED: frozenset(
        {Approval.PENDING, Approval.APPROVED, Approval.REJECTED, Approval.RETIRED}
    ),
    Approval.RETIRED: frozenset(),
}
# The audit action recorded for a move to each state: modelversion.<verb>.
APPROVAL_VERBS: dict[str, str] = {
    Approval.APPROVED: "approve",
    Approval.REJECTED: "reject",
    Approval.DEPRECATED: "deprecate",
    Approval.RETIRED: "retire",
    Approval.PENDING: "reopen",
}
LIFECYCLE_TRANSITIONS: dict[str, frozenset[str]] = {
    Lifecycle.DEVELOPMENT: frozenset({Lifecycle.ACTIVE, Lifecycle.RETIRED}),
    Lifecycle.ACTIVE: frozenset({Lifecycle.DEPRECATED, Lifecycle.RETIRED}),
    Lifecycle.DEPRECATED: frozenset({Lifecycle.ACTIVE, Lifecycle.RETIRED}),
    Lifecycle.RETIRED: frozenset(),
}
LIFECYCLE_VERBS: dict[str, str] = {
    Lifecycle.DEVELOPMENT: "develop",
    Lifecycle.ACTIVE: "activate",
    Lifecycle.DEPRECATED: "deprecate",
    Lifecycle.RETIRED: "retire",
}
DEPLOYMENT_STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    DeploymentStatus.ACTIVE: frozenset(
        {DeploymentStatus.QUARANTINED, DeploymentStatus.WITHDRAWN}
    ),
    DeploymentStatus.QUARANTINED: frozenset(
        {DeploymentStatus.ACTIVE, DeploymentStatus.WITHDRAWN}
    ),
    DeploymentStatus.WITHDRAWN: frozenset({DeploymentStatus.ACTIVE}),
}
DEPLOYMENT_STATUS_VERBS: dict[str, str] = {
    DeploymentStatus.ACTIVE: "reactivate",
    DeploymentStatus.QUARANTINED: "quarantine",
    DeploymentStatus.WITHDRAWN: "withdraw",
}
APPROVAL_NOTE_MAX = 1000

APPROVAL_TRANSITION_NOT_ALLOWED = (
    "A version that is “{current}” cannot become “{target}”."
)
APPROVAL_UNKNOWN = "Unknown approval state {approval!r}."
APPROVAL_NOTE_TOO_LONG = f"Keep the note under {APPROVAL_NOTE_MAX} characters."
REGISTRY_MOVE_REFUSED = (
    "The registry reports {name} as “{target}”, but a version that is “{current}” "
    "cannot become “{target}”; kept “{current}”."
)
LIFECYCLE_TRANSITION_NOT_ALLOWED = (
    "A model that is “{current}” cannot become “{target}”."
)
LIFECYCLE_UNKNOWN = "Unknown lifecycle {lifecycle!r}."
REGISTRY_LIFECYCLE_REFUSED = (
    "The registry reports the model {name} as “{target}”, but a model that is "
    "“{current}” cannot become “{target}”; kept “{current}”."
)
STATUS_TRANSITION_NOT_ALLOWED = (
    "A deployment that is “{current}” cannot become “{target}”."
)
STATUS_UNKNOWN = "Unknown deployment status {status!r}."
BASELINE_NOT_APPROVED = (
    "Only an approved version can be a baseline; {version} is “{approval}”."
)
BASELINE_OTHER_MODEL = "{version} is a version of another model."
BASELINE_VERSION_GONE = "Version #{id} no longer exists."
GOVERN_COMMITTEE_ONLY = (
    "Only the risk committee or an administrator can change a model's lifecycle, a "
    "deployment's status or a baseline."
)


def _label(choices: type, value: str) -> str:
    return dict(choices.choices).get(value, value)


def _clean_note(note: str) -> str:
    """A decision's note, as kept with its audit event."""
    note = note.strip()
    if len(note) > APPROVAL_NOTE_MAX:
        raise ValidationError(APPROVAL_NOTE_TOO_LONG)
    return note


def _require_committee(actor: Any, message: str) -> None:
    """People must be on the committee; sources and the system act as the registry does
    (their callers are the sync engine and management commands, not a request)."""
    if isinstance(actor, Actor):
        return
    if not permissions.can_approve_versions(actor):
        raise PermissionDenied(message)


def approval_targets(approval: str) -> list[str]:
    """The states a version in `approval` may move to, in the model's choice order."""
    allowed = APPROVAL_TRANSITIONS.get(approval, frozenset())
    return [value for value in Approval.values if value in allowed]


def lifecycle_targets(lifecycle: str) -> list[str]:
    allowed = LIFECYCLE_TRANSITIONS.get(lifecycle, frozenset())
    return [value for value in Lifecycle.values if value in allowed]


def deployment_status_targets(status: str) -> list[str]:
    allowed = DEPLOYMENT_STATUS_TRANSITIONS.get(status, frozenset())
    return [value for value in DeploymentStatus.values if value in allowed]


@transaction.atomic
def model_version_set_approval(
    *,
    actor: Any,
    version: m.ModelVersion,
    approval: str,
    note: str = "",
    make_baseline: bool = False,
) -> m.ModelVersion:
    """The risk committee approves, rejects, deprecates, retires or reopens a version.

    With `make_baseline`, an approval also makes the version its model's baseline, so every
    deployment of the model without a pin of its own is held to it (its own event).
    """
    _require_committee(actor, permissions.APPROVAL_RISK_ONLY)
    if approval not in Approval.values:
        raise ValidationError(APPROVAL_UNKNOWN.format(approval=approval))
    note = _clean_note(note)

    # Judge the move from the stored state, not from a copy the caller may have held for a
    # while: two reviewers acting at once must not both move the same version.
    version.refresh_from_db(from_queryset=m.ModelVersion.objects.select_for_update())
    current = version.approval
    if approval not in APPROVAL_TRANSITIONS.get(current, frozenset()):
        raise ValidationError(
            APPROVAL_TRANSITION_NOT_ALLOWED.format(
                current=_label(Approval, current), target=_label(Approval, approval)
            )
        )

    before = snapshot(version)
    version.approval = approval
    update_fields = ["approval", "updated_at"]
    if approval == Approval.APPROVED:
        person = None if isinstance(actor, Actor) else actor
        version.approved_by, version.approved_at = person, timezone.now()
        update_fields += ["approved_by", "approved_at"]
    version.full_clean()
    version.save(update_fields=update_fields)

    after = snapshot(version)
    if note:
        # Kept with the event, not the version: the reason belongs to this decision.
        after["approval_note"] = note
    change_record(
        actor=actor,
        action=f"modelversion.{APPROVAL_VERBS[approval]}",
        target=version,
        before=before,
        after=after,
    )
    hand_history(actor=actor, deltas=history.diff_snapshots(version, before, after))
    if make_baseline and approval == Approval.APPROVED:
        aimodel_set_baseline(actor=actor, model=version.model, version=version)
    return version


@dataclass(frozen=True)
class ReportedApproval:
    """What a registry says of one stored version."""

    version_id: int
    approval: str
    approved_at: Any = None
    created: bool = False  # the sync created the row with this approval just now


@transaction.atomic
def model_versions_registry_report(
    *, actor: Actor, reports: Iterable[ReportedApproval]
) -> dict[int, str]:
    """Apply a registry's approvals, each move its own audit event with the source as actor.

    A move REGISTRY_APPROVAL_TRANSITIONS forbids is not applied: its reason is returned
    ({version id: reason}) for the sync to record as a skipped record. A row the sync has
    just created with a non-pending approval is the move pending -> that approval.
    """
    reports = {r.version_id: r for r in reports}
    if not reports:
        return {}
    versions = m.ModelVersion.objects.select_for_update().filter(pk__in=reports)
    refused: dict[int, str] = {}
    changes: list[Change] = []
    moved: list[m.ModelVersion] = []
    for version in versions.select_related("model"):
        report = reports[version.pk]
        current = Approval.PENDING if report.created else version.approval
        if report.approval == current:
            continue
        if report.approval not in REGISTRY_APPROVAL_TRANSITIONS.get(current, ()):
            refused[version.pk] = REGISTRY_MOVE_REFUSED.format(
                name=str(version),
                current=_label(Approval, current),
                target=_label(Approval, report.approval),
            )
            continue
        before = {**snapshot(version), "approval": current}
        if report.created:
            before["approved_at"] = None
        # A row the sync has just created already holds what the registry reported:
        # the move is audited, but there is nothing to write again.
        stored_as_reported = (version.approval, version.approved_at) == (
            report.approval,
            report.approved_at,
        )
        version.approval = report.approval
        version.approved_at = report.approved_at
        if not stored_as_reported:
            moved.append(version)
        changes.append(
            Change(
                action=f"modelversion.{APPROVAL_VERBS[report.approval]}",
                target=version,
                before=before,
                after=snapshot(version),
                team_id=version.model.team_id,
            )
        )
    if moved:
        now = timezone.now()
        for version in moved:
            version.updated_at = now
        m.ModelVersion.objects.bulk_update(
            moved, ["approval", "approved_at", "updated_at"], batch_size=500
        )
    if changes:
        audit.record_many(actor=actor, changes=changes)
        hand_history(
            actor=actor,
            deltas=[
                delta
                for change in changes
                for delta in history.diff_snapshots(
                    change.target, change.before, change.after
                )
            ],
        )
    return refused


@transaction.atomic
def aimodel_set_lifecycle(
    *, actor: Any, model: m.AIModel, lifecycle: str, note: str = ""
) -> m.AIModel:
    """Move a model through its lifecycle (the committee, or the registry retiring it)."""
    _require_committee(actor, GOVERN_COMMITTEE_ONLY)
    if lifecycle not in Lifecycle.values:
        raise ValidationError(LIFECYCLE_UNKNOWN.format(lifecycle=lifecycle))
    note = _clean_note(note)
    model.refresh_from_db(from_queryset=m.AIModel.objects.select_for_update())
    current = model.lifecycle
    if lifecycle not in LIFECYCLE_TRANSITIONS.get(current, frozenset()):
        if isinstance(actor, Actor) and actor.kind == ActorKind.SOURCE:
            message = REGISTRY_LIFECYCLE_REFUSED.format(
                name=model.name,
                current=_label(Lifecycle, current),
                target=_label(Lifecycle, lifecycle),
            )
        else:
            message = LIFECYCLE_TRANSITION_NOT_ALLOWED.format(
                current=_label(Lifecycle, current), target=_label(Lifecycle, lifecycle)
            )
        raise ValidationError(message)
    before = snapshot(model)
    model.lifecycle = lifecycle
    model.save(update_fields=["lifecycle", "updated_at"])
    after = snapshot(model)
    if note:
        after["lifecycle_note"] = note
    change_record(
        actor=actor,
        action=f"aimodel.{LIFECYCLE_VERBS[lifecycle]}",
        target=model,
        before=before,
        after=after,
    )
    return model


@transaction.atomic
def aimodels_set_lifecycle(
    *, actor: Any, model_ids: Iterable[int], lifecycle: str
) -> dict[int, str]:
    """`aimodel_set_lifecycle` for many models at once (a registry retiring models in a
    sync): the same transition table, one event per model that moved, a constant number
    of queries. Returns {model id: reason} for the moves the table forbids (not applied)."""
    _require_committee(actor, GOVERN_COMMITTEE_ONLY)
    if lifecycle not in Lifecycle.values:
        raise ValidationError(LIFECYCLE_UNKNOWN.format(lifecycle=lifecycle))
    models_ = list(
        m.AIModel.objects.select_for_update()
        .filter(pk__in=list(model_ids))
        .order_by("pk")
    )
    refused: dict[int, str] = {}
    moved: list[m.AIModel] = []
    changes: list[Change] = []
    now = timezone.now()
    source = isinstance(actor, Actor) and actor.kind == ActorKind.SOURCE
    for model in models_:
        current = model.lifecycle
        if current == lifecycle:
            continue
        if lifecycle not in LIFECYCLE_TRANSITIONS.get(current, frozenset()):
            template = (
                REGISTRY_LIFECYCLE_REFUSED
                if source
                else LIFECYCLE_TRANSITION_NOT_ALLOWED
            )
            refused[model.pk] = template.format(
                name=model.name,
                current=_label(Lifecycle, current),
                target=_label(Lifecycle, lifecycle),
            )
            continue
        _move(model, now, moved, changes, lifecycle=lifecycle)
    _save_moves(actor, moved, changes, ["lifecycle", "updated_at"])
    return refused


def _move(
    model: m.AIModel,
    now: Any,
    moved: list[m.AIModel],
    changes: list[Change],
    **fields: Any,
) -> None:
    """Set `fields` on a model a batched service moves, and note its audit change (the
    action named after the field: a lifecycle's verb, or `aimodel.baseline`)."""
    before = snapshot(model)
    for name, value in fields.items():
        setattr(model, name, value)
    model.updated_at = now
    moved.append(model)
    lifecycle = fields.get("lifecycle")
    changes.append(
        Change(
            action=f"aimodel.{LIFECYCLE_VERBS[lifecycle]}"
            if lifecycle
            else "aimodel.baseline",
            target=model,
            before=before,
            after=snapshot(model),
            team_id=owning_team_id(model),
        )
    )


def _save_moves(
    actor: Any, moved: list[m.AIModel], changes: list[Change], fields: list[str]
) -> None:
    """One bulk UPDATE of what a batched service moved, one audit write of its events,
    and the dashboard's marks: a bulk UPDATE sends no signal, and a model's lifecycle or
    baseline moves counts in its deployments' and identities' teams (`summary.teams_of`).
    Its callers are syncs, so the teams are recounted by beat or the next dashboard read."""
    if moved:
        m.AIModel.objects.bulk_update(moved, fields, batch_size=500)
        audit.record_many(actor=actor, changes=changes)
        summary.mark_objects(m.AIModel, [model.pk for model in moved], inline=False)


def _check_baseline(model: m.AIModel, version: m.ModelVersion | None) -> None:
    if version is None:
        return
    if version.model_id != model.pk:
        raise ValidationError(BASELINE_OTHER_MODEL.format(version=version))
    if version.approval != Approval.APPROVED:
        raise ValidationError(
            BASELINE_NOT_APPROVED.format(
                version=version, approval=version.get_approval_display()
            )
        )


@transaction.atomic
def aimodel_set_baseline(
    *, actor: Any, model: m.AIModel, version: m.ModelVersion | None
) -> m.AIModel:
    """Mark the approved version a model's deployments are held to (None clears it)."""
    _require_committee(actor, GOVERN_COMMITTEE_ONLY)
    model.refresh_from_db(from_queryset=m.AIModel.objects.select_for_update())
    if version is not None:
        version.refresh_from_db()
    _check_baseline(model, version)
    new_id = version.pk if version else None
    if model.baseline_version_id == new_id:
        return model
    before = snapshot(model)
    model.baseline_version = version
    model.save(update_fields=["baseline_version", "updated_at"])
    change_record(
        actor=actor,
        action="aimodel.baseline",
        target=model,
        before=before,
        after=snapshot(model),
    )
    return model


@transaction.atomic
def aimodels_set_baselines(
    *, actor: Any, targets: dict[int, int | None]
) -> dict[int, str]:
    """`aimodel_set_baseline` for many models at once ({model id: version id or None}),
    with the same checks and one `aimodel.baseline` event per model that moved, in a
    constant number of queries (a registry's sync sets a thousand at a time).

    Returns {model id: reason} for the moves `_check_baseline` refused; those models keep
    their baseline. Unknown model ids are ignored.
    """
    _require_committee(actor, GOVERN_COMMITTEE_ONLY)
    if not targets:
        return {}
    models_ = list(
        m.AIModel.objects.select_for_update()
        .filter(pk__in=list(targets))
        .order_by("pk")
    )
    # With their model: a refusal's message names the version ("model 1.2").
    versions = m.ModelVersion.objects.select_related("model").in_bulk(
        [v for v in targets.values() if v is not None]
    )
    refused: dict[int, str] = {}
    moved: list[m.AIModel] = []
    changes: list[Change] = []
    now = timezone.now()
    for model in models_:
        wanted = targets[model.pk]
        version = versions.get(wanted) if wanted is not None else None
        if wanted is not None and version is None:
            refused[model.pk] = BASELINE_VERSION_GONE.format(id=wanted)
            continue
        try:
            _check_baseline(model, version)
        except ValidationError as exc:
            refused[model.pk] = " ".join(exc.messages)
            continue
        if model.baseline_version_id == wanted:
            continue
        _move(model, now, moved, changes, baseline_version=version)
    _save_moves(actor, moved, changes, ["baseline_version", "updated_at"])
    return refused


@transaction.atomic
def deployment_pin_baseline(
    *, actor: Any, deployment: m.Deployment, version: m.ModelVersion | None
) -> m.Deployment:
    """The committee pins the version one deployment must run (None: its model's baseline)."""
    _require_committee(actor, GOVERN_COMMITTEE_ONLY)
    deployment.refresh_from_db(from_queryset=m.Deployment.objects.select_for_update())
    if version is not None:
        version.refresh_from_db()
    _check_baseline(deployment.model, version)
    new_id = version.pk if version else None
    if deployment.approved_version_id == new_id:
        return deployment
    before = snapshot(deployment)
    deployment.approved_version = version
    deployment.save(update_fields=["approved_version", "updated_at"])
    change_record(
        actor=actor,
        action="deployment.pin" if version else "deployment.unpin",
        target=deployment,
        before=before,
        after=snapshot(deployment),
    )
    return deployment


@transaction.atomic
def deployment_set_status(
    *, actor: Any, deployment: m.Deployment, status: str, note: str = ""
) -> m.Deployment:
    """Quarantine, withdraw or reactivate a deployment."""
    _require_committee(actor, GOVERN_COMMITTEE_ONLY)
    if status not in DeploymentStatus.values:
        raise ValidationError(STATUS_UNKNOWN.format(status=status))
    note = _clean_note(note)
    deployment.refresh_from_db(from_queryset=m.Deployment.objects.select_for_update())
    current = deployment.status
    if status not in DEPLOYMENT_STATUS_TRANSITIONS.get(current, frozenset()):
        raise ValidationError(
            STATUS_TRANSITION_NOT_ALLOWED.format(
                current=_label(DeploymentStatus, current),
                target=_label(DeploymentStatus, status),
            )
        )
    before = snapshot(deployment)
    deployment.status = status
    deployment.save(update_fields=["status", "updated_at"])
    after = snapshot(deployment)
    if note:
        after["status_note"] = note
    change_record(
        actor=actor,
        action=f"deployment.{DEPLOYMENT_STATUS_VERBS[status]}",
        target=deployment,
        before=before,
        after=after,
    )
    hand_history(actor=actor, deltas=history.diff_snapshots(deployment, before, after))
    return deployment


# ---------------------------------------------------------------------------
# Policy
# ---------------------------------------------------------------------------
POLICY_FIELDS = ("unrotated_after_days", "unused_after_days", "silent_after_hours")


@transaction.atomic
def policy_update(*, actor: Any, **values: int) -> m.Policy:
    """An administrator changes the policy numbers the rules read."""
    permissions.require_admin(actor)
    unknown = set(values) - set(POLICY_FIELDS)
    if unknown:
        raise ValidationError(
            POLICY_UNKNOWN_FIELD.format(names=", ".join(sorted(unknown)))
        )
    policy, _ = m.Policy.objects.select_for_update().get_or_create(
        pk=m.Policy.SINGLETON_ID
    )
    before = snapshot(policy)
    for name, value in values.items():
        setattr(policy, name, value)
    policy.full_clean()
    policy.updated_by = actor
    policy.save()
    after = snapshot(policy)
    if {k: after[k] for k in POLICY_FIELDS} != {k: before[k] for k in POLICY_FIELDS}:
        change_record(
            actor=actor,
            action="policy.update",
            target=policy,
            before=before,
            after=after,
        )
    return policy


POLICY_UNKNOWN_FIELD = "Unknown policy setting(s): {names}."
