"""Detectors whose subject is a deployment."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime

from django.db.models import QuerySet

from governance.detection import Condition
from governance.models import Finding
from inventory import models as im

Kind = Finding.Kind
DEPLOYMENT = Finding.Subject.DEPLOYMENT


def deployments_in(
    ids: Collection[int] | None, id_range: tuple[int, int] | None
) -> QuerySet[im.Deployment]:
    """The deployments a scan looks at: a change scope's ids or a chunk of a full run."""
    qs = im.Deployment.objects.all()
    if ids is not None:
        return qs.filter(pk__in=list(ids))
    if id_range is not None:
        return qs.filter(pk__gte=id_range[0], pk__lt=id_range[1])
    return qs


def condition(
    kind: str, d: im.Deployment, title: str, facts: dict, **extra
) -> Condition:
    """A condition on deployment `d` (its model, team, owner and tier filled in)."""
    return Condition(
        kind=kind,
        subject_type=DEPLOYMENT,
        subject_id=d.pk,
        title=title,
        facts=facts,
        deployment_id=d.pk,
        model_id=d.model_id,
        team_id=d.team_id,
        owner_id=d.owner_id,
        tier=d.risk_tier,
        source=d.source,
        **extra,
    )


class MissingOwner:
    """An active deployment with no accountable person."""

    kind = Kind.MISSING_OWNER
    subject_type = DEPLOYMENT

    def scan(
        self,
        *,
        now: datetime,
        ids: Collection[int] | None,
        id_range: tuple[int, int] | None,
    ) -> Iterator[Condition]:
        rows = (
            deployments_in(ids, id_range)
            .filter(status=im.Deployment.Status.ACTIVE, owner__isnull=True)
            .only(
                "pk",
                "name",
                "model_id",
                "team_id",
                "owner_id",
                "risk_tier",
                "source",
                "first_seen_at",
            )
        )
        for d in rows.iterator(chunk_size=2000):
            yield condition(
                self.kind,
                d,
                f"{d.name} has no accountable owner",
                {"owner": None, "team_id": d.team_id},
                records=[
                    {
                        "source": d.source,
                        "what": "first seen",
                        "at": d.first_seen_at.isoformat(),
                    }
                ],
            )


DETECTORS = [MissingOwner()]
