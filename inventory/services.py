"""Writes to the inventory. Views, the admin, the API and commands all call these.

Each service checks permission, validates, writes in one transaction and records the
change in the audit trail (`audit.record`) in that same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Model
from django.utils import timezone

import audit
from audit.services import Change
from inventory import cascades, history, permissions
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


def hand_history(*, actor: User | None, deltas: list[history.Delta]) -> None:
    """History rows (and change notices) for governed fields changed by hand."""
    if deltas:
        history.record_changes(deltas=deltas, actor=actor)
        history.announce(objects=history.changed_objects(deltas))


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
        hand_history(
            actor=actor, deltas=history.diff_snapshots(instance, before, after)
        )
    return instance


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
        token.last_used_at = now
    return token
