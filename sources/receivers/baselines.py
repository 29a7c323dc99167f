"""A deployment that first appears through a push (a CI/CD deployment event, or spans)
is held to its model's approved version at once, not after the next registry sync.

A model with no baseline that has approved versions gets the latest approved one (by
approval time, then the newest row) as its baseline, through the same service and checks
the registry's sync uses (`inventory.services.aimodels_set_baselines`, audited as the
pushing source). A model that has a baseline keeps it: the registry's alias or the
committee's choice is never replaced here.
"""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import F

from audit.actors import Actor
from inventory import history, services
from inventory import models as m


def baselines_from_approved(
    *, model_ids: Collection[int], source_label: str
) -> dict[int, int]:
    """Set the baseline of the models among `model_ids` that have none; call in the
    push's transaction. Returns {model id: version id} for those it set."""
    if not model_ids:
        return {}
    missing = list(
        m.AIModel.objects.filter(
            pk__in=list(model_ids), baseline_version__isnull=True
        ).values_list("pk", flat=True)
    )
    if not missing:
        return {}
    latest: dict[int, int] = {}
    for model_id, pk in (
        m.ModelVersion.objects.filter(
            model_id__in=missing,
            approval=m.ModelVersion.Approval.APPROVED,
            gone_at__isnull=True,
        )
        .order_by("model_id", F("approved_at").desc(nulls_last=True), "-id")
        .values_list("model_id", "pk")
    ):
        latest.setdefault(model_id, pk)
    if not latest:
        return {}
    refused = services.aimodels_set_baselines(
        actor=Actor.source(source_label), targets=latest
    )
    moved = {k: v for k, v in latest.items() if k not in refused}
    # Every deployment of those models is now held to the new baseline.
    history.announce(
        objects=[(m.AIModel._meta.label_lower, pk) for pk in moved],
        source=source_label,
    )
    return moved
