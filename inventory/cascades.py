"""What deleting an object takes with it, as audit events and history rows.

Django's `Collector` is asked, before the delete, which rows the database's cascades will
remove and which references it will clear (SET_NULL); each governed one gets its event:
a model's versions, a deployment's dependencies and bindings, the deployments pointing
at a deleted version. Usage aggregates are counted on the deleted object's own event,
not listed one by one.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import router
from django.db.models import Model
from django.db.models.deletion import Collector

from audit.services import Change
from inventory import history
from inventory import models as m
from inventory.snapshots import snapshot

BINDINGS = m.NonHumanIdentity.deployments.through
COUNTED_ONLY = {m.UsageHour: "usage_hours"}


def collect(
    instance: Model, team_of: Any
) -> tuple[list[Change], list[history.Delta], dict[str, int]]:
    """(events, history deltas, counts) for everything deleting `instance` also changes.

    `team_of(obj)` names the owning team of an event's object. Call before the delete;
    it raises ProtectedError exactly when the delete would.
    """
    collector = Collector(using=router.db_for_write(type(instance)), origin=instance)
    collector.collect([instance])
    events: list[Change] = []
    deltas: list[history.Delta] = []
    counts: dict[str, int] = defaultdict(int)
    unbound: dict[int, set[int]] = defaultdict(set)  # identity -> deployments lost
    dependencies: list[m.Dependency] = []

    def removed(obj: Model) -> None:
        if type(obj) is type(instance) and obj.pk == instance.pk:
            return
        if isinstance(obj, BINDINGS):
            unbound[obj.nonhumanidentity_id].add(obj.deployment_id)
            return
        if type(obj) in COUNTED_ONLY:
            counts[COUNTED_ONLY[type(obj)]] += 1
            return
        if isinstance(obj, m.Dependency):
            dependencies.append(obj)
        events.append(
            Change(
                f"{obj._meta.model_name}.cascade_delete",
                obj,
                {**snapshot(obj), "deleted_with": _named(instance)},
                None,
                team_of(obj),
            )
        )

    for objs in collector.data.values():
        for obj in objs:
            removed(obj)
    for qs in collector.fast_deletes:
        if qs.model in COUNTED_ONLY:
            counts[COUNTED_ONLY[qs.model]] += qs.count()
            continue
        for obj in qs:
            removed(obj)

    for (field, value), batches in collector.field_updates.items():
        for batch in batches:
            for obj in batch:
                old = getattr(obj, field.attname)
                if old == value:
                    continue
                events.append(
                    Change(
                        f"{obj._meta.model_name}.cascade_update",
                        obj,
                        {field.attname: old},
                        {field.attname: value, "cleared_by": _named(instance)},
                        team_of(obj),
                    )
                )
                deltas += history.diff_values(
                    type(obj), obj.pk, {field.attname: old}, {field.attname: value}
                )

    deltas += _binding_deltas(instance, unbound, events, team_of)
    deltas += _dependency_deltas(instance, dependencies)
    return events, deltas, dict(counts)


def _named(obj: Model) -> dict[str, Any]:
    return {"type": obj._meta.label_lower, "id": obj.pk, "name": str(obj)[:200]}


def _binding_deltas(
    instance: Model,
    unbound: dict[int, set[int]],
    events: list[Change],
    team_of: Any,
) -> list[history.Delta]:
    """Bindings the delete removes: an unbind event per surviving identity, and history
    on the surviving side (the deleted object's own history stops with it)."""
    if not unbound:
        return []
    current: dict[int, set[int]] = defaultdict(set)
    for ident, dep in BINDINGS.objects.filter(
        nonhumanidentity_id__in=list(unbound)
    ).values_list("nonhumanidentity_id", "deployment_id"):
        current[ident].add(dep)
    deleted_identity = instance.pk if isinstance(instance, m.NonHumanIdentity) else None
    identities = m.NonHumanIdentity.objects.in_bulk(list(unbound))
    deltas = []
    for ident, lost in sorted(unbound.items()):
        if ident == deleted_identity:
            continue  # its deployments' side is recorded below
        before, after = current[ident], current[ident] - lost
        obj = identities.get(ident)
        if obj is None:
            continue
        events.append(
            Change(
                "nonhumanidentity.unbind",
                obj,
                {"deployments": sorted(before)},
                {"deployments": sorted(after), "cleared_by": _named(instance)},
                team_of(obj),
            )
        )
        deltas.append(
            history.Delta(
                history.IDENTITY, ident, "deployments", sorted(before), sorted(after)
            )
        )
    if deleted_identity is not None and deleted_identity in unbound:
        deps = unbound[deleted_identity]
        now: dict[int, set[int]] = defaultdict(set)
        for dep, ident in BINDINGS.objects.filter(deployment_id__in=deps).values_list(
            "deployment_id", "nonhumanidentity_id"
        ):
            now[dep].add(ident)
        deltas += [
            history.Delta(
                history.DEPLOYMENT,
                dep,
                "identities",
                sorted(now[dep]),
                sorted(now[dep] - {deleted_identity}),
            )
            for dep in sorted(deps)
        ]
    return deltas


def _dependency_deltas(
    instance: Model, removed: list[m.Dependency]
) -> list[history.Delta]:
    """The surviving downstream deployments' dependencies lose the removed edges."""
    gone_id = instance.pk if isinstance(instance, m.Deployment) else None
    downstream = {d.downstream_id for d in removed if d.downstream_id != gone_id}
    if not downstream:
        return []
    before = history.dependency_ids(downstream)
    lost: dict[int, set[int]] = defaultdict(set)
    for d in removed:
        lost[d.downstream_id].add(d.upstream_id)
    return [
        history.Delta(
            history.DEPLOYMENT,
            pk,
            "dependencies",
            before[pk],
            [up for up in before[pk] if up not in lost[pk]],
        )
        for pk in sorted(downstream)
        if lost[pk] & set(before[pk])
    ]
