"""How the inventory is filled: data sources, their sync runs, and what pushes bring in.

The tables were created by the inventory app and keep their names (`db_table`), so an
existing database moves here by `migrate` alone, without copying a row.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from inventory.models import (
    Deployment,
    ModelVersion,
    NonHumanIdentity,
    Team,
    TimeStamped,
)


class DataSource(TimeStamped):
    """A system Runproof reads the inventory from: a registry, a runtime, a credential store.

    `config` holds the settings that may be shown back (URLs, names, rules); `secrets_encrypted` holds
    tokens and passwords, encrypted (sources.sync.secrets), never shown back. A secret may
    also be the name of an environment variable (`env:NAME`), read when the sync runs.
    """

    class Kind(models.TextChoices):
        MLFLOW = "mlflow", "MLflow Model Registry"
        OTLP = "otlp", "OpenTelemetry traces (OTLP)"
        KUBERNETES = "kubernetes", "Kubernetes (Deployments, KServe, Seldon)"
        AWS_IAM = "aws_iam", "AWS IAM credential report"
        VAULT = "vault", "HashiCorp Vault / OpenBao tokens"
        GCP_KEYS = "gcp_keys", "GCP service-account keys (JSON export)"
        GITHUB_TOKENS = "github_tokens", "GitHub tokens and OAuth apps (JSON export)"
        CICD = "cicd", "CI/CD deployment events"

    class Health(models.TextChoices):
        UNKNOWN = "unknown", "Not synced yet"
        HEALTHY = "healthy", "Healthy"
        DEGRADED = "degraded", "Degraded (records skipped)"
        FAILING = "failing", "Failing"

    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=30, choices=Kind.choices, db_index=True)
    enabled = models.BooleanField(default=True)
    config = models.JSONField(
        default=dict, blank=True, help_text="Settings that may be shown back."
    )
    secrets_encrypted = models.TextField(blank=True, editable=False)
    schedule_minutes = models.PositiveIntegerField(
        default=60,
        help_text="Minutes between scheduled syncs; 0 syncs only on demand (or on push).",
    )
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="sources",
        help_text="Team given to new records this source brings in, if any.",
    )
    health = models.CharField(
        max_length=20, choices=Health.choices, default=Health.UNKNOWN, db_index=True
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        db_table = "inventory_datasource"
        ordering = ["name"]
        indexes = [models.Index(fields=["name", "id"], name="datasource_name_id")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("sources:source_detail", args=[self.pk])

    @property
    def source_label(self) -> str:
        """What rows this source brings in carry in their `source` column."""
        return f"{self.kind}:{self.pk}"


class SyncRun(models.Model):
    """One sync of one source, recorded before it is sent to the broker.

    The database, not the broker, says which runs were asked for: a run stays QUEUED until
    a worker claims it, and the reconciler re-sends queued runs the broker lost and
    re-queues running ones whose worker stopped sending heartbeats.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Succeeded, records skipped"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        MANUAL = "manual", "Sync now"
        WEBHOOK = "webhook", "Webhook"
        API = "api", "API"
        COMMAND = "command", "Command"
        UPLOAD = "upload", "Uploaded file"
        RETRY = "retry", "Retry"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    source = models.ForeignKey(
        DataSource, on_delete=models.CASCADE, related_name="runs"
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    dry_run = models.BooleanField(default=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    requested_at = models.DateTimeField(default=timezone.now)
    not_before = models.DateTimeField(
        default=timezone.now, help_text="A retry waits until then (backoff)."
    )
    sent_at = models.DateTimeField(null=True, blank=True)
    send_count = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveIntegerField(
        default=0, help_text="Times a worker claimed this run."
    )
    retry_number = models.PositiveIntegerField(default=0)
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    upload = models.FileField(upload_to="source-uploads/%Y/%m/", blank=True)
    upload_sha256 = models.CharField(
        max_length=64,
        blank=True,
        help_text="The uploaded file's SHA-256: the same file twice in a row is refused.",
    )
    phase = models.CharField(max_length=40, blank=True)
    expected = models.PositiveIntegerField(
        null=True, blank=True, help_text="Records expected (the last run's count)."
    )
    seen = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    gone = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the run failed, if it did.")
    changes = models.JSONField(
        default=list, blank=True, help_text="A sample of what changed (or would)."
    )

    class Meta:
        db_table = "inventory_syncrun"
        ordering = ["-requested_at", "-id"]
        constraints = [
            # One queued-or-running run per source (a dry run may sit beside it): asking
            # twice gets the same run, and two workers never sync one source at once.
            models.UniqueConstraint(
                fields=["source", "dry_run"],
                condition=Q(status__in=["queued", "running"]),
                name="syncrun_one_active_per_source",
            )
        ]
        indexes = [
            models.Index(
                fields=["source", "-requested_at"], name="syncrun_source_time"
            ),
            models.Index(fields=["status", "not_before"], name="syncrun_status_due"),
            # The all-sources runs list, newest first, pages by keyset on these.
            models.Index(fields=["requested_at", "id"], name="syncrun_requested_id"),
        ]

    def __str__(self) -> str:
        return f"{self.source} run {self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("sources:run_detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None

    @property
    def progress_percent(self) -> int | None:
        """How far through the run is, when the last run told how many records to expect."""
        if self.status not in self.ACTIVE:
            return 100
        if not self.expected:
            return None
        return min(99, int(100 * self.seen / self.expected))


class SyncError(models.Model):
    """A record a run skipped, and why. The run goes on; the error stays with it."""

    run = models.ForeignKey(
        SyncRun, on_delete=models.CASCADE, related_name="error_rows"
    )
    external_id = models.CharField(max_length=500, blank=True)
    reason = models.TextField()
    excerpt = models.TextField(blank=True, help_text="The start of the record as sent.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "inventory_syncerror"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.external_id or 'record'}: {self.reason[:80]}"


class DeploymentEvent(models.Model):
    """A CI/CD pipeline's word that it deployed model M version V to E at endpoint X."""

    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    model_name = models.CharField(max_length=200)
    version = models.CharField(max_length=100)
    environment = models.CharField(max_length=20)
    endpoint = models.CharField(max_length=500)
    deployment_name = models.CharField(max_length=200, blank=True)
    commit = models.CharField(max_length=100, blank=True)
    pipeline = models.CharField(max_length=200, blank=True)
    pipeline_run = models.CharField(max_length=500, blank=True)
    deployed_at = models.DateTimeField(null=True, blank=True)
    deployment = models.ForeignKey(
        Deployment, null=True, on_delete=models.SET_NULL, related_name="events"
    )
    model_version = models.ForeignKey(
        ModelVersion, null=True, on_delete=models.SET_NULL, related_name="events"
    )
    sent_by = models.ForeignKey(
        NonHumanIdentity,
        null=True,
        on_delete=models.SET_NULL,
        related_name="deployment_events",
    )
    idempotency_key = models.CharField(
        max_length=200,
        blank=True,
        default="",
        help_text="The sender's Idempotency-Key, or a digest of pipeline run, model, "
        "version and environment: the same event sent twice is recorded once.",
    )

    class Meta:
        db_table = "inventory_deploymentevent"
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="deploymentevent_idempotency_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.model_name} {self.version} → {self.environment} {self.endpoint}"


class ImportedFile(models.Model):
    """A file whose contents were added to additive data (usage), so it is added once.

    Written in the same transaction as the data it adds: a crash before the commit leaves
    neither, a crash after it leaves both, and a retry of the same run finds this row and
    adds nothing twice.
    """

    source = models.ForeignKey(
        DataSource, on_delete=models.CASCADE, related_name="imported_files"
    )
    sha256 = models.CharField(max_length=64)
    run = models.ForeignKey(
        SyncRun, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "inventory_importedfile"
        constraints = [
            models.UniqueConstraint(
                fields=["source", "sha256"], name="importedfile_once_per_source"
            )
        ]

    def __str__(self) -> str:
        return f"{self.sha256[:12]}… in {self.source}"
