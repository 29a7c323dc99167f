"""The history of governed fields, and the queue that tells governance what changed.

Every path that changes a governed field (a sync's upserts and bindings, a push, a revoke
at source, a hand edit) turns the change into `Delta`s and calls `record_changes()` in the
transaction that made it: one bulk INSERT, no per-row query. Sources then `announce()`
which objects changed, in that same transaction, so a worker that dies loses nothing;
governance claims and consumes those notices (`change_notices_claim` / `_consume`).

Creating an object writes no history row (its first-seen time says when it appeared);
changing, binding, unbinding and cascaded removals do.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from audit.actors import Actor, as_actor
from audit.sql import insert_rows
from inventory import models as m
from inventory.snapshots import json_safe

DEPLOYMENT = m.Deployment._meta.label_lower
IDENTITY = m.NonHumanIdentity._meta.label_lower
VERSION = m.ModelVersion._meta.label_lower

# Governed fields, by model: field -> the columns it is read from. A field read from two
# columns (the observed version: the registered version's id and the version text the
# runtime reported) is one history row holding both, so one move is one row.
TRACKED: dict[type[models.Model], dict[str, tuple[str, ...]]] = {
    m.Deployment: {
        "observed_version": ("observed_version_id", "observed_version_label"),
        "endpoint": ("endpoint",),
        "status": ("status",),
        "exposure": ("exposure",),
    },
    m.NonHumanIdentity: {
        "status": ("status",),
        "rotated_at": ("rotated_at",),
        "expires_at": ("expires_at",),
    },
    m.ModelVersion: {"approval": ("approval",)},
}
# Set-valued governed fields (sorted id lists), kept apart: no column holds them.
SET_FIELDS = {
    DEPLOYMENT: ("identities", "dependencies"),
    IDENTITY: ("deployments",),
}
FIELD_LABELS = {
    "observed_version": "observed version",
    "endpoint": "endpoint",
    "status": "status",
    "exposure": "exposure",
    "rotated_at": "rotated",
    "expires_at": "expires",
    "approval": "approval",
    "identities": "bound identities",
    "dependencies": "dependencies",
    "deployments": "bound deployments",
}
FIELD_CHANGE_COLUMNS = (
    "object_type",
    "object_id",
    "field",
    "before",
    "after",
    "changed_at",
    "source",
    "run_id",
    "actor_kind",
    "actor_label",
)
NOTICE_COLUMNS = (
    "object_type",
    "object_id",
    "source",
    "run_id",
    "created_at",
    "claimed_by",
)
HISTORY_PAGE_SIZE = 20
CLAIM_LIMIT_MAX = 10_000
CLAIM_LIMIT_RANGE = "Claim between 1 and 10,000 notices at a time."
CONSUMER_REQUIRED = "Name the consumer claiming notices."


@dataclass(frozen=True)
class Delta:
    """One governed field of one object moved from `before` to `after`."""

    object_type: str
    object_id: int
    field: str
    before: Any
    after: Any


def tracked(model: type[models.Model]) -> tuple[str, ...]:
    return tuple(TRACKED.get(model, {}))


def _value(columns: tuple[str, ...], row: dict[str, Any]) -> Any:
    if len(columns) == 1:
        return json_safe(row.get(columns[0]))
    return {c: json_safe(row.get(c)) for c in columns}


def diff_values(
    model: type[models.Model],
    object_id: int,
    before: dict[str, Any],
    after: dict[str, Any],
) -> list[Delta]:
    """Deltas between two pictures keyed by column (snapshots, `values()` rows).

    A column missing from `after` kept its `before` value (a source that does not send
    a field leaves it as it is).
    """
    label = model._meta.label_lower
    out = []
    for name, columns in TRACKED.get(model, {}).items():
        if not any(c in after for c in columns):
            continue
        new_row = {c: after[c] if c in after else before.get(c) for c in columns}
        old, new = _value(columns, before), _value(columns, new_row)
        if old != new:
            out.append(Delta(label, object_id, name, old, new))
    return out


def diff_snapshots(
    obj: models.Model, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> list[Delta]:
    """Deltas between two audit snapshots of `obj` (columns and the identity's bindings)."""
    if before is None or after is None:
        return []
    deltas = diff_values(type(obj), obj.pk, before, after)
    if isinstance(obj, m.NonHumanIdentity) and "deployments" in after:
        old, new = set(before.get("deployments", [])), set(after["deployments"])
        if old != new:
            deltas += binding_deltas({obj.pk: (old, new)})
    return deltas


def binding_deltas(
    changes: dict[int, tuple[set[int], set[int]]],
    skip: set[tuple[str, int]] | frozenset = frozenset(),
) -> list[Delta]:
    """Both sides of binding changes, identity id -> (bound before, bound after), but
    for the objects in `skip` (those a sync created in the same run).

    Call after the bindings were written: one query reads the affected deployments'
    bindings as they now are, and their "before" is derived from the changes.
    """
    deltas: list[Delta] = []
    added: dict[int, set[int]] = defaultdict(set)
    removed: dict[int, set[int]] = defaultdict(set)
    for ident, (old, new) in changes.items():
        if old == new:
            continue
        if (IDENTITY, ident) not in skip:
            deltas.append(
                Delta(IDENTITY, ident, "deployments", sorted(old), sorted(new))
            )
        for dep in new - old:
            added[dep].add(ident)
        for dep in old - new:
            removed[dep].add(ident)
    affected = {d for d in set(added) | set(removed) if (DEPLOYMENT, d) not in skip}
    if not affected:
        return deltas
    through = m.NonHumanIdentity.deployments.through
    now: dict[int, set[int]] = defaultdict(set)
    for dep, ident in through.objects.filter(deployment_id__in=affected).values_list(
        "deployment_id", "nonhumanidentity_id"
    ):
        now[dep].add(ident)
    for dep in sorted(affected):
        after = now[dep]
        before = (after - added[dep]) | removed[dep]
        if before != after:
            deltas.append(
                Delta(DEPLOYMENT, dep, "identities", sorted(before), sorted(after))
            )
    return deltas


def dependency_ids(downstream_ids: Iterable[int]) -> dict[int, list[int]]:
    """Each deployment's upstream deployments, as sorted id lists (one query)."""
    out: dict[int, list[int]] = {pk: [] for pk in downstream_ids}
    for down, up in (
        m.Dependency.objects.filter(downstream_id__in=list(out))
        .order_by("downstream_id", "upstream_id")
        .values_list("downstream_id", "upstream_id")
    ):
        out[down].append(up)
    return out


def dependency_deltas(before: dict[int, list[int]]) -> list[Delta]:
    """Deltas of deployments' dependencies, given `dependency_ids()` taken before a write."""
    after = dependency_ids(before)
    return [
        Delta(DEPLOYMENT, pk, "dependencies", before[pk], after[pk])
        for pk in sorted(before)
        if before[pk] != after[pk]
    ]


def record_changes(
    *,
    deltas: Iterable[Delta],
    actor: Any = None,
    source: str = "",
    run_id: int | None = None,
    at: datetime | None = None,
) -> int:
    """Store deltas as history rows in one set-based INSERT (`audit.sql.insert_rows`: one
    statement of array parameters on PostgreSQL); call inside the writing transaction.

    `actor` is whatever `audit.as_actor` takes (a user, a source's `Actor`, None for the
    system); `source` is the reporting source's label, "" for a hand edit.
    """
    at = at or timezone.now()
    if actor is not None:
        who: Actor = as_actor(actor)
    else:
        who = Actor.source(source) if source else Actor.system()
    rows = [
        m.FieldChange(
            object_type=d.object_type,
            object_id=d.object_id,
            field=d.field,
            before=d.before,
            after=d.after,
            changed_at=at,
            source=source[:100],
            run_id=run_id,
            actor_kind=who.kind,
            actor_label=who.label,
        )
        for d in deltas
    ]
    return insert_rows(m.FieldChange, rows, FIELD_CHANGE_COLUMNS)


def announce(
    *,
    objects: Iterable[tuple[str, int]],
    source: str = "",
    run_id: int | None = None,
) -> int:
    """Queue "these objects changed" for governance; call inside the writing transaction."""
    at = timezone.now()
    pairs = sorted(set(objects))
    if not pairs:
        return 0
    rows = [
        m.ChangeNotice(
            object_type=label,
            object_id=pk,
            source=source[:100],
            run_id=run_id,
            created_at=at,
        )
        for label, pk in pairs
    ]
    # One INSERT … SELECT unnest() on PostgreSQL, without RETURNING: a first sync of
    # 50,000 objects announces 50,000 of them, and bulk_create cost as much as the sync.
    written = insert_rows(m.ChangeNotice, rows, NOTICE_COLUMNS)
    _wake_consumer_on_commit()
    return written


# The change consumer's task, asked for by name: inventory imports nothing above it.
# Beat runs it every 15 s anyway; this only makes it sooner.
CONSUMER_TASK = "governance.tasks.detect_changes"


def _send_consumer_task() -> None:
    from celery import current_app

    # By signature: the registered task (eager in tests), else sent by name. No publish
    # retries: a broker that is down must not hold up the request that committed; beat's
    # run picks the notices up.
    current_app.signature(CONSUMER_TASK).apply_async(retry=False)


def _wake_consumer_on_commit() -> None:
    """Send the consumer's task when the announcing transaction commits, once however
    many times it announced (a rolled-back transaction drops it with the notices)."""
    if not getattr(settings, "DETECTION_WAKE_ON_ANNOUNCE", False):
        return
    connection = transaction.get_connection()
    if any(entry[1] is _send_consumer_task for entry in connection.run_on_commit):
        return
    transaction.on_commit(_send_consumer_task, robust=True)


def changed_objects(deltas: Iterable[Delta]) -> set[tuple[str, int]]:
    """The objects these deltas moved: each delta's own, and for a deployment's
    dependencies the upstream deployments added or removed, whose downstream chain moved
    with it (a removed edge is gone by the time anyone looks for its other end)."""
    out = set()
    for d in deltas:
        out.add((d.object_type, d.object_id))
        if d.object_type == DEPLOYMENT and d.field == "dependencies":
            moved = set(d.before or ()) ^ set(d.after or ())
            out.update((DEPLOYMENT, pk) for pk in moved)
    return out


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------
def field_history(
    obj: models.Model, *, before_id: int | None = None, limit: int = HISTORY_PAGE_SIZE
) -> tuple[list[m.FieldChange], int | None]:
    """An object's history rows, newest first: (page, id to pass as `before_id` next).

    Keyset-paged on the row id (one query a page, whatever the history's length).
    """
    qs = m.FieldChange.objects.filter(
        object_type=obj._meta.label_lower, object_id=obj.pk
    )
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    rows = list(qs.order_by("-id")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].pk if more else None)


