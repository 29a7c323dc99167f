"""The approved running state of a deployment: its endpoint and dependencies, as the
committee approved them. Endpoint and dependency drift (`governance.detectors`) compare
what runs now with it."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

import audit
from governance.models import ApprovedState
from inventory import history, permissions
from inventory import models as im

APPROVE_STATE_COMMITTEE_ONLY = (
    "Only the risk committee or an administrator can approve a deployment's running "
    "endpoint and dependencies."
)
APPROVE_STATE_ACTION = "deployment.approve_state"


def current_edges(deployment_ids: list[int]) -> dict[int, tuple[list[int], list[int]]]:
    """Each deployment's (upstream ids, downstream ids), sorted, as the edges are now
    (one query for any number of deployments)."""
    out: dict[int, tuple[list[int], list[int]]] = {
        pk: ([], []) for pk in deployment_ids
    }
    if not out:
        return out
    ids = list(out)
    rows = (
        im.Dependency.objects.filter(downstream_id__in=ids)
        .values_list("upstream_id", "downstream_id")
        .union(
            im.Dependency.objects.filter(upstream_id__in=ids).values_list(
                "upstream_id", "downstream_id"
            )
        )
    )
    for up, down in rows:
        if down in out:
            out[down][0].append(up)
        if up in out:
            out[up][1].append(down)
    for ups, downs in out.values():
        ups.sort()
        downs.sort()
    return out


def as_dict(state: ApprovedState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "endpoint": state.endpoint,
        "upstream_ids": list(state.upstream_ids),
        "downstream_ids": list(state.downstream_ids),
        "approved_at": state.approved_at.isoformat(),
        "approved_by": state.approved_by_id,
    }


@transaction.atomic
def approved_state_record(*, actor: Any, deployment: im.Deployment) -> ApprovedState:
    """The committee approves the endpoint and dependencies the deployment has now."""
    if not permissions.can_approve_versions(actor):
        raise PermissionDenied(APPROVE_STATE_COMMITTEE_ONLY)
    deployment = im.Deployment.objects.select_for_update().get(pk=deployment.pk)
    ups, downs = current_edges([deployment.pk])[deployment.pk]
    state = (
        ApprovedState.objects.select_for_update().filter(deployment=deployment).first()
    )
    before = as_dict(state)
    if state is None:
        state = ApprovedState(deployment=deployment)
    state.endpoint = deployment.endpoint
    state.upstream_ids = ups
    state.downstream_ids = downs
    state.approved_at = timezone.now()
    state.approved_by = actor
    state.save()
    audit.record(
        actor=actor,
        action=APPROVE_STATE_ACTION,
        target=deployment,
        before=before,
        after=as_dict(state),
        team_id=deployment.team_id,
    )
    # Endpoint and dependency drift of this deployment are judged again by the change
    # consumer within seconds (the notice is its record of work asked for).
    history.announce(objects=[(history.DEPLOYMENT, deployment.pk)])
    return state
