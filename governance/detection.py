"""The detection engine: conditions from the detectors become findings, never twice.

A detector (`governance.detectors`) answers one question for one kind of subject: which of
these subjects hold this condition now, with what evidence. The engine turns the answer
into findings, chunk by chunk of subject ids, each chunk in one transaction:

- a condition with no unresolved finding opens one, or reopens the subject's last
  resolved finding of that kind (the same row, `times_opened` + 1);
- a condition with an unresolved finding updates it (last seen, evidence, severity, tier,
  who it belongs to); a false positive whose evidence changed, and an accepted risk whose
  acceptance expired, open again;
- an unresolved finding whose condition is gone resolves.

Running it twice changes nothing the second time but `last_seen_at`. Two workers at once
are serialized per kind by a lock (PostgreSQL's advisory lock; SQLite has one writer), and
the partial unique constraint `finding_one_unresolved` holds whatever happens.

Scope: `run()` over everything (nightly, `manage.py detect_findings`), or over the
subjects that changed (`scope_for_changes`, after each sync batch and push).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from collections import Counter
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from django.db import connection, transaction
from django.db.models import Max, Min
from django.utils import timezone

from governance.models import Finding, FindingEvent
from inventory import models as im

log = logging.getLogger(__name__)

CHUNK = 5000  # ids per chunk of a change scope (an IN list)
# Ids per chunk of a full run. The usage-based scans (shadow, deprecated, out of bounds)
# read UsageHour by time window whatever the id range, so their cost is per chunk, not per
# id: at 10,000 models / 50,000 deployments one shadow scan took 8.3 s for 5,000 ids and
# 4.2 s for 50,000. Memory stays bounded by one chunk's conditions and findings.
RANGE_CHUNK = 50_000

Kind = Finding.Kind
Severity = Finding.Severity

# Severity of each kind on a tier 2 or 3 subject; tier 1 raises it one step, tier 4
# lowers it one (never below low).
BASE_SEVERITY: dict[str, int] = {
    Kind.UNAPPROVED_VERSION: Severity.HIGH,
    Kind.VERSION_DRIFT: Severity.MEDIUM,
    Kind.SHADOW_DEPLOYMENT: Severity.HIGH,
    Kind.DEPRECATED_IN_USE: Severity.LOW,
    Kind.UNREGISTERED_MODEL: Severity.HIGH,
    Kind.ORPHANED_IDENTITY: Severity.MEDIUM,
    Kind.STALE_CREDENTIAL: Severity.MEDIUM,
    Kind.EXPIRED_ACTIVE: Severity.HIGH,
    Kind.UNUSED_CREDENTIAL: Severity.LOW,
    Kind.MISSING_OWNER: Severity.MEDIUM,
    Kind.MISSING_PURPOSE: Severity.LOW,
    Kind.MISSING_CHANGE_WINDOW: Severity.LOW,
    Kind.OUT_OF_BOUNDS: Severity.MEDIUM,
    Kind.CHANGE_OUTSIDE_WINDOW: Severity.MEDIUM,
    Kind.ENDPOINT_DRIFT: Severity.MEDIUM,
    Kind.DEPENDENCY_DRIFT: Severity.MEDIUM,
    Kind.THIRD_PARTY_EXPOSURE: Severity.HIGH,
}
TIER_STEP = {1: 1, 2: 0, 3: 0, 4: -1}


def severity_for(kind: str, tier: int) -> int:
    base = BASE_SEVERITY[kind]
    return max(Severity.LOW, min(Severity.CRITICAL, base + TIER_STEP.get(tier, 0)))


@dataclass
class Condition:
    """One subject holding one detector's condition now."""

    kind: str
    subject_type: str
    subject_id: int
    title: str
    # The facts that raised it. Their digest is the evidence key: a false positive holds
    # while they are unchanged, so put no clock in them (times go in `records`).
    facts: dict[str, Any]
    # The source records behind the facts, with their times, e.g.
    # {"source": "mlflow-prod", "what": "version 4 registered", "at": "2026-…"}.
    records: list[dict[str, Any]] = field(default_factory=list)
    deployment_id: int | None = None
    identity_id: int | None = None
    model_id: int | None = None
    team_id: int | None = None
    owner_id: int | None = None
    tier: int = 4
    source: str = ""
    severity: int | None = None

    @property
    def evidence_key(self) -> str:
        raw = json.dumps(self.facts, sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()

    @property
    def evidence(self) -> dict[str, Any]:
        return {"facts": self.facts, "records": self.records}

    def resolved_severity(self) -> int:
        return self.severity or severity_for(self.kind, self.tier)


class Detector(Protocol):
    kind: str
    subject_type: str  # Finding.Subject value

    def scan(
        self,
        *,
        now: datetime,
        ids: Collection[int] | None,
        id_range: tuple[int, int] | None,
    ) -> Iterable[Condition]:
        """The subjects holding the condition, among `ids` (a change scope) or within
        `id_range` (lo inclusive, hi exclusive: a chunk of a full run)."""
        ...


SUBJECT_MODELS = {
    Finding.Subject.DEPLOYMENT: im.Deployment,
    Finding.Subject.IDENTITY: im.NonHumanIdentity,
    Finding.Subject.MODEL: im.AIModel,
}


@dataclass
class RunResult:
    counts: Counter = field(default_factory=Counter)
    by_kind: dict[str, Counter] = field(default_factory=dict)
    # Findings opened or reopened this run (for notifications).
    opened_ids: list[int] = field(default_factory=list)

    def add(self, kind: str, what: str, n: int = 1) -> None:
        if n:
            self.counts[what] += n
            self.by_kind.setdefault(kind, Counter())[what] += n

    def as_dict(self) -> dict[str, Any]:
        return {
            "totals": dict(self.counts),
            "by_kind": {k: dict(v) for k, v in sorted(self.by_kind.items())},
        }


def _lock(kind: str) -> None:
    """Serialize runs of one kind until the transaction ends (PostgreSQL)."""
    if connection.vendor == "postgresql":
        key = zlib.crc32(f"runproof.detect.{kind}".encode())
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _assignment(cond: Condition) -> tuple[str, int | None]:
    if cond.owner_id:
        return Finding.Queue.OWNER, cond.owner_id
    if cond.team_id:
        return Finding.Queue.TEAM, None
    return Finding.Queue.COMMITTEE, None


def _refresh(finding: Finding, cond: Condition, now: datetime) -> None:
    finding.title = cond.title[:300]
    finding.severity = cond.resolved_severity()
    finding.tier = cond.tier
    finding.deployment_id = cond.deployment_id
    finding.identity_id = cond.identity_id
    finding.model_id = cond.model_id
    finding.team_id = cond.team_id
    finding.owner_id = cond.owner_id
    finding.source = cond.source[:100]
    finding.last_seen_at = now
    if not finding.assigned_manually:
        finding.queue, finding.assignee_id = _assignment(cond)


UPDATE_FIELDS = [
    "title",
    "severity",
    "tier",
    "deployment",
    "identity",
    "model",
    "team",
    "owner",
    "source",
    "last_seen_at",
    "queue",
    "assignee",
    "status",
    "evidence",
    "evidence_key",
    "opened_at",
    "resolved_at",
    "times_opened",
    "accepted_until",
    "suppressed_key",
    "updated_at",
]


def _apply(
    detector: Detector,
    conditions: dict[int, Condition],
    subject_ids: Collection[int] | None,
    id_range: tuple[int, int] | None,
    now: datetime,
    result: RunResult,
    dry_run: bool,
) -> None:
    kind, subject_type = detector.kind, detector.subject_type
    findings = Finding.objects.filter(kind=kind, subject_type=subject_type)
    if subject_ids is not None:
        findings = findings.filter(subject_id__in=list(subject_ids))
    elif id_range is not None:
        findings = findings.filter(
            subject_id__gte=id_range[0], subject_id__lt=id_range[1]
        )
    unresolved = {
        f.subject_id: f for f in findings.exclude(status=Finding.Status.RESOLVED)
    }
    missing = [sid for sid in conditions if sid not in unresolved]
    resolved: dict[int, Finding] = {}
    if missing:
        for f in Finding.objects.filter(
            kind=kind,
            subject_type=subject_type,
            subject_id__in=missing,
            status=Finding.Status.RESOLVED,
        ).order_by("subject_id", "-resolved_at", "-id"):
            resolved.setdefault(f.subject_id, f)

    to_update: list[Finding] = []
    to_create: list[Finding] = []
    events: list[FindingEvent] = []
    reopened: list[Finding] = []
    touched: list[int] = []

    for sid, cond in conditions.items():
        key = cond.evidence_key
        finding = unresolved.get(sid)
        if finding is not None:
            before = _state(finding)
            changed = finding.evidence_key != key
            _refresh(finding, cond, now)
            if changed:
                finding.evidence = cond.evidence
                finding.evidence_key = key
                events.append(_event(finding, FindingEvent.Action.EVIDENCE, now))
                result.add(kind, "evidence_changed")
            if finding.status == Finding.Status.FALSE_POSITIVE and (
                finding.suppressed_key != key
            ):
                finding.status = Finding.Status.OPEN
                finding.suppressed_key = ""
                events.append(
                    _event(
                        finding,
                        FindingEvent.Action.REOPENED,
                        now,
                        note="The evidence changed since it was marked a false positive.",
                    )
                )
                result.add(kind, "reopened")
                result.opened_ids.append(finding.pk)
            elif (
                finding.status == Finding.Status.ACCEPTED
                and finding.accepted_until
                and finding.accepted_until <= now
            ):
                finding.status = Finding.Status.OPEN
                events.append(
                    _event(finding, FindingEvent.Action.ACCEPTANCE_EXPIRED, now)
                )
                result.add(kind, "acceptance_expired")
                result.opened_ids.append(finding.pk)
            result.add(kind, "updated")
            if _state(finding) == before:
                touched.append(finding.pk)  # only last seen moves: one UPDATE for all
            else:
                to_update.append(finding)
            continue
        finding = resolved.get(sid)
        if finding is not None:
            _refresh(finding, cond, now)
            finding.status = Finding.Status.OPEN
            finding.opened_at = now
            finding.resolved_at = None
            finding.times_opened += 1
            finding.evidence = cond.evidence
            finding.evidence_key = key
            finding.accepted_until = None
            finding.suppressed_key = ""
            if finding.assigned_manually:
                finding.assigned_manually = False
                finding.queue, finding.assignee_id = _assignment(cond)
            to_update.append(finding)
            reopened.append(finding)
            events.append(_event(finding, FindingEvent.Action.REOPENED, now))
            result.add(kind, "reopened")
            continue
        finding = Finding(
            kind=kind,
            subject_type=subject_type,
            subject_id=sid,
            status=Finding.Status.OPEN,
            evidence=cond.evidence,
            evidence_key=key,
            opened_at=now,
            first_opened_at=now,
        )
        _refresh(finding, cond, now)
        to_create.append(finding)
        result.add(kind, "opened")

    gone = [f for sid, f in unresolved.items() if sid not in conditions]
    for finding in gone:
        finding.status = Finding.Status.RESOLVED
        finding.resolved_at = now
        finding.updated_at = now
        events.append(_event(finding, FindingEvent.Action.RESOLVED, now))
    result.add(kind, "resolved", len(gone))
    if dry_run:
        return
    if touched:
        Finding.objects.filter(pk__in=touched).update(last_seen_at=now)
    if to_update or gone:
        Finding.objects.bulk_update(
            to_update + gone, UPDATE_FIELDS + ["assigned_manually"], batch_size=1000
        )
    if to_create:
        Finding.objects.bulk_create(to_create, batch_size=1000)
        for finding in to_create:
            events.append(_event(finding, FindingEvent.Action.OPENED, now))
    result.opened_ids.extend(f.pk for f in to_create + reopened)
    if events:
        FindingEvent.objects.bulk_create(events, batch_size=2000)


# What a run may rewrite on a lasting finding, besides when it was last seen.
STATE_FIELDS = [
    Finding._meta.get_field(name).attname
    for name in [*UPDATE_FIELDS, "assigned_manually"]
    if name not in {"last_seen_at", "updated_at"}
]


def _state(finding: Finding) -> tuple:
    return tuple(getattr(finding, name) for name in STATE_FIELDS)


def _event(
    finding: Finding, action: str, now: datetime, *, note: str = ""
) -> FindingEvent:
    # The finding of a create has no pk yet; the caller builds those after the insert.
    return FindingEvent(
        finding=finding, kind=finding.kind, action=action, at=now, note=note
    )


def _ranges(subject_type: str) -> Iterator[tuple[int, int]]:
    model = SUBJECT_MODELS[subject_type]
    bounds = model.objects.aggregate(lo=Min("id"), hi=Max("id"))
    # Findings may outlive no subject (they cascade), but cover their ids too.
    fb = Finding.objects.filter(subject_type=subject_type).aggregate(
        lo=Min("subject_id"), hi=Max("subject_id")
    )
    los = [v for v in (bounds["lo"], fb["lo"]) if v is not None]
    his = [v for v in (bounds["hi"], fb["hi"]) if v is not None]
    if not los:
        return
    lo, hi = min(los), max(his)
    start = lo
    while start <= hi:
        yield start, start + RANGE_CHUNK
        start += RANGE_CHUNK


def _selected(kinds: Collection[str] | None) -> list[Detector]:
    from governance.detectors import DETECTORS

    if not kinds:
        return list(DETECTORS)
    unknown = set(kinds) - {d.kind for d in DETECTORS}
    if unknown:
        raise ValueError(f"unknown finding kind: {', '.join(sorted(unknown))}")
    return [d for d in DETECTORS if d.kind in kinds]


def run(
    *,
    kinds: Collection[str] | None = None,
    scope: dict[str, Collection[int]] | None = None,
    now: datetime | None = None,
    dry_run: bool = False,
    notify: bool = True,
) -> RunResult:
    """Detect and keep the findings. `scope` ({subject_type: ids}) limits it to those
    subjects; without it every subject is scanned, in chunks of `RANGE_CHUNK` ids."""
    now = now or timezone.now()
    result = RunResult()
    for detector in _selected(kinds):
        if scope is not None:
            ids = scope.get(detector.subject_type) or ()
            ids = sorted(set(ids))
            for start in range(0, len(ids), CHUNK):
                part = ids[start : start + CHUNK]
                _run_chunk(detector, part, None, now, result, dry_run)
            continue
        for id_range in _ranges(detector.subject_type):
            _run_chunk(detector, None, id_range, now, result, dry_run)
    if notify and not dry_run and result.opened_ids:
        from governance import notifications

        notifications.findings_assigned(finding_ids=result.opened_ids)
    return result


def _run_chunk(
    detector: Detector,
    ids: Collection[int] | None,
    id_range: tuple[int, int] | None,
    now: datetime,
    result: RunResult,
    dry_run: bool,
) -> None:
    with transaction.atomic():
        _lock(detector.kind)
        conditions = {
            c.subject_id: c for c in detector.scan(now=now, ids=ids, id_range=id_range)
        }
        _apply(detector, conditions, ids, id_range, now, result, dry_run)
        if dry_run:
            transaction.set_rollback(True)


def scope_for_changes(changes: Iterable[tuple[str, int]]) -> dict[str, set[int]]:
    """The subjects whose findings may have moved when these objects changed
    ((object_type label, id) pairs, as change notices name them)."""
    deployments: set[int] = set()
    identities: set[int] = set()
    models: set[int] = set()
    versions: set[int] = set()
    systems: set[int] = set()
    for object_type, object_id in changes:
        label = object_type.split(".")[-1]
        if label == "deployment":
            deployments.add(object_id)
        elif label == "nonhumanidentity":
            identities.add(object_id)
        elif label == "aimodel":
            models.add(object_id)
        elif label == "modelversion":
            versions.add(object_id)
        elif label == "system":
            systems.add(object_id)
        elif label == "dependency":
            deployments.update(
                im.Dependency.objects.filter(pk=object_id).values_list(
                    "upstream_id", flat=True
                )
            )
    if versions:
        models.update(
            im.ModelVersion.objects.filter(pk__in=versions).values_list(
                "model_id", flat=True
            )
        )
    if systems:
        deployments.update(
            im.Deployment.objects.filter(system_id__in=systems).values_list(
                "pk", flat=True
            )
        )
    if models:
        deployments.update(
            im.Deployment.objects.filter(model_id__in=models).values_list(
                "pk", flat=True
            )
        )
        identities.update(
            im.NonHumanIdentity.objects.filter(model_id__in=models).values_list(
                "pk", flat=True
            )
        )
    through = im.NonHumanIdentity.deployments.through
    if identities:
        # A credential's change (vendor, kind, status, bindings) moves the third-party
        # exposure of the deployments it is bound to.
        deployments.update(
            through.objects.filter(nonhumanidentity_id__in=identities).values_list(
                "deployment_id", flat=True
            )
        )
    if deployments:
        identities.update(
            through.objects.filter(deployment_id__in=deployments).values_list(
                "nonhumanidentity_id", flat=True
            )
        )
        models.update(
            im.Deployment.objects.filter(pk__in=deployments).values_list(
                "model_id", flat=True
            )
        )
    return {
        Finding.Subject.DEPLOYMENT: deployments,
        Finding.Subject.IDENTITY: identities,
        Finding.Subject.MODEL: models,
    }
