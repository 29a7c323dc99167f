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

Running it twice changes nothing the second time but `last_seen_at`, and that only once
it is `FINDINGS_SEEN_REFRESH_MINUTES` old. Two workers at once
are serialized per kind by a lock (PostgreSQL's advisory lock; SQLite has one writer), and
the partial unique constraint `finding_one_unresolved` holds whatever happens.

Scope: `run()` over everything (nightly, `manage.py detect_findings`), or over the
subjects that changed (`scope_for_changes`, after each sync batch and push).
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from django.conf import settings
from django.db import connection, connections, transaction
from django.db.models import JSONField, Max, Min
from django.utils import timezone

from audit.sql import copy_rows, fetch_rows, reserve_ids, update_rows
from governance.models import Finding, FindingEvent
from governance.notifications import NOTIFY_MIN_SEVERITY
from inventory import models as im

log = logging.getLogger(__name__)

CHUNK = 5000  # ids per chunk of a change scope (an IN list)
# Ids per chunk of a full run. The usage-based scans (shadow, deprecated, out of bounds)
# read UsageHour by time window whatever the id range, so their cost is per chunk, not per
# id: at 10,000 models / 50,000 deployments one shadow scan took 8.3 s for 5,000 ids and
# 4.2 s for 50,000. Memory stays bounded by one chunk's conditions and findings.
RANGE_CHUNK = 50_000
# Smaller chunks where a chunk's cost is its ids' (identities): a full run's threads then
# share the last of them evenly instead of one thread finishing a large one alone.
RANGE_CHUNKS: dict[str, int] = {Finding.Subject.IDENTITY: 25_000}


def _range_chunk(subject_type: str) -> int:
    return RANGE_CHUNKS.get(subject_type, RANGE_CHUNK)


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


def _severity(kind: str, tier: int) -> int:
    base = BASE_SEVERITY[kind]
    return int(max(Severity.LOW, min(Severity.CRITICAL, base + TIER_STEP.get(tier, 0))))


# Every (kind, tier) worked out once: a first full run asks twice per new finding.
_SEVERITIES = {
    (kind, tier): _severity(kind, tier) for kind in BASE_SEVERITY for tier in TIER_STEP
}


def severity_for(kind: str, tier: int) -> int:
    known = _SEVERITIES.get((kind, tier))
    return known if known is not None else _severity(kind, tier)


# What `json.dumps(…, sort_keys=True, default=str)` and `json.dumps(…, default=str)`
# write, without building an encoder per call (three per new finding).
_FACTS_JSON = json.JSONEncoder(sort_keys=True, default=str)
_RECORDS_JSON = json.JSONEncoder(default=str)


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
    # {"source": "mlflow-prod", "what": "version 4 registered", "at": "2026-…"}; or a
    # function that lists them, called only if the finding's evidence is written (a new
    # finding, changed facts): most conditions of a run meet an unchanged finding.
    records: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]] = field(
        default_factory=list
    )
    # The records as JSON text, when a detector can write it faster than encoding the
    # list (it must equal `json.dumps(records)`): used only while `records` is unlisted.
    records_json: Callable[[], str] | None = None
    deployment_id: int | None = None
    identity_id: int | None = None
    model_id: int | None = None
    team_id: int | None = None
    owner_id: int | None = None
    tier: int = 4
    source: str = ""
    severity: int | None = None
    # The facts as JSON, encoded once for the key and the evidence.
    _facts_text: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def evidence_key(self) -> str:
        return hashlib.sha256(self._facts_json().encode()).hexdigest()

    def _facts_json(self) -> str:
        if self._facts_text is None:
            self._facts_text = _FACTS_JSON.encode(self.facts)
        return self._facts_text

    def record_list(self) -> list[dict[str, Any]]:
        """`records`, listed (once) if given as a function."""
        if callable(self.records):
            self.records = self.records()
        return self.records

    def evidence_json(self) -> str:
        """`evidence` as JSON text, its facts encoded as for the key (once per run)."""
        if self.records_json is not None and callable(self.records):
            records = self.records_json()
        else:
            records = _RECORDS_JSON.encode(self.record_list())
        return f'{{"facts": {self._facts_json()}, "records": {records}}}'

    @property
    def evidence(self) -> dict[str, Any]:
        return {"facts": self.facts, "records": self.record_list()}

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
    # Findings opened or reopened this run that notify their assignee (high or above,
    # assigned to a person): the notifications re-check them; this keeps the list short.
    opened_ids: list[int] = field(default_factory=list)
    # Whether a finding was opened, rewritten or resolved (not only seen again).
    changed: bool = False

    def add(self, kind: str, what: str, n: int = 1) -> None:
        if n:
            self.counts[what] += n
            self.by_kind.setdefault(kind, Counter())[what] += n

    def merge(self, other: RunResult) -> None:
        """Add `other`'s counts and opened ids (a part of the same run)."""
        self.counts.update(other.counts)
        for kind, counts in other.by_kind.items():
            self.by_kind.setdefault(kind, Counter()).update(counts)
        self.opened_ids.extend(other.opened_ids)
        self.changed = self.changed or other.changed

    def as_dict(self) -> dict[str, Any]:
        return {
            "totals": dict(self.counts),
            "by_kind": {k: dict(v) for k, v in sorted(self.by_kind.items())},
        }


