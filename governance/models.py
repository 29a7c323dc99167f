"""What ought to be, and the proof. The audit trail itself lives in the `audit` app."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from inventory.models import AIModel, Deployment, NonHumanIdentity, Team


class TierPolicy(models.Model):
    """The weights and cut-offs of the risk tier (`governance.tiers`): one row, edited by
    an administrator, every change audited. A deployment's score is the sum of the weights
    of the facts that hold; tier 1 from `tier1_min_score`, 2 from `tier2_min_score`, 3 from
    `tier3_min_score`, else 4."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID)
    weight_external = models.PositiveSmallIntegerField(
        default=30, validators=[MaxValueValidator(100)], help_text="Externally exposed."
    )
    weight_write_access = models.PositiveSmallIntegerField(
        default=25, validators=[MaxValueValidator(100)], help_text="Can change records."
    )
    weight_decision_making = models.PositiveSmallIntegerField(
        default=25,
        validators=[MaxValueValidator(100)],
        help_text="Its output decides outcomes for people.",
    )
    weight_production = models.PositiveSmallIntegerField(
        default=10, validators=[MaxValueValidator(100)], help_text="Runs in production."
    )
    weight_sensitivity_medium = models.PositiveSmallIntegerField(
        default=5, validators=[MaxValueValidator(100)]
    )
    weight_sensitivity_high = models.PositiveSmallIntegerField(
        default=15, validators=[MaxValueValidator(100)]
    )
    weight_sensitivity_critical = models.PositiveSmallIntegerField(
        default=30, validators=[MaxValueValidator(100)]
    )
    tier1_min_score = models.PositiveSmallIntegerField(
        default=70, validators=[MinValueValidator(1), MaxValueValidator(700)]
    )
    tier2_min_score = models.PositiveSmallIntegerField(
        default=45, validators=[MinValueValidator(1), MaxValueValidator(700)]
    )
    tier3_min_score = models.PositiveSmallIntegerField(
        default=20, validators=[MinValueValidator(1), MaxValueValidator(700)]
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        verbose_name_plural = "tier policy"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="tierpolicy_singleton"),
            models.CheckConstraint(
                condition=Q(tier1_min_score__gt=models.F("tier2_min_score"))
                & Q(tier2_min_score__gt=models.F("tier3_min_score")),
                name="tierpolicy_cutoffs_descend",
            ),
        ]

    def __str__(self) -> str:
        return "Tier policy"


class TierOverride(models.Model):
    """A committee member's tier for one deployment, with a reason, until it expires."""

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="tier_overrides"
    )
    tier = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(4)]
    )
    reason = models.TextField()
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(
        null=True, blank=True, help_text="When it was withdrawn before its expiry."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["deployment", "-created_at"], name="tieroverride_dep")
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(tier__gte=1, tier__lte=4), name="tieroverride_tier_range"
            )
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} → tier {self.tier}"

    def in_force(self, now: dt.datetime | None = None) -> bool:
        now = now or timezone.now()
        return self.ended_at is None and self.expires_at > now


class PriorityField(models.GeneratedField):
    """A stored, computed integer whose cursor values are parsed as integers (a forged
    cursor of text then starts from the first page instead of reaching the database)."""

    def to_python(self, value: Any) -> Any:
        return self.output_field.to_python(value)


