"""Append events to the audit trail. Every service that changes governed state calls these,
inside the transaction that makes the change, so the event commits or rolls back with it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from audit.actors import Actor, as_actor
from audit.chain import event_hash
from audit.context import client_ip
from audit.models import AuditChainHead, AuditEvent
from audit.sql import insert_rows

# Every column but the id: one set-based INSERT a batch (audit.sql).
EVENT_FIELDS = tuple(
    f.name for f in AuditEvent._meta.concrete_fields if not f.primary_key
)

# Objects whose model moved to another app keep their old label in events written before
# the move; an object's history asks for every label it has had.
OBJECT_TYPE_ALIASES: dict[str, tuple[str, ...]] = {
    "sources.datasource": ("inventory.datasource",),
    "sources.syncrun": ("inventory.syncrun",),
    "sources.deploymentevent": ("inventory.deploymentevent",),
    "sources.importedfile": ("inventory.importedfile",),
}


def object_types(label: str) -> tuple[str, ...]:
    """The labels under which events about objects of this model may be stored."""
    return (label, *OBJECT_TYPE_ALIASES.get(label, ()))


@dataclass(frozen=True)
class Change:
    """One event of a batch: what happened to which object."""

    action: str
    target: Model
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    team_id: int | None = None


def _lock_head() -> AuditChainHead:
    # Appenders queue on this row, so seq and prev_hash never fork (select_for_update is a
    # no-op on SQLite, whose IMMEDIATE transactions already serialise writers).
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is None:
        head = AuditChainHead.objects.create(pk=1)
    return head


def _event(
    actor: Actor, change: Change, *, seq: int, prev_hash: str, now
) -> AuditEvent:
    event = AuditEvent(
        seq=seq,
        occurred_at=now,
        actor_id=actor.user_id,
        actor_label=actor.label,
        actor_kind=actor.kind,
        ip_address=client_ip.get(),
        action=change.action,
        object_type=change.target._meta.label_lower,
        object_id=str(change.target.pk),
        object_repr=str(change.target)[:300],
        team_id=change.team_id,
        before=change.before,
        after=change.after,
        prev_hash=prev_hash,
    )
    event.hash = event_hash(prev_hash, event)
    return event


def record(
    *,
    actor: Any,
    action: str,
    target: Model,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    team_id: int | None = None,
    actor_label: str = "",
) -> AuditEvent:
    """Append one event. `actor` is a user, an `Actor`, or anything with `audit_actor()`."""
    return record_many(
        actor=actor,
        actor_label=actor_label,
        changes=[Change(action, target, before, after, team_id)],
    )[0]


def record_many(
    *, actor: Any, changes: Iterable[Change], actor_label: str = ""
) -> list[AuditEvent]:
    """Append a batch of events by one actor under one lock of the chain's head (syncs):
    one set-based INSERT for the batch, whatever its size (the returned events carry
    their ids)."""
    who = as_actor(actor, actor_label)
    # No savepoint of its own: the events commit or roll back with the caller's change
    # (module docstring), so a savepoint only cost two statements a write (the release
    # gate's profile, issue 10). Called outside a transaction, this opens one.
    with transaction.atomic(savepoint=False):
        head = _lock_head()
        seq, prev, now = head.seq, head.last_hash, timezone.now()
        events = []
        for change in changes:
            seq += 1
            event = _event(who, change, seq=seq, prev_hash=prev, now=now)
            events.append(event)
            prev = event.hash
        if not events:
            return []
        insert_rows(AuditEvent, events, EVENT_FIELDS, key="seq")
        AuditChainHead.objects.filter(pk=1).update(seq=seq, last_hash=prev)
    return events