# Reads shared by the detectors of one run, e.g. the identities' tiers of a chunk:
# {name: (key, value)}, one key per name at a time, so memory stays one chunk's.
_MEMO: ContextVar[dict[str, tuple[Any, Any]] | None] = ContextVar(
    "runproof_detection_memo", default=None
)


# The kinds the current run detects (None outside a run): a read shared by several
# detectors computes only what this run's detectors use.
_KINDS: ContextVar[frozenset[str] | None] = ContextVar(
    "runproof_detection_kinds", default=None
)


def running_kinds() -> frozenset[str] | None:
    """The kinds of the run in progress, or None outside a run."""
    return _KINDS.get()


def memo(name: str, key: Any, compute: Callable[[], Any]) -> Any:
    """`compute()`, once per run for the same `name` and `key` (outside a run, on each
    call). A run visits each chunk with all the detectors of its subject type in turn,
    so a chunk's shared read is made once, not once per detector."""
    store = _MEMO.get()
    if store is None:
        return compute()
    held = store.get(name)
    if held is not None and held[0] == key:
        return held[1]
    value = compute()
    store[name] = (key, value)
    return value


def _lock(kind: str, id_range: tuple[int, int] | None = None) -> None:
    """Serialize runs of one kind until the transaction ends (PostgreSQL).

    Without `id_range` (a change scope, a person acting on a finding) the kind's lock is
    taken exclusively. A chunk of a full run (`id_range`, aligned to its size by
    `_ranges`) takes it shared and its range's own lock exclusively: the chunks of one
    kind go side by side on a run's threads (`_run_units`), two full runs meet chunk by
    chunk, and an exclusive holder waits for the chunks in flight and they for it."""
    if connection.vendor == "postgresql":
        key = zlib.crc32(f"runproof.detect.{kind}".encode())
        with connection.cursor() as cursor:
            if id_range is None:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
            else:
                # The two-key form (int4, int4) is its own key space beside the bigint's.
                cursor.execute(
                    "SELECT pg_advisory_xact_lock_shared(%s), "
                    "pg_advisory_xact_lock(%s, %s)",
                    [
                        key,
                        key - 2**32 if key >= 2**31 else key,
                        # The chunk's index: its ranges are aligned to its size.
                        id_range[0] // (id_range[1] - id_range[0]),
                    ],
                )


