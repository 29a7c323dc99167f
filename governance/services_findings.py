"""People acting on findings: acknowledge, assign, accept the risk, mark a false positive,
reopen. Each action checks the role and the from-state, writes the finding, a
`FindingEvent` and the audit event (target: the finding) in one transaction, and tells a
newly assigned person about a high-severity finding once it has committed.

Who may do what (the README's "Findings" section says the same):

- acknowledge: the assignee, the subject's owner or a member of its team (model owners),
  the risk committee and administrators;
- assign: the risk committee and administrators, to anyone who can act on findings; a
  model owner, within the finding's team (to a member of that team);
- accept the risk (a reason and an expiry, at most `FINDING_ACCEPTANCE_MAX_DAYS` ahead),
  mark a false positive (a reason), reopen either by hand: the risk committee and
  administrators only. A false positive is the committee's call, not the owner's: it
  silences the condition for everyone until the evidence changes.

Auditors and compliance officers read findings and change none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import Change, record_many
from governance import detection, selectors_findings
from governance.models import Finding, FindingEvent
from inventory import permissions
from inventory.models import Team
from inventory.roles import Role
from inventory.widgets import lookup_id

ACTIONS = ("acknowledge", "assign", "accept", "false_positive", "reopen")

NOT_ALLOWED_ACK = (
    "Only the assignee, the subject's owner or team, the risk committee or an "
    "administrator can acknowledge this finding."
)
NOT_ALLOWED_ASSIGN = (
    "Only the risk committee, an administrator or a member of the finding's team can "
    "assign it."
)
NOT_ALLOWED_DECIDE = "Only the risk committee or an administrator can do this."
ALREADY_ACKNOWLEDGED = "This finding is already acknowledged."
NOT_OPEN = "Only an open finding can be {verb}; this one is {status}."
RESOLVED = "This finding is resolved: the condition is gone."
NOT_REOPENABLE = (
    "Only an accepted risk or a false positive can be reopened by hand; this one is "
    "{status}."
)
REASON_REQUIRED = "Give a reason."
REASON_TOO_LONG = "Keep the reason under {max} characters."
EXPIRY_REQUIRED = "Give the date the acceptance expires."
EXPIRY_INVALID = "Give the expiry as a date (YYYY-MM-DD)."
EXPIRY_PAST = "The expiry must be in the future."
EXPIRY_TOO_FAR = "An acceptance lasts at most {days} days (until {limit})."
ASSIGNEE_REQUIRED = "Choose a person to assign it to."
ASSIGNEE_UNKNOWN = "No active person by that name or id."
ASSIGNEE_CANNOT_ACT = "That person's role cannot act on findings."
ASSIGNEE_NOT_IN_TEAM = "Assign it to a member of the finding's team ({team})."
NOTHING_CHOSEN = "Tick at least one finding."
TOO_MANY = "Act on at most {max} findings at once."

REASON_MAX = 2000
BULK_MAX = 500
DEFAULT_ACCEPTANCE_MAX_DAYS = 365

# People an assignment may go to: the roles that can act on a finding.
ACTING_ROLES = (Role.OWNER, Role.RISK, Role.ADMIN)


def acceptance_max_days() -> int:
    return int(
        getattr(settings, "FINDING_ACCEPTANCE_MAX_DAYS", DEFAULT_ACCEPTANCE_MAX_DAYS)
    )


# ---------------------------------------------------------------------------
# Who may do what (also read by the pages to show only the forms a user may use)
# ---------------------------------------------------------------------------
def is_committee(user: Any) -> bool:
    return permissions.has_role(user, Role.RISK, Role.ADMIN)


def _in_finding_team(user: Any, finding: Finding) -> bool:
    return (
        permissions.has_role(user, Role.OWNER)
        and finding.team_id is not None
        and finding.team_id in permissions.team_ids(user)
    )


def can_acknowledge(user: Any, finding: Finding) -> bool:
    if is_committee(user):
        return True
    if not permissions.has_role(user, Role.OWNER):
        return False
    return (
        finding.assignee_id == user.pk
        or finding.owner_id == user.pk
        or _in_finding_team(user, finding)
    )


def can_assign(user: Any, finding: Finding) -> bool:
    return is_committee(user) or _in_finding_team(user, finding)


def can_decide(user: Any) -> bool:
    """Accept a risk, mark a false positive, reopen either."""
    return is_committee(user)


def allowed_actions(user: Any, finding: Finding) -> set[str]:
    """The actions the user may take on this finding in its current state."""
    allowed: set[str] = set()
    if finding.status == Finding.Status.RESOLVED:
        return allowed
    if finding.status == Finding.Status.OPEN and can_acknowledge(user, finding):
        allowed.add("acknowledge")
    if can_assign(user, finding):
        allowed.add("assign")
    if can_decide(user):
        if finding.status in (Finding.Status.OPEN, Finding.Status.ACKNOWLEDGED):
            allowed |= {"accept", "false_positive"}
        else:
            allowed.add("reopen")
    return allowed


# ---------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------
def _clean_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(REASON_REQUIRED)
    if len(reason) > REASON_MAX or "\x00" in reason:
        raise ValidationError(REASON_TOO_LONG.format(max=REASON_MAX))
    return reason


def parse_expiry(raw: Any, *, now: dt.datetime | None = None) -> dt.datetime:
    """An expiry from a date ("2027-01-31": the end of that day, in the site's time zone)
    or a datetime; in the future and at most `acceptance_max_days()` ahead."""
    now = now or timezone.now()
    if isinstance(raw, dt.datetime):
        until = raw if timezone.is_aware(raw) else timezone.make_aware(raw)
    elif isinstance(raw, dt.date):
        until = _end_of(raw)
    else:
        text = str(raw or "").strip()
        if not text:
            raise ValidationError(EXPIRY_REQUIRED)
        try:
            if len(text) <= 10:
                until = _end_of(dt.date.fromisoformat(text))
            else:
                until = dt.datetime.fromisoformat(text)
                if timezone.is_naive(until):
                    until = timezone.make_aware(until)
        except (ValueError, OverflowError) as exc:
            raise ValidationError(EXPIRY_INVALID) from exc
    if until <= now:
        raise ValidationError(EXPIRY_PAST)
    days = acceptance_max_days()
    limit = now + dt.timedelta(days=days)
    if until > limit:
        raise ValidationError(
            EXPIRY_TOO_FAR.format(days=days, limit=limit.date().isoformat())
        )
    return until


def _end_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(
        day, dt.time(23, 59, 59), tzinfo=timezone.get_current_timezone()
    )


def resolve_person(raw: Any) -> Any:
    """The active person named by an id, "label (#id)" (the type-ahead) or a username."""
    text = str(raw or "").strip()
    if not text:
        raise ValidationError(ASSIGNEE_REQUIRED)
    people = get_user_model().objects.filter(is_active=True)
    text = lookup_id(text)  # "olivia (#3)", as the type-ahead posts it, names id 3
    person = None
    if text.isascii() and text.isdigit() and len(text) < 19:
        person = people.filter(pk=int(text)).first()
    if person is None and len(text) <= 150 and "\x00" not in text:
        person = people.filter(username=text).first()
    if person is None:
        raise ValidationError(ASSIGNEE_UNKNOWN)
    return person


def _check_assignee(actor: Any, finding: Finding, person: Any) -> None:
    if not permissions.has_role(person, *ACTING_ROLES):
        raise ValidationError(ASSIGNEE_CANNOT_ACT)
    if is_committee(actor):
        return
    # A team member assigns within the finding's team.
    if finding.team_id is None or finding.team_id not in permissions.team_ids(person):
        team = Team.objects.filter(pk=finding.team_id).values_list("name", flat=True)
        raise ValidationError(
            ASSIGNEE_NOT_IN_TEAM.format(team=(team.first() if team else "none"))
        )


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
STATE_FIELDS = (
    "status",
    "assignee_id",
    "queue",
    "assigned_manually",
    "acknowledged_at",
    "acknowledged_by_id",
    "accepted_until",
    "decided_by_id",
    "decision_reason",
    "suppressed_key",
)


def _state(finding: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in STATE_FIELDS:
        value = getattr(finding, name)
        out[name] = value.isoformat() if isinstance(value, dt.datetime) else value
    return out


def _label(user: Any) -> str:
    return user.get_username()[:200]


def _locked(findings: Sequence[Finding]) -> dict[int, Finding]:
    """The findings read again under a row lock: the engine or another person may have
    changed them since the page was drawn.

    First the engine's lock of each kind (PostgreSQL's advisory lock, held to the end of
    the transaction, in a fixed order): a detection run reads a kind's findings without
    row locks and writes them back whole, so an acknowledgement committed in between
    would be overwritten. Taking its lock makes the action wait for the run's chunk, or
    the run wait for the action, and each then reads the other's result."""
    for kind in sorted({f.kind for f in findings}):
        detection._lock(kind)  # the engine's own lock, not a second one
    rows = Finding.objects.select_for_update().filter(pk__in=[f.pk for f in findings])
    return {f.pk: f for f in rows.order_by("pk")}


