"""How detection runs: after changes (the change consumer), nightly over everything, and
by hand (`manage.py detect_findings`). Tasks and the command call these; every one is
idempotent (the engine keeps one unresolved finding per kind and subject, and a notice is
consumed once).

The change consumer claims the change notices sources and services write in the
transaction that changed something (`inventory.history.announce`), turns them into the
subjects whose findings may have moved (`changes_scope`), runs detection on those, then
consumes the notices. A consumer that dies leaves its claim to expire
(CHANGE_NOTICE_LEASE_SECONDS): the next one claims the notices again.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from governance import detection, tiers
from governance.models import Finding
from inventory import history
from inventory import models as im

log = logging.getLogger(__name__)

CONSUMER = "governance.detect"
Scope = dict[str, set[int]]


def _merge(into: Scope, other: dict[str, Collection[int]]) -> Scope:
    for subject, ids in other.items():
        into.setdefault(subject, set()).update(ids)
    return into


def recently_answering(*, now: datetime) -> set[int]:
    """Deployments of retired or deprecated models, and withdrawn ones, that a runtime
    called or reported within DETECTION_RECENT_SECONDS: spans to a deployment that exists
    already write no change notice, yet they may make it a shadow deployment."""
    since = now - timedelta(seconds=settings.DETECTION_RECENT_SECONDS)
    return set(
        im.Deployment.objects.filter(
            Q(last_call_at__gte=since) | Q(last_seen_at__gte=since)
        )
        .filter(
            Q(
                model__lifecycle__in=[
                    im.AIModel.Lifecycle.RETIRED,
                    im.AIModel.Lifecycle.DEPRECATED,
                ]
            )
            | Q(status=im.Deployment.Status.WITHDRAWN)
        )
        .values_list("pk", flat=True)
    )


def neighbours(deployment_ids: Collection[int]) -> set[int]:
    """Deployments on the other end of the given deployments' dependency edges: a new or
    removed edge moves the dependencies of both ends."""
    if not deployment_ids:
        return set()
    ids = list(deployment_ids)
    out: set[int] = set()
    for up, down in im.Dependency.objects.filter(
        Q(upstream_id__in=ids) | Q(downstream_id__in=ids)
    ).values_list("upstream_id", "downstream_id"):
        out.update((up, down))
    return out


def changes_scope(changes: Iterable[tuple[str, int]], *, now: datetime) -> Scope:
    """The subjects to detect on after these (object type, id) changes. Add a step here
    to widen it (each step takes and returns the scope)."""
    scope: Scope = {}
    _merge(scope, detection.scope_for_changes(changes))
    deployments = scope.setdefault(Finding.Subject.DEPLOYMENT, set())
    deployments.update(neighbours(deployments))
    deployments.update(recently_answering(now=now))
    return scope


def detect_changes(
    *,
    now: datetime | None = None,
    batch: int | None = None,
    max_batches: int | None = None,
) -> detection.RunResult:
    """Claim pending change notices, detect on what they name, consume them.

    Runs batch after batch until the queue is empty or `max_batches` were done (the next
    run takes the rest). With no notice it still looks at deployments that answered
    recently (`recently_answering`). Returns the summed counts.
    """
    batch = batch or settings.DETECTION_NOTICE_BATCH
    max_batches = max_batches or settings.DETECTION_MAX_BATCHES
    total = detection.RunResult()
    for index in range(max_batches):
        at = now or timezone.now()
        notices = history.change_notices_claim(consumer=CONSUMER, limit=batch)
        if not notices and index > 0:
            break
        scope = changes_scope(((n.object_type, n.object_id) for n in notices), now=at)
        if any(scope.values()):
            # Tiers first: the findings' severities read them. The scope already holds
            # every deployment of a changed system or model (their sensitivity is a fact).
            if scope.get(Finding.Subject.DEPLOYMENT):
                tiers.recompute(deployment_ids=scope[Finding.Subject.DEPLOYMENT])
            _add(total, detection.run(scope=scope, now=at))
        if notices:
            history.change_notices_consume(notices=notices)
        if len(notices) < batch:
            break
    return total


def detect_all(
    *,
    kinds: Collection[str] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
) -> detection.RunResult:
    """Detection over every subject (nightly, and the command)."""
    return detection.run(kinds=kinds, now=now, dry_run=dry_run)


def _add(total: detection.RunResult, part: detection.RunResult) -> None:
    for kind, counts in part.by_kind.items():
        for what, n in counts.items():
            total.add(kind, what, n)
    total.opened_ids.extend(part.opened_ids)
