"""The audit trail: append events to a hash chain, verify it, sign checkpoints of its head."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent

if TYPE_CHECKING:
    from collections.abc import Iterator


GENESIS_HASH = "0" * 64
AUDIT_NEWEST_MISSING = (
    "events #{first} to #{head} are missing: the chain's head row is at #{head}"
)
AUDIT_HEAD_DIFFERS = "event #{seq} differs from the chain's head row"


def canonical(event: AuditEvent) -> str:
    """The exact text that is hashed. Never change a form: add a new one.

    Form 1 (events with no `actor_kind`, written before actor kinds existed) is kept as it
    was, so their stored hashes still verify; form 2 adds the actor's kind and its own
    version number, so an event cannot be passed off as the other form.
    """
    fields = {
        "seq": event.seq,
        "occurred_at": event.occurred_at.astimezone(dt.UTC).isoformat(
            timespec="microseconds"
        ),
        "actor_id": event.actor_id,
        "actor_label": event.actor_label,
        "ip_address": event.ip_address,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "team_id": event.team_id,
        "before": event.before,
        "after": event.after,
    }
    if event.actor_kind is not None:
        fields["canonical_form"] = 2
        fields["actor_kind"] = event.actor_kind
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical(event)}".encode()).hexdigest()


# ---------------------------------------------------------------------------
# Verification
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ChainProblem:
    seq: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    events: int
    checkpoints: int
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _events(batch: int = 5000) -> Iterator[AuditEvent]:
    last = 0
    while True:
        chunk = list(AuditEvent.objects.filter(seq__gt=last).order_by("seq")[:batch])
        if not chunk:
            return
        yield from chunk
        last = chunk[-1].seq


def checkpoint_key() -> bytes:
    key = settings.AUDIT_CHECKPOINT_KEY or f"audit-checkpoint:{settings.SECRET_KEY}"
    return key.encode()


def checkpoint_signature(seq: int, hash_: str, taken_at: Any) -> str:
    message = f"{seq}:{hash_}:{taken_at.astimezone(dt.UTC).isoformat(timespec='microseconds')}"
    return hmac.new(checkpoint_key(), message.encode(), hashlib.sha256).hexdigest()


class CheckpointFileError(Exception):
    pass


def _file_checkpoints() -> list[AuditCheckpoint]:
    """The copies written outside the database (AUDIT_CHECKPOINT_FILE), as unsaved rows."""
    path = settings.AUDIT_CHECKPOINT_FILE
    if not path or not Path(path).exists():
        return []
    found = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                found.append(
                    AuditCheckpoint(
                        seq=int(data["seq"]),
                        hash=str(data["hash"]),
                        taken_at=dt.datetime.fromisoformat(data["taken_at"]),
                        signature=str(data["signature"]),
                    )
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise CheckpointFileError(
                    f"checkpoint file line {number} is unreadable"
                ) from exc
    return found


def _all_checkpoints() -> list[AuditCheckpoint]:
    """Checkpoints from the table and from the file. Deleting rows from the table removes no
    evidence: the file's copies are checked all the same."""
    unique: dict[tuple, AuditCheckpoint] = {}
    for cp in [*AuditCheckpoint.objects.order_by("seq"), *_file_checkpoints()]:
        unique.setdefault((cp.seq, cp.hash, cp.signature), cp)
    return sorted(unique.values(), key=lambda cp: cp.seq)