def _save(
    *,
    actor: Any,
    verb: str,
    pairs: list[tuple[Finding, dict[str, Any]]],
    event_action: str,
    note: str = "",
    data: dict[str, Any] | None = None,
    fields: Sequence[str],
) -> None:
    now = timezone.now()
    for finding, _ in pairs:
        finding.updated_at = now
        finding.save(update_fields=[*fields, "updated_at"])
    FindingEvent.objects.bulk_create(
        [
            FindingEvent(
                finding=finding,
                kind=finding.kind,
                action=event_action,
                at=now,
                actor_label=_label(actor),
                note=note,
                data=data or {},
            )
            for finding, _ in pairs
        ]
    )
    # The findings chart recounts once this change is committed.
    transaction.on_commit(selectors_findings.chart_changed)
    record_many(
        actor=actor,
        changes=[
            Change(f"finding.{verb}", finding, before, _state(finding), finding.team_id)
            for finding, before in pairs
        ],
    )


def _check_bulk(findings: Sequence[Finding]) -> None:
    if not findings:
        raise ValidationError(NOTHING_CHOSEN)
    if len(findings) > BULK_MAX:
        raise ValidationError(TOO_MANY.format(max=BULK_MAX))


def findings_acknowledge(
    *, actor: Any, findings: Sequence[Finding], skip_closed: bool = False
) -> tuple[list[Finding], int]:
    """Acknowledge each finding (one transaction, one audit event each). Returns the
    findings acknowledged and, with `skip_closed` (the bulk form), how many were skipped
    for not being open; without it a finding not open is an error."""
    _check_bulk(findings)
    with transaction.atomic():
        rows = _locked(findings)
        for finding in rows.values():
            if not can_acknowledge(actor, finding):
                raise PermissionDenied(NOT_ALLOWED_ACK)
        pairs: list[tuple[Finding, dict[str, Any]]] = []
        skipped = 0
        now = timezone.now()
        for finding in rows.values():
            if finding.status != Finding.Status.OPEN:
                if skip_closed:
                    skipped += 1
                    continue
                raise ValidationError(_not_open(finding, "acknowledged"))
            before = _state(finding)
            finding.status = Finding.Status.ACKNOWLEDGED
            finding.acknowledged_at = now
            finding.acknowledged_by = actor
            pairs.append((finding, before))
        if pairs:
            _save(
                actor=actor,
                verb="acknowledge",
                pairs=pairs,
                event_action=FindingEvent.Action.ACKNOWLEDGED,
                fields=["status", "acknowledged_at", "acknowledged_by"],
            )
    return [f for f, _ in pairs], skipped