def _chunk_settings() -> None:
    """For the rest of the chunk's transaction (PostgreSQL): no JIT compilation, and a
    commit that does not wait for its WAL to reach the disk.

    A scan's estimated cost passes `jit_above_cost` at 50,000 subjects, and compiling
    then took a third of each query (175 of 548 ms) for plans that run well under a
    second. A crash can lose the last moment of a run's asynchronous commits, never
    half of one (https://www.postgresql.org/docs/15/wal-async-commit.html); detection
    is idempotent, so the next run redoes them, and any later synchronous commit (the
    change consumer marking its notices done) flushes them first."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off; SET LOCAL synchronous_commit = off")


def _assignment(cond: Condition) -> tuple[str, int | None]:
    if cond.owner_id:
        return Finding.Queue.OWNER, cond.owner_id
    if cond.team_id:
        return Finding.Queue.TEAM, None
    return Finding.Queue.COMMITTEE, None


def _refresh(finding: Finding, cond: Condition, now: datetime) -> None:
    for name, value in zip(REFRESHED, _refreshed(cond), strict=True):
        setattr(finding, name, value)
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


# What a run compares on an unresolved finding, read as a plain row (no evidence, no
# model instance): most findings of a run are unchanged, and for those only
# `last_seen_at` moves, in one UPDATE for the chunk, and only once it is
# FINDINGS_SEEN_REFRESH_MINUTES old.
# The columns every run rewrites from its condition (`_refresh`), in `_refreshed` order.
REFRESHED = (
    "title",
    "severity",
    "tier",
    "deployment_id",
    "identity_id",
    "model_id",
    "team_id",
    "owner_id",
    "source",
)
LIGHT_FIELDS = (
    "id",
    "subject_id",
    "last_seen_at",
    "status",
    "evidence_key",
    "suppressed_key",
    "accepted_until",
    "assigned_manually",
    "queue",
    "assignee_id",
    *REFRESHED,
)
_FIXED = len(LIGHT_FIELDS) - len(REFRESHED)


def _refreshed(cond: Condition) -> tuple:
    """What `_refresh` writes from `cond` into the REFRESHED columns."""
    return (
        cond.title[:300],
        cond.resolved_severity(),
        cond.tier,
        cond.deployment_id,
        cond.identity_id,
        cond.model_id,
        cond.team_id,
        cond.owner_id,
        cond.source[:100],
    )


def _unchanged(row: tuple, cond: Condition, key: str, now: datetime) -> bool:
    """Whether applying `cond` to the unresolved finding `row` (LIGHT_FIELDS) would move
    nothing but its last seen time (the same test as comparing the finding before and
    after `_refresh`, without building it)."""
    (
        _pk,
        _sid,
        _last_seen_at,
        status,
        evidence_key,
        suppressed_key,
        accepted_until,
        assigned_manually,
        queue,
        assignee_id,
    ) = row[:_FIXED]
    if evidence_key != key:
        return False
    if status == Finding.Status.FALSE_POSITIVE and suppressed_key != key:
        return False
    if (
        status == Finding.Status.ACCEPTED
        and accepted_until is not None
        and accepted_until <= now
    ):
        return False
    if not assigned_manually and (queue, assignee_id) != _assignment(cond):
        return False
    return row[_FIXED:] == _refreshed(cond)


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
        row[1]: row
        for row in fetch_rows(
            findings.exclude(status=Finding.Status.RESOLVED).values_list(*LIGHT_FIELDS)
        )
    }
    keys = {sid: cond.evidence_key for sid, cond in conditions.items()}

    touched: list[int] = []  # only last seen moves
    changing: dict[int, int] = {}  # finding pk -> subject id, rewritten below
    missing: list[int] = []
    refresh_before = now - timedelta(minutes=settings.FINDINGS_SEEN_REFRESH_MINUTES)
    for sid, cond in conditions.items():
        row = unresolved.get(sid)
        if row is None:
            missing.append(sid)
        elif _unchanged(row, cond, keys[sid], now):
            if row[2] < refresh_before:
                touched.append(row[0])
        else:
            changing[row[0]] = sid
    result.add(kind, "updated", len(conditions) - len(missing))

    to_update: list[Finding] = []
    events: list[tuple[int, str, str]] = []  # (finding id, action, note)
    for finding in Finding.objects.filter(pk__in=list(changing)) if changing else ():
        cond = conditions[changing[finding.pk]]
        _update(finding, cond, keys[finding.subject_id], now, result, events)
        to_update.append(finding)

    resolved: dict[int, Finding] = {}
    if missing:
        earlier = Finding.objects.filter(
            kind=kind, subject_type=subject_type, status=Finding.Status.RESOLVED
        )
        if subject_ids is None and id_range is not None:
            # A range reads its resolved findings by range: an IN list of up to a whole
            # chunk's ids is slower to send and plan than the index range.
            earlier = earlier.filter(
                subject_id__gte=id_range[0], subject_id__lt=id_range[1]
            )
        else:
            earlier = earlier.filter(subject_id__in=missing)
        wanted = set(missing)
        for f in earlier.order_by("subject_id", "-resolved_at", "-id"):
            if f.subject_id in wanted:
                resolved.setdefault(f.subject_id, f)

    new: list[Condition] = []
    reopened: list[Finding] = []
    for sid in missing:
        cond, key = conditions[sid], keys[sid]
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
            finding.updated_at = now
            to_update.append(finding)
            reopened.append(finding)
            events.append(_event(finding, FindingEvent.Action.REOPENED))
            result.add(kind, "reopened")
            continue
        new.append(cond)
    result.add(kind, "opened", len(new))

    gone = [row[0] for sid, row in unresolved.items() if sid not in conditions]
    events.extend((pk, FindingEvent.Action.RESOLVED, "") for pk in gone)
    result.add(kind, "resolved", len(gone))
    if dry_run:
        return
    if gone or to_update or new:
        result.changed = True
    if touched:
        _set_where_ids(touched, last_seen_at=now)
    if gone:
        _set_where_ids(
            gone, status=Finding.Status.RESOLVED, resolved_at=now, updated_at=now
        )
    if to_update:
        update_rows(Finding, to_update, UPDATE_FIELDS + ["assigned_manually"])
    if new:
        created = _create(kind, subject_type, new, keys, now)
        events.extend((pk, FindingEvent.Action.OPENED, "") for pk in created)
        result.opened_ids.extend(
            pk for pk, cond in zip(created, new, strict=True) if _notifies(cond)
        )
    result.opened_ids.extend(f.pk for f in reopened if _notifies_finding(f))
    if events:
        _write_events(kind, events, now)


def _update(
    finding: Finding,
    cond: Condition,
    key: str,
    now: datetime,
    result: RunResult,
    events: list[tuple[int, str, str]],
) -> None:
    """Apply `cond` to its unresolved finding (which `_unchanged` found moving)."""
    kind = finding.kind
    _refresh(finding, cond, now)
    finding.updated_at = now
    if finding.evidence_key != key:
        finding.evidence = cond.evidence
        finding.evidence_key = key
        events.append(_event(finding, FindingEvent.Action.EVIDENCE))
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
                note="The evidence changed since it was marked a false positive.",
            )
        )
        result.add(kind, "reopened")
        if _notifies_finding(finding):
            result.opened_ids.append(finding.pk)
    elif (
        finding.status == Finding.Status.ACCEPTED
        and finding.accepted_until
        and finding.accepted_until <= now
    ):
        finding.status = Finding.Status.OPEN
        events.append(_event(finding, FindingEvent.Action.ACCEPTANCE_EXPIRED))
        result.add(kind, "acceptance_expired")
        if _notifies_finding(finding):
            result.opened_ids.append(finding.pk)


def _notifies_as(severity: int, assignee_id: int | None) -> bool:
    """Whether a finding of this severity and assignee notifies them
    (`notifications.findings_assigned`)."""
    return severity >= NOTIFY_MIN_SEVERITY and assignee_id is not None


def _notifies(cond: Condition) -> bool:
    """Whether a finding opened for `cond` notifies its assignee."""
    return _notifies_as(cond.resolved_severity(), _assignment(cond)[1])


def _notifies_finding(finding: Finding) -> bool:
    return _notifies_as(finding.severity, finding.assignee_id)


def _set_where_ids(pks: list[int], **values: Any) -> None:
    """UPDATE `values` on the findings `pks`, in batches (on PostgreSQL the ids go as
    one array parameter, not a placeholder each)."""
    if connection.vendor != "postgresql":
        for start in range(0, len(pks), SET_BATCH):
            Finding.objects.filter(pk__in=pks[start : start + SET_BATCH]).update(
                **values
            )
        return
    qn = connection.ops.quote_name
    opts = Finding._meta
    fields = [opts.get_field(name) for name in values]
    sets = ", ".join(f"{qn(f.column)} = %s" for f in fields)
    params = [f.get_db_prep_save(values[f.name], connection) for f in fields]
    # Only quoted names from the model's meta are formatted in; values are parameters.
    sql = f"UPDATE {qn(opts.db_table)} SET {sets} WHERE {qn(opts.pk.column)} = ANY(%s)"  # noqa: S608
    with connection.cursor() as cursor:
        for start in range(0, len(pks), SET_BATCH):
            cursor.execute(sql, [*params, pks[start : start + SET_BATCH]])


# The columns a new finding or event is written with (the generated priority is the
# database's), as `_create` and `_write_events` copy them.
FINDING_COLUMNS = [f.column for f in Finding._meta.concrete_fields if not f.generated]
# The columns `_create` sets on a new finding, in the order it gives them.
CREATE_SET = (
    "id",
    "kind",
    "subject_type",
    "subject_id",
    *REFRESHED,
    "status",
    "queue",
    "assignee_id",
    "evidence",
    "evidence_key",
    "opened_at",
    "first_opened_at",
    "last_seen_at",
    "updated_at",
)
EVENT_COLUMNS = [
    f.column for f in FindingEvent._meta.concrete_fields if not f.primary_key
]
SET_BATCH = 20_000  # ids per UPDATE of one set of values


def _event(finding: Finding, action: str, *, note: str = "") -> tuple[int, str, str]:
    """An event of the chunk's kind at the run's time, as `_write_events` takes it."""
    return (finding.pk, action, note)


def _create(
    kind: str,
    subject_type: str,
    conds: list[Condition],
    keys: dict[int, str],
    now: datetime,
) -> list[int]:
    """Open a finding for each condition; their ids, in order. On PostgreSQL the rows
    are built as tuples (no model instances) and written with one COPY under ids taken
    from the sequence first: at a first full run that is hundreds of thousands of rows."""
    if connection.vendor != "postgresql":
        objs = []
        for cond in conds:
            finding = Finding(
                kind=kind,
                subject_type=subject_type,
                subject_id=cond.subject_id,
                status=Finding.Status.OPEN,
                evidence=cond.evidence,
                evidence_key=keys[cond.subject_id],
                opened_at=now,
                first_opened_at=now,
                updated_at=now,
            )
            _refresh(finding, cond, now)
            objs.append(finding)
        Finding.objects.bulk_create(objs, batch_size=1000)
        return [f.pk for f in objs]
    ids = reserve_ids(Finding, len(conds))
    defaults = _defaults(Finding)
    # The columns set here first, in CREATE_SET order, then the others with their
    # defaults: each row is its values and one shared tail (no per-column assignment).
    rest = [c for c in FINDING_COLUMNS if c not in CREATE_SET]
    tail = tuple(defaults.get(c) for c in rest)
    status = Finding.Status.OPEN.value

    def rows() -> Iterator[tuple]:
        for pk, cond in zip(ids, conds, strict=True):
            queue, assignee = _assignment(cond)
            yield (
                pk,
                kind,
                subject_type,
                cond.subject_id,
                *_refreshed(cond),
                status,
                queue,
                assignee,
                cond.evidence_json(),
                keys[cond.subject_id],
                now,
                now,
                now,
                now,
                *tail,
            )

    copy_rows(Finding, [*CREATE_SET, *rest], rows())
    return ids


def _write_events(kind: str, events: list[tuple[int, str, str]], now: datetime) -> None:
    """Write the chunk's events ((finding id, action, note), all of `kind`, at `now`)."""
    if connection.vendor != "postgresql":
        FindingEvent.objects.bulk_create(
            [
                FindingEvent(finding_id=pk, kind=kind, action=action, at=now, note=note)
                for pk, action, note in events
            ],
            batch_size=2000,
        )
        return
    defaults = _defaults(FindingEvent)
    defaults.update(kind=kind, at=now)
    # The columns each event sets first, then the others: one shared tail per row.
    head = ("finding_id", "action", "note")
    rest = [c for c in EVENT_COLUMNS if c not in head]
    tail = tuple(defaults.get(c) for c in rest)
    copy_rows(
        FindingEvent,
        [*head, *rest],
        ((pk, action, note, *tail) for pk, action, note in events),
    )