class Finding(models.Model):
    """One condition on one subject, kept by the detection engine (`governance.detection`):
    opened when it appears, updated while it lasts, resolved when it clears, reopened (the
    same row) if it returns. At most one unresolved finding per (kind, subject): the
    partial unique constraint holds that against concurrent workers."""

    class Kind(models.TextChoices):
        UNAPPROVED_VERSION = "unapproved_version", "Unapproved version"
        VERSION_DRIFT = "version_drift", "Version drift"
        SHADOW_DEPLOYMENT = "shadow_deployment", "Shadow deployment"
        DEPRECATED_IN_USE = "deprecated_in_use", "Deprecated model still answering"
        UNREGISTERED_MODEL = "unregistered_model", "Unregistered model"
        ORPHANED_IDENTITY = "orphaned_identity", "Orphaned identity"
        STALE_CREDENTIAL = "stale_credential", "Stale credential (not rotated)"
        EXPIRED_ACTIVE = "expired_active", "Expired but still active"
        UNUSED_CREDENTIAL = "unused_credential", "Unused credential"
        MISSING_OWNER = "missing_owner", "Missing owner"
        MISSING_PURPOSE = "missing_purpose", "Missing business purpose"
        MISSING_CHANGE_WINDOW = "missing_change_window", "Missing change window"
        OUT_OF_BOUNDS = "out_of_bounds", "Out of approved bounds"
        CHANGE_OUTSIDE_WINDOW = "change_outside_window", "Change outside window"
        ENDPOINT_DRIFT = "endpoint_drift", "Endpoint drift"
        DEPENDENCY_DRIFT = "dependency_drift", "Dependency drift"
        THIRD_PARTY_EXPOSURE = "third_party_exposure", "Third-party exposure"

    class Subject(models.TextChoices):
        DEPLOYMENT = "deployment", "Deployment"
        IDENTITY = "identity", "Identity"
        MODEL = "model", "Model"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        ACCEPTED = "accepted", "Risk accepted"
        FALSE_POSITIVE = "false_positive", "False positive"
        RESOLVED = "resolved", "Resolved"

    class Severity(models.IntegerChoices):
        LOW = 1, "Low"
        MEDIUM = 2, "Medium"
        HIGH = 3, "High"
        CRITICAL = 4, "Critical"

    class Queue(models.TextChoices):
        OWNER = "owner", "Owner"
        TEAM = "team", "Team"
        COMMITTEE = "committee", "Risk committee"

    # Statuses in which the condition is still held (one such row per kind and subject).
    UNRESOLVED = ("open", "acknowledged", "accepted", "false_positive")

    kind = models.CharField(max_length=40, choices=Kind.choices)
    subject_type = models.CharField(max_length=20, choices=Subject.choices)
    subject_id = models.BigIntegerField()
    # The subject and what it belongs to, for filters and read permission (kept by the
    # engine on every update). The deployment, identity, model, team, owner and assignee
    # are copies of the subject's, rewritten by each run, so they have no database
    # constraint: its check locked the referenced row once per new finding (about a
    # million row locks at the commits of a first full run, 10 of its seconds; the
    # deployment's and identity's alone 2 s of it). Django still applies their on_delete
    # (a deleted subject's findings go with it, through the partial indexes below), and
    # a finding whose subject is gone is resolved by the next run.
    deployment = models.ForeignKey(
        Deployment,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="findings",
        db_index=False,
        db_constraint=False,
    )
    identity = models.ForeignKey(
        NonHumanIdentity,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="findings",
        db_index=False,
        db_constraint=False,
    )
    model = models.ForeignKey(
        AIModel,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="findings",
        db_constraint=False,
    )
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="findings",
        db_index=False,
        db_constraint=False,
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The subject's accountable person.",
        db_index=False,
        db_constraint=False,
    )
    title = models.CharField(max_length=300)
    severity = models.PositiveSmallIntegerField(choices=Severity.choices)
    tier = models.PositiveSmallIntegerField(default=4)
    # The queue's order in one column, for keyset pages: severity first (critical = 10),
    # then tier (1 first); ties go by id, oldest first.
    priority = PriorityField(
        expression=(5 - models.F("severity")) * 10 + models.F("tier"),
        output_field=models.PositiveSmallIntegerField(),
        db_persist=True,
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.OPEN
    )
    queue = models.CharField(max_length=20, choices=Queue.choices)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_findings",
        db_index=False,
        db_constraint=False,
    )
    # Set when a person assigned it: the engine then stops following the subject's owner.
    assigned_manually = models.BooleanField(default=False)
    source = models.CharField(
        max_length=100, blank=True, help_text="The source whose record raised it."
    )
    evidence = models.JSONField(default=dict)
    # A digest of the evidence's facts: a false positive holds while it is unchanged.
    evidence_key = models.CharField(max_length=64)
    opened_at = models.DateTimeField(default=timezone.now)
    first_opened_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    times_opened = models.PositiveIntegerField(default=1)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    accepted_until = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who accepted the risk or marked it a false positive.",
        db_index=False,
    )
    decision_reason = models.TextField(blank=True)
    suppressed_key = models.CharField(
        max_length=64,
        blank=True,
        help_text="The evidence_key a false positive was marked for.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-severity", "tier", "opened_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject_type", "subject_id"],
                condition=~Q(status="resolved"),
                name="finding_one_unresolved",
            ),
            models.CheckConstraint(
                condition=Q(severity__gte=1, severity__lte=4), name="finding_severity"
            ),
        ]
        indexes = [
            models.Index(
                fields=["subject_type", "subject_id", "kind"], name="finding_subject"
            ),
            models.Index(
                fields=["-severity", "tier", "opened_at", "id"],
                condition=~Q(status="resolved"),
                name="finding_queue",
            ),
            models.Index(
                fields=["priority", "id"],
                condition=~Q(status="resolved"),
                name="finding_priority",
            ),
            models.Index(fields=["status", "kind"], name="finding_status_kind"),
            models.Index(fields=["assignee", "status"], name="finding_assignee"),
            models.Index(fields=["team", "status"], name="finding_team"),
            models.Index(fields=["owner", "status"], name="finding_owner"),
            models.Index(fields=["deployment", "status"], name="finding_deployment"),
            # Foreign keys without an index of their own: team, owner, assignee and
            # deployment lead the indexes above; the others are mostly empty, so only
            # their set rows are indexed (for the cascades). Each index is written on
            # every new finding: a first full run opens hundreds of thousands.
            models.Index(
                fields=["identity"],
                condition=Q(identity__isnull=False),
                name="finding_identity",
            ),
            models.Index(
                fields=["acknowledged_by"],
                condition=Q(acknowledged_by__isnull=False),
                name="finding_acknowledged_by",
            ),
            models.Index(
                fields=["decided_by"],
                condition=Q(decided_by__isnull=False),
                name="finding_decided_by",
            ),
            # An owner's queue, one part of their scope at a time, in the queue's order
            # (selectors_findings.narrow_to_pages): each part reads its page from one.
            models.Index(
                fields=["team", "priority", "id"],
                condition=~Q(status="resolved"),
                name="finding_team_priority",
            ),
            models.Index(
                fields=["owner", "priority", "id"],
                condition=~Q(status="resolved"),
                name="finding_owner_priority",
            ),
            models.Index(
                fields=["assignee", "priority", "id"],
                condition=~Q(status="resolved"),
                name="finding_assignee_priority",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("governance:finding_detail", args=[self.pk])

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.RESOLVED


class FindingEvent(models.Model):
    """What happened to a finding, in order: the engine's opened / resolved / reopened /
    updated-evidence and people's actions. Read by the findings chart, the finding's page
    and the incident timeline."""

    class Action(models.TextChoices):
        OPENED = "opened", "Opened"
        REOPENED = "reopened", "Reopened"
        RESOLVED = "resolved", "Resolved"
        EVIDENCE = "evidence", "Evidence changed"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        ASSIGNED = "assigned", "Assigned"
        ACCEPTED = "accepted", "Risk accepted"
        ACCEPTANCE_EXPIRED = "acceptance_expired", "Acceptance expired"
        FALSE_POSITIVE = "false_positive", "Marked false positive"

    finding = models.ForeignKey(
        Finding, on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(max_length=40, help_text="The finding's kind, copied.")
    action = models.CharField(max_length=30, choices=Action.choices)
    at = models.DateTimeField(default=timezone.now)
    actor_label = models.CharField(max_length=200, blank=True)
    note = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["finding", "at"], name="findingevent_finding"),
            models.Index(fields=["at", "kind"], name="findingevent_day"),
        ]

    def __str__(self) -> str:
        return f"{self.finding_id} {self.action}"


class Notification(models.Model):
    """An in-app message to one person (a high-severity finding assigned to them)."""

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    finding = models.ForeignKey(
        Finding, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    message = models.CharField(max_length=500)
    url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["recipient", "read_at", "-created_at"],
                name="notification_inbox",
            )
        ]

    def __str__(self) -> str:
        return self.message