def finding_acknowledge(*, actor: Any, finding: Finding) -> Finding:
    done, _ = findings_acknowledge(actor=actor, findings=[finding])
    return done[0]


def _not_open(finding: Finding, verb: str) -> str:
    if finding.status == Finding.Status.RESOLVED:
        return RESOLVED
    if finding.status == Finding.Status.ACKNOWLEDGED and verb == "acknowledged":
        return ALREADY_ACKNOWLEDGED
    return NOT_OPEN.format(verb=verb, status=finding.get_status_display().lower())


def findings_assign(
    *, actor: Any, findings: Sequence[Finding], assignee: Any
) -> list[Finding]:
    """Assign each finding to a person (by hand: the engine stops following the subject's
    owner). A high-severity finding notifies the new assignee, once committed."""
    _check_bulk(findings)
    with transaction.atomic():
        rows = _locked(findings)
        for finding in rows.values():
            if not can_assign(actor, finding):
                raise PermissionDenied(NOT_ALLOWED_ASSIGN)
        for finding in rows.values():
            if finding.status == Finding.Status.RESOLVED:
                raise ValidationError(RESOLVED)
            _check_assignee(actor, finding, assignee)
        pairs = []
        for finding in rows.values():
            before = _state(finding)
            finding.assignee = assignee
            finding.queue = Finding.Queue.OWNER
            finding.assigned_manually = True
            pairs.append((finding, before))
        _save(
            actor=actor,
            verb="assign",
            pairs=pairs,
            event_action=FindingEvent.Action.ASSIGNED,
            note=f"to {_label(assignee)}",
            data={"assignee_id": assignee.pk},
            fields=["assignee", "queue", "assigned_manually"],
        )
        notify = [
            f.pk
            for f, before in pairs
            if assignee.pk != actor.pk and before["assignee_id"] != assignee.pk
        ]
        if notify:
            transaction.on_commit(lambda: _notify(notify))
    return [f for f, _ in pairs]


