"""Governance actions on inventory objects. Each checks permission and the from-state,
writes in one transaction and records the audit event in that same transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from inventory import history, permissions
from inventory import models as m
from inventory.services import change_record, hand_history
from inventory.snapshots import snapshot

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    User = AbstractBaseUser

Approval = m.ModelVersion.Approval

# The only moves a version's approval may make. Retired is final; a rejected version goes
# back to pending (resubmitted) before it can be approved.
APPROVAL_TRANSITIONS: dict[str, frozenset[str]] = {
    Approval.PENDING: frozenset({Approval.APPROVED, Approval.REJECTED}),
    Approval.APPROVED: frozenset({Approval.DEPRECATED, Approval.RETIRED}),
    Approval.DEPRECATED: frozenset({Approval.RETIRED}),
    Approval.REJECTED: frozenset({Approval.PENDING}),
    Approval.RETIRED: frozenset(),
}
# The audit action recorded for a move to each state: modelversion.<verb>.
APPROVAL_VERBS: dict[str, str] = {
    Approval.APPROVED: "approve",
    Approval.REJECTED: "reject",
    Approval.DEPRECATED: "deprecate",
    Approval.RETIRED: "retire",
    Approval.PENDING: "reopen",
}
APPROVAL_NOTE_MAX = 1000
LABELS = dict(Approval.choices)

APPROVAL_TRANSITION_NOT_ALLOWED = (
    "A version that is “{current}” cannot become “{target}”."
)
APPROVAL_UNKNOWN = "Unknown approval state {approval!r}."
APPROVAL_NOTE_TOO_LONG = f"Keep the note under {APPROVAL_NOTE_MAX} characters."


def approval_targets(approval: str) -> list[str]:
    """The states a version in `approval` may move to, in the model's choice order."""
    allowed = APPROVAL_TRANSITIONS.get(approval, frozenset())
    return [value for value in Approval.values if value in allowed]


@transaction.atomic
def model_version_set_approval(
    *, actor: User, version: m.ModelVersion, approval: str, note: str = ""
) -> m.ModelVersion:
    """The risk committee approves, rejects, deprecates, retires or reopens a version."""
    if not permissions.can_approve_versions(actor):
        raise PermissionDenied(permissions.APPROVAL_RISK_ONLY)
    if approval not in Approval.values:
        raise ValidationError(APPROVAL_UNKNOWN.format(approval=approval))
    note = note.strip()
    if len(note) > APPROVAL_NOTE_MAX:
        raise ValidationError(APPROVAL_NOTE_TOO_LONG)

    # Judge the move from the stored state, not from a copy the caller may have held for a
    # while: two reviewers acting at once must not both move the same version.
    version.refresh_from_db(from_queryset=m.ModelVersion.objects.select_for_update())
    current = version.approval
    if approval not in APPROVAL_TRANSITIONS.get(current, frozenset()):
        raise ValidationError(
            APPROVAL_TRANSITION_NOT_ALLOWED.format(
                current=LABELS.get(current, current), target=LABELS[approval]
            )
        )

    before = snapshot(version)
    version.approval = approval
    update_fields = ["approval", "updated_at"]
    if approval == Approval.APPROVED:
        version.approved_by, version.approved_at = actor, timezone.now()
        update_fields += ["approved_by", "approved_at"]
    version.full_clean()
    version.save(update_fields=update_fields)

    after = snapshot(version)
    if note:
        # Kept with the event, not the version: the reason belongs to this decision.
        after["approval_note"] = note
    change_record(
        actor=actor,
        action=f"modelversion.{APPROVAL_VERBS[approval]}",
        target=version,
        before=before,
        after=after,
    )
    hand_history(actor=actor, deltas=history.diff_snapshots(version, before, after))
    return version