class GateDecision(models.Model):
    """One answer of the CI/CD release gate (`POST /api/v1/gate`): who asked, what, the
    answer and every reason."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_label = models.CharField(
        max_length=200, help_text="token:<prefix>, or a person."
    )
    inputs = models.JSONField(default=dict)
    model = models.ForeignKey(
        AIModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    version = models.CharField(max_length=100, blank=True)
    environment = models.CharField(max_length=20, blank=True)
    deployment = models.ForeignKey(
        Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    allowed = models.BooleanField()
    reasons = models.JSONField(default=list)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{'allow' if self.allowed else 'deny'} {self.model_id} {self.version}"


class ApprovedState(models.Model):
    """What the committee approved a deployment to run as: its endpoint and the
    deployments it depends on and that depend on it (sorted id lists), as they were when
    approved. Endpoint and dependency drift compare the running state with it; a
    deployment without one has nothing to drift from. One row per deployment, replaced by
    each approval (`governance.approved_state.approved_state_record`, audited)."""

    deployment = models.OneToOneField(
        Deployment, on_delete=models.CASCADE, related_name="approved_state"
    )
    endpoint = models.CharField(max_length=500, blank=True)
    upstream_ids = models.JSONField(
        default=list, blank=True, help_text="Deployments it reads from, sorted ids."
    )
    downstream_ids = models.JSONField(
        default=list, blank=True, help_text="Deployments that read from it, sorted ids."
    )
    approved_at = models.DateTimeField(default=timezone.now)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    def __str__(self) -> str:
        return f"Approved state of {self.deployment_id}"