def _notify(finding_ids: list[int]) -> None:
    from governance import notifications

    notifications.findings_assigned(finding_ids=finding_ids)


def finding_assign(*, actor: Any, finding: Finding, assignee: Any) -> Finding:
    return findings_assign(actor=actor, findings=[finding], assignee=assignee)[0]


def _decide(actor: Any, finding: Finding) -> Finding:
    if not can_decide(actor):
        raise PermissionDenied(NOT_ALLOWED_DECIDE)
    return _locked([finding])[finding.pk]


def finding_accept_risk(
    *, actor: Any, finding: Finding, reason: str, until: Any
) -> Finding:
    """Accept the risk until `until` (a date or datetime). The engine reopens the finding
    when the acceptance expires and the condition still holds."""
    if not can_decide(actor):
        raise PermissionDenied(NOT_ALLOWED_DECIDE)
    reason = _clean_reason(reason)
    accepted_until = parse_expiry(until)
    with transaction.atomic():
        finding = _decide(actor, finding)
        if finding.status not in (Finding.Status.OPEN, Finding.Status.ACKNOWLEDGED):
            raise ValidationError(_not_open(finding, "accepted"))
        before = _state(finding)
        finding.status = Finding.Status.ACCEPTED
        finding.accepted_until = accepted_until
        finding.decided_by = actor
        finding.decision_reason = reason
        _save(
            actor=actor,
            verb="accept",
            pairs=[(finding, before)],
            event_action=FindingEvent.Action.ACCEPTED,
            note=reason,
            data={"accepted_until": accepted_until.isoformat()},
            fields=["status", "accepted_until", "decided_by", "decision_reason"],
        )
    return finding


def finding_mark_false_positive(
    *, actor: Any, finding: Finding, reason: str
) -> Finding:
    """Silence this exact condition: the engine reopens the finding when its evidence
    changes (suppressed_key is the evidence key it was marked for)."""
    if not can_decide(actor):
        raise PermissionDenied(NOT_ALLOWED_DECIDE)
    reason = _clean_reason(reason)
    with transaction.atomic():
        finding = _decide(actor, finding)
        if finding.status not in (Finding.Status.OPEN, Finding.Status.ACKNOWLEDGED):
            raise ValidationError(_not_open(finding, "marked a false positive"))
        before = _state(finding)
        finding.status = Finding.Status.FALSE_POSITIVE
        finding.suppressed_key = finding.evidence_key
        finding.decided_by = actor
        finding.decision_reason = reason
        _save(
            actor=actor,
            verb="false_positive",
            pairs=[(finding, before)],
            event_action=FindingEvent.Action.FALSE_POSITIVE,
            note=reason,
            data={"evidence_key": finding.evidence_key},
            fields=["status", "suppressed_key", "decided_by", "decision_reason"],
        )
    return finding


def finding_reopen(*, actor: Any, finding: Finding, reason: str = "") -> Finding:
    """Take back an acceptance or a false positive: the finding is open again."""
    if not can_decide(actor):
        raise PermissionDenied(NOT_ALLOWED_DECIDE)
    note = (reason or "").strip()
    if len(note) > REASON_MAX or "\x00" in note:
        raise ValidationError(REASON_TOO_LONG.format(max=REASON_MAX))
    with transaction.atomic():
        finding = _decide(actor, finding)
        if finding.status not in (
            Finding.Status.ACCEPTED,
            Finding.Status.FALSE_POSITIVE,
        ):
            if finding.status == Finding.Status.RESOLVED:
                raise ValidationError(RESOLVED)
            raise ValidationError(
                NOT_REOPENABLE.format(status=finding.get_status_display().lower())
            )
        before = _state(finding)
        finding.status = Finding.Status.OPEN
        finding.accepted_until = None
        finding.suppressed_key = ""
        _save(
            actor=actor,
            verb="reopen",
            pairs=[(finding, before)],
            event_action=FindingEvent.Action.REOPENED,
            note=note or "Reopened by hand.",
            fields=["status", "accepted_until", "suppressed_key"],
        )
    return finding