def _append_to_file(checkpoint: AuditCheckpoint) -> None:
    path = settings.AUDIT_CHECKPOINT_FILE
    if not path:
        return
    line = json.dumps(
        {
            "seq": checkpoint.seq,
            "hash": checkpoint.hash,
            "taken_at": checkpoint.taken_at.astimezone(dt.UTC).isoformat(
                timespec="microseconds"
            ),
            "signature": checkpoint.signature,
        },
        sort_keys=True,
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def audit_chain_verify() -> ChainReport:
    """Walk the whole chain in order; report the first broken link, if any.

    Checks, per event: seq follows the previous one (a deleted event leaves a gap),
    prev_hash equals the previous hash, and the stored hash matches the recomputed one
    (an edited event). Then the chain must reach its head row (deleting the newest events,
    written after the last checkpoint, leaves no gap but leaves the head ahead of them),
    and every signed checkpoint must match the event at its seq.
    """
    expected_prev, expected_seq, count = GENESIS_HASH, 1, 0
    hashes_at: dict[int, str] = {}
    try:
        checkpoints = _all_checkpoints()
    except CheckpointFileError as exc:
        return ChainReport(0, 0, ChainProblem(0, str(exc)))
    # Read before the walk: events appended meanwhile only take the chain past it.
    head = AuditChainHead.objects.filter(pk=1).values_list("seq", "last_hash").first()
    head_seq, head_hash = head if head is not None else (0, GENESIS_HASH)
    wanted = {c.seq for c in checkpoints} | {head_seq}
    for event in _events():
        count += 1
        if event.seq != expected_seq:
            return ChainReport(
                count,
                len(checkpoints),
                ChainProblem(
                    expected_seq,
                    f"event #{expected_seq} is missing (next stored is #{event.seq})",
                ),
            )
        if event.prev_hash != expected_prev:
            return ChainReport(
                count,
                len(checkpoints),
                ChainProblem(
                    event.seq,
                    f"event #{event.seq} does not link to the event before it",
                ),
            )
        if event_hash(event.prev_hash, event) != event.hash:
            return ChainReport(
                count,
                len(checkpoints),
                ChainProblem(
                    event.seq,
                    f"event #{event.seq} was altered: its content no longer matches its hash",
                ),
            )
        if event.seq in wanted:
            hashes_at[event.seq] = event.hash
        expected_prev, expected_seq = event.hash, event.seq + 1
    for cp in checkpoints:
        if not hmac.compare_digest(
            cp.signature, checkpoint_signature(cp.seq, cp.hash, cp.taken_at)
        ):
            return ChainReport(
                count,
                len(checkpoints),
                ChainProblem(cp.seq, f"checkpoint at #{cp.seq} has a bad signature"),
            )
        if hashes_at.get(cp.seq) != cp.hash:
            return ChainReport(
                count,
                len(checkpoints),
                ChainProblem(
                    cp.seq,
                    f"event #{cp.seq} differs from the checkpoint signed at {cp.taken_at:%Y-%m-%d %H:%M} UTC",
                ),
            )
    if expected_seq - 1 < head_seq:
        return ChainReport(
            count,
            len(checkpoints),
            ChainProblem(
                expected_seq,
                AUDIT_NEWEST_MISSING.format(first=expected_seq, head=head_seq),
            ),
        )
    if head_seq and hashes_at.get(head_seq) != head_hash:
        return ChainReport(
            count,
            len(checkpoints),
            ChainProblem(head_seq, AUDIT_HEAD_DIFFERS.format(seq=head_seq)),
        )
    return ChainReport(count, len(checkpoints), None)


@transaction.atomic
def audit_checkpoint_take() -> AuditCheckpoint | None:
    """Sign the current head. Idempotent: nothing new since the last checkpoint, nothing written."""
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is None or head.seq == 0:
        return None
    last = AuditCheckpoint.objects.order_by("-seq").first()
    if last is not None and last.seq >= head.seq:
        return None
    taken_at = timezone.now()
    checkpoint = AuditCheckpoint.objects.create(
        seq=head.seq,
        hash=head.last_hash,
        taken_at=taken_at,
        signature=checkpoint_signature(head.seq, head.last_hash, taken_at),
    )
    # A second copy outside the database (point the setting at another host's mount): rows
    # deleted from the table are still checked from here.
    _append_to_file(checkpoint)
    return checkpoint