def _defaults(model: type) -> dict[str, Any]:
    """The database value of each written column of a new `model` row with its model
    defaults (JSON dumped to text, as COPY takes it): what a row not set otherwise gets."""
    obj = model()
    values = {}
    for f in model._meta.concrete_fields:
        if f.primary_key or f.generated:
            continue
        value = getattr(obj, f.attname)
        if isinstance(f, JSONField):
            values[f.column] = None if value is None else json.dumps(value)
        else:
            values[f.column] = f.get_db_prep_save(value, connection)
    return values


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
    # Aligned to the chunk size, so every run's chunks (and their locks, `_lock`) are the
    # same.
    size = _range_chunk(subject_type)
    start = lo - lo % size
    while start <= hi:
        yield start, start + size
        start += size


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
    subjects; without it every subject is scanned, in chunks of `RANGE_CHUNK` ids
    (`RANGE_CHUNKS` for identities).

    A full run on PostgreSQL, outside a transaction, scans its chunks side by side
    (`FINDINGS_DETECT_THREADS` threads, each on its own connection, taking the next
    chunk of any subject type; `_run_units`): while one waits for the database, another
    builds its rows."""
    now = now or timezone.now()
    result = RunResult()
    groups = _by_subject_type(kinds)
    running = frozenset(d.kind for _, detectors in groups for d in detectors)
    workers = _parallel(scope)
    if workers > 1:
        units = [(t, ds, r) for t, ds in groups for r in _ranges(t)]
        result.merge(_run_units(units, workers, now, dry_run, running))
    else:
        for subject_type, detectors in groups:
            result.merge(
                _run_type(subject_type, detectors, scope, now, dry_run, running)
            )
    if result.changed:
        # The dashboard's counts and chart, cached a minute, recount at once in this
        # process (once the run's changes are committed, if it runs in a transaction).
        from governance import selectors_findings

        transaction.on_commit(selectors_findings.chart_changed)
    if notify and not dry_run and result.opened_ids:
        from governance import notifications

        notifications.findings_assigned(finding_ids=result.opened_ids)
    return result


def _by_subject_type(
    kinds: Collection[str] | None,
) -> list[tuple[str, list[Detector]]]:
    """The selected detectors grouped by subject type, in the order they run."""
    by_type: dict[str, list[Detector]] = {}
    for detector in _selected(kinds):
        by_type.setdefault(detector.subject_type, []).append(detector)
    return list(by_type.items())


def _parallel(scope: dict[str, Collection[int]] | None) -> int:
    """How many threads a run uses: `FINDINGS_DETECT_THREADS` (at most one per chunk,
    `_run_units`) for a full run on PostgreSQL outside a transaction (a thread's own
    connection would not see an enclosing transaction's rows). Otherwise 1: a change
    scope is small, and SQLite has one writer."""
    if (
        scope is not None
        or connection.vendor != "postgresql"
        or connection.in_atomic_block
    ):
        return 1
    return max(1, settings.FINDINGS_DETECT_THREADS)


def _run_units(
    units: list[tuple[str, list[Detector], tuple[int, int]]],
    workers: int,
    now: datetime,
    dry_run: bool,
    running: frozenset[str],
) -> RunResult:
    """The chunks of a full run, (subject type, its detectors, id range) each, on
    `workers` threads: each thread takes the next chunk when it is done with one, on its
    own connection (closed when it stops), so a subject type of many chunks (identities)
    is not left to one thread while the others idle. The first error stops the threads
    at their next chunk and is raised here."""
    pending: queue.SimpleQueue = queue.SimpleQueue()
    for unit in units:
        pending.put(unit)
    results: list[RunResult] = []
    errors: list[BaseException] = []

    def work() -> None:
        result = RunResult()
        try:
            while not errors:
                try:
                    subject_type, detectors, id_range = pending.get_nowait()
                except queue.Empty:
                    break
                _run_range(
                    subject_type, detectors, id_range, now, dry_run, running, result
                )
        except BaseException as exc:  # raised below, in the run's thread
            errors.append(exc)
        finally:
            results.append(result)
            connections.close_all()

    threads = [
        threading.Thread(target=work, name=f"detect-{n}")
        for n in range(min(workers, len(units)))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    merged = RunResult()
    for result in results:
        merged.merge(result)
    return merged


def _run_range(
    subject_type: str,
    detectors: list[Detector],
    id_range: tuple[int, int],
    now: datetime,
    dry_run: bool,
    running: frozenset[str],
    result: RunResult,
) -> None:
    """Every detector of the subject type on one chunk of ids in turn (each in its own
    transaction), so reads they share are made once for the chunk (`memo`)."""
    token, kinds_token = _MEMO.set({}), _KINDS.set(running)
    try:
        for detector in detectors:
            _run_chunk(detector, None, id_range, now, result, dry_run)
    finally:
        _MEMO.reset(token)
        _KINDS.reset(kinds_token)


def _run_type(
    subject_type: str,
    detectors: list[Detector],
    scope: dict[str, Collection[int]] | None,
    now: datetime,
    dry_run: bool,
    running: frozenset[str],
) -> RunResult:
    """Chunk by chunk of one subject type, every detector of the type on each chunk in
    turn (each in its own transaction), so reads they share are made once per chunk
    (`memo`)."""
    result = RunResult()
    if scope is None:
        for id_range in _ranges(subject_type):
            _run_range(subject_type, detectors, id_range, now, dry_run, running, result)
        return result
    token, kinds_token = _MEMO.set({}), _KINDS.set(running)
    try:
        ids = sorted(set(scope.get(subject_type) or ()))
        for start in range(0, len(ids), CHUNK):
            part = ids[start : start + CHUNK]
            for detector in detectors:
                _run_chunk(detector, part, None, now, result, dry_run)
    finally:
        _MEMO.reset(token)
        _KINDS.reset(kinds_token)
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
        _lock(detector.kind, id_range)
        _chunk_settings()
        if _opens_in_sql(detector, id_range, dry_run):
            rows = detector.open_all(now=now, id_range=id_range)
            result.add(detector.kind, "opened", len(rows))
            result.opened_ids.extend(
                pk
                for pk, severity, assignee in rows
                if _notifies_as(severity, assignee)
            )
            result.changed = result.changed or bool(rows)
            return
        conditions = {
            c.subject_id: c for c in detector.scan(now=now, ids=ids, id_range=id_range)
        }
        _apply(detector, conditions, ids, id_range, now, result, dry_run)
        if dry_run:
            transaction.set_rollback(True)


def _opens_in_sql(
    detector: Detector, id_range: tuple[int, int] | None, dry_run: bool
) -> bool:
    """Whether the chunk's findings of this kind are all new and PostgreSQL may open
    them in one statement (`detector.open_all`): a chunk of a full run, not a dry run,
    and `kinds_opened_in_sql`. Asked under the chunk's lock (`_lock`)."""
    if id_range is None or dry_run:
        return False
    return detector.kind in kinds_opened_in_sql(
        [detector], detector.subject_type, id_range
    )


def kinds_opened_in_sql(
    detectors: Iterable[Detector], subject_type: str, id_range: tuple[int, int]
) -> set[str]:
    """The kinds of `detectors` whose findings in `id_range` a chunk opens in one
    statement (the identity rules': see `detectors.identities_sql`): a detector with the
    SQL of its title and facts, on PostgreSQL with `FINDINGS_OPEN_IN_SQL` on, and no
    finding of its kind in the range (nothing to update, resolve or reopen)."""
    if connection.vendor != "postgresql" or not settings.FINDINGS_OPEN_IN_SQL:
        return set()
    return {
        d.kind
        for d in detectors
        if getattr(d, "title_sql", None) is not None
        and getattr(d, "facts_sql", None) is not None
        and not Finding.objects.filter(
            kind=d.kind,
            subject_type=subject_type,
            subject_id__gte=id_range[0],
            subject_id__lt=id_range[1],
        ).exists()
    }


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