def field_latest(obj: models.Model, field: str) -> m.FieldChange | None:
    return (
        m.FieldChange.objects.filter(
            object_type=obj._meta.label_lower, object_id=obj.pk, field=field
        )
        .order_by("-id")
        .first()
    )


def change_notices_pending(*, limit: int = 100) -> list[m.ChangeNotice]:
    """Notices nobody has consumed yet, oldest first."""
    return list(
        m.ChangeNotice.objects.filter(consumed_at__isnull=True).order_by("id")[:limit]
    )


# ---------------------------------------------------------------------------
# Claiming and consuming (governance's side of the queue)
# ---------------------------------------------------------------------------
def change_notices_claim(
    *, consumer: str, limit: int = 500, lease_seconds: int | None = None
) -> list[m.ChangeNotice]:
    """Claim up to `limit` unconsumed notices for `consumer`; return the claimed rows.

    A notice is claimable when nobody holds it or its claim is older than the lease (a
    consumer that died). The claim is one conditional UPDATE per candidate set, so two
    consumers never both get a row, and claiming again returns only what is new.
    """
    if not consumer:
        raise ValueError(CONSUMER_REQUIRED)
    if not 1 <= limit <= CLAIM_LIMIT_MAX:
        raise ValueError(CLAIM_LIMIT_RANGE)
    lease = timedelta(
        seconds=settings.CHANGE_NOTICE_LEASE_SECONDS
        if lease_seconds is None
        else lease_seconds
    )
    now = timezone.now()
    claimable = Q(consumed_at__isnull=True) & (
        Q(claimed_at__isnull=True) | Q(claimed_at__lt=now - lease)
    )
    token = f"{consumer[:60]}:{uuid.uuid4().hex[:16]}"
    with transaction.atomic():
        ids = list(
            m.ChangeNotice.objects.filter(claimable)
            .order_by("id")
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        # The filter is repeated in the UPDATE: a concurrent claimer that took a row
        # between the SELECT and here leaves it out of ours.
        m.ChangeNotice.objects.filter(claimable, id__in=ids).update(
            claimed_by=token, claimed_at=now
        )
        return list(m.ChangeNotice.objects.filter(claimed_by=token).order_by("id"))


def change_notices_consume(*, notices: Iterable[m.ChangeNotice]) -> int:
    """Mark claimed notices done; return how many this call consumed (0 the second time)."""
    by_token: dict[str, list[int]] = defaultdict(list)
    for notice in notices:
        by_token[notice.claimed_by].append(notice.pk)
    now = timezone.now()
    done = 0
    for token, ids in by_token.items():
        done += m.ChangeNotice.objects.filter(
            id__in=ids, claimed_by=token, consumed_at__isnull=True
        ).update(consumed_at=now)
    return done


# ---------------------------------------------------------------------------
# Retention
# ---------------------------------------------------------------------------
PRUNE_CHUNK = 5000


def field_history_prune(*, now: datetime | None = None) -> dict[str, int]:
    """Delete history older than FIELD_HISTORY_RETENTION_DAYS, except each (object, field)'s
    latest row, which is always kept; and consumed notices older than
    CHANGE_NOTICE_RETENTION_DAYS. Set-based, in chunks; safe to run again."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.FIELD_HISTORY_RETENTION_DAYS)
    newer = m.FieldChange.objects.filter(
        object_type=OuterRef("object_type"),
        object_id=OuterRef("object_id"),
        field=OuterRef("field"),
        id__gt=OuterRef("id"),
    )
    old = m.FieldChange.objects.filter(changed_at__lt=cutoff).filter(Exists(newer))
    history = 0
    while True:
        ids = list(old.order_by("id").values_list("id", flat=True)[:PRUNE_CHUNK])
        if not ids:
            break
        history += m.FieldChange.objects.filter(id__in=ids).delete()[0]
    notice_cutoff = now - timedelta(days=settings.CHANGE_NOTICE_RETENTION_DAYS)
    notices = m.ChangeNotice.objects.filter(consumed_at__lt=notice_cutoff).delete()[0]
    return {"history": history, "notices": notices}
