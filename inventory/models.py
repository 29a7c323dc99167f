"""What exists and what was observed: teams, models, systems, deployments, identities."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

MANUAL_SOURCE = "manual"


class TimeStamped(models.Model):
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Sourced(models.Model):
    """A record that a sync may own: (source, external_id) is its natural key.

    Rows typed in by hand have source "manual" and no external id (NULL, which a unique
    constraint never compares equal). The constraint is a plain, full one on purpose: syncs
    upsert with INSERT … ON CONFLICT (source, external_id), which a partial index cannot serve.
    """

    source = models.CharField(max_length=100, default=MANUAL_SOURCE, db_index=True)
    external_id = models.CharField(max_length=500, null=True, blank=True, default=None)
    # Kept by syncs: a digest of what the source last said (to tell "unchanged" apart
    # from "updated" without comparing every field), when it last said it, and when it
    # stopped reporting the record. Gone rows are kept, never deleted.
    content_hash = models.CharField(max_length=64, blank=True, editable=False)
    seen_at = models.DateTimeField(null=True, blank=True, editable=False)
    gone_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When its source stopped reporting it.",
    )

    class Meta:
        abstract = True


def natural_key_constraint(model_name: str) -> models.UniqueConstraint:
    return models.UniqueConstraint(
        fields=["source", "external_id"], name=f"{model_name}_natural_key"
    )


class Team(TimeStamped):
    name = models.CharField(max_length=200, unique=True)
    slug = models.SlugField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="teams", blank=True
    )

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["name", "id"], name="team_name_id")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("inventory:team_detail", args=[self.pk])


class AIModel(TimeStamped, Sourced):
    class Lifecycle(models.TextChoices):
        DEVELOPMENT = "development", "In development"
        ACTIVE = "active", "Active"
        DEPRECATED = "deprecated", "Deprecated"
        RETIRED = "retired", "Retired"

    class Kind(models.TextChoices):
        CLASSIFIER = "classifier", "Classifier"
        REGRESSION = "regression", "Regression"
        LLM = "llm", "Large language model"
        EMBEDDING = "embedding", "Embedding"
        RANKING = "ranking", "Ranking / recommender"
        OTHER = "other", "Other"

    name = models.CharField(max_length=200)
    kind = models.CharField(
        max_length=20, choices=Kind.choices, default=Kind.CLASSIFIER
    )
    provider = models.CharField(
        max_length=100,
        blank=True,
        help_text="Who built it: 'internal' or the vendor's name.",
    )
    description = models.TextField(blank=True)
    lifecycle = models.CharField(
        max_length=20,
        choices=Lifecycle.choices,
        default=Lifecycle.DEVELOPMENT,
        db_index=True,
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.PROTECT, related_name="models"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_models",
    )

    class Meta:
        verbose_name = "model"
        ordering = ["name"]
        constraints = [natural_key_constraint("aimodel")]
        indexes = [
            models.Index(fields=["name", "id"], name="aimodel_name_id"),
            models.Index(fields=["updated_at", "id"], name="aimodel_updated_id"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("inventory:aimodel_detail", args=[self.pk])


class ModelVersion(TimeStamped, Sourced):
    class Approval(models.TextChoices):
        PENDING = "pending", "Pending approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        DEPRECATED = "deprecated", "Deprecated"
        RETIRED = "retired", "Retired"

    model = models.ForeignKey(
        AIModel, on_delete=models.CASCADE, related_name="versions"
    )
    version = models.CharField(max_length=100)
    artifact_uri = models.CharField(max_length=1000, blank=True)
    digest = models.CharField(
        max_length=200, blank=True, help_text="Artefact digest, e.g. sha256:…"
    )
    approval = models.CharField(
        max_length=20, choices=Approval.choices, default=Approval.PENDING, db_index=True
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_bounds = models.JSONField(
        default=dict,
        blank=True,
        help_text='Approved behaviour bounds, e.g. {"max_error_rate": 0.02, "max_p95_latency_ms": 800}.',
    )
    # What the registry says of it, as last synced (empty for versions typed in).
    run_id = models.CharField(max_length=200, blank=True)
    registry_status = models.CharField(
        max_length=50, blank=True, help_text="e.g. READY, or a legacy stage."
    )
    aliases = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["model__name", "-created_at"]
        constraints = [
            natural_key_constraint("modelversion"),
            models.UniqueConstraint(
                fields=["model", "version"], name="modelversion_unique_per_model"
            ),
        ]
        indexes = [
            models.Index(fields=["version", "id"], name="modelversion_version_id"),
            models.Index(fields=["created_at", "id"], name="modelversion_created_id"),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} {self.version}"

    def get_absolute_url(self) -> str:
        return reverse("inventory:modelversion_detail", args=[self.pk])


class System(TimeStamped, Sourced):
    """The application, workflow or agent that invokes models."""

    class Kind(models.TextChoices):
        APPLICATION = "application", "Application"
        WORKFLOW = "workflow", "Workflow"
        AGENT = "agent", "Agent"

    name = models.CharField(max_length=200)
    kind = models.CharField(
        max_length=20, choices=Kind.choices, default=Kind.APPLICATION, db_index=True
    )
    description = models.TextField(blank=True)
    business_purpose = models.TextField(blank=True)
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.PROTECT, related_name="systems"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_systems",
    )

    class Meta:
        ordering = ["name"]
        constraints = [natural_key_constraint("system")]
        indexes = [models.Index(fields=["name", "id"], name="system_name_id")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("inventory:system_detail", args=[self.pk])


class Deployment(TimeStamped, Sourced):
    """One running instance of a model: where it answers, who owns it, what it may do."""

    class Environment(models.TextChoices):
        PRODUCTION = "production", "Production"
        STAGING = "staging", "Staging"
        DEVELOPMENT = "development", "Development"

    class Exposure(models.TextChoices):
        INTERNAL = "internal", "Internal"
        EXTERNAL = "external", "External"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        QUARANTINED = "quarantined", "Quarantined"
        WITHDRAWN = "withdrawn", "Withdrawn"

    name = models.CharField(max_length=200)
    model = models.ForeignKey(
        AIModel, on_delete=models.PROTECT, related_name="deployments"
    )
    observed_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="observed_in",
        help_text="The version the runtime reports.",
    )
    observed_version_label = models.CharField(
        max_length=100,
        blank=True,
        help_text="The version string the runtime reports (image tag, label, model URI), "
        "kept even when the registry has no such version.",
    )
    approved_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approved_for",
        help_text="The version governance approved for this deployment.",
    )
    system = models.ForeignKey(
        System,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deployments",
    )
    environment = models.CharField(
        max_length=20,
        choices=Environment.choices,
        default=Environment.PRODUCTION,
        db_index=True,
    )
    endpoint = models.CharField(
        max_length=500, blank=True, help_text="URL or address where it answers."
    )
    platform = models.CharField(
        max_length=100, blank=True, help_text="e.g. kubernetes, sagemaker, openai."
    )
    platform_locator = models.CharField(
        max_length=500,
        blank=True,
        help_text="Where the platform keeps it, e.g. namespace/name.",
    )
    exposure = models.CharField(
        max_length=20,
        choices=Exposure.choices,
        default=Exposure.INTERNAL,
        db_index=True,
    )
    write_access = models.BooleanField(
        default=False, help_text="It can change records or systems."
    )
    decision_making = models.BooleanField(
        default=False, help_text="Its output decides outcomes for people."
    )
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="deployments",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_deployments",
        help_text="The accountable person.",
    )
    business_purpose = models.TextField(blank=True)
    change_window = models.CharField(
        max_length=200, blank=True, help_text="e.g. Tue 02:00–04:00 UTC"
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.ACTIVE, db_index=True
    )
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [natural_key_constraint("deployment")]
        indexes = [
            models.Index(fields=["name", "id"], name="deployment_name_id"),
            models.Index(fields=["last_seen_at", "id"], name="deployment_last_seen_id"),
            models.Index(fields=["environment", "id"], name="deployment_env_id"),
            models.Index(fields=["team", "name", "id"], name="deployment_team_name_id"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("inventory:deployment_detail", args=[self.pk])

    @property
    def version_drift(self) -> bool:
        return bool(
            self.approved_version_id
            and self.observed_version_id != self.approved_version_id
        )


class Dependency(TimeStamped):
    """An edge between deployments: the upstream one feeds the downstream one."""

    class Kind(models.TextChoices):
        PIPELINE = "pipeline", "Pipeline step"
        HANDOFF = "handoff", "Agent handoff"
        FALLBACK = "fallback", "Fallback"

    upstream = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="downstream_edges"
    )
    downstream = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="upstream_edges"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.PIPELINE)
    description = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name_plural = "dependencies"
        constraints = [
            models.UniqueConstraint(
                fields=["upstream", "downstream"], name="dependency_unique_edge"
            ),
            models.CheckConstraint(
                condition=~Q(upstream=models.F("downstream")),
                name="dependency_not_self",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.upstream} → {self.downstream}"


class NonHumanIdentity(TimeStamped, Sourced):
    """A credential a machine holds: service account, API key, OAuth app, workflow token."""

    class Kind(models.TextChoices):
        SERVICE_ACCOUNT = "service_account", "Service account"
        API_KEY = "api_key", "API key"
        OAUTH_APP = "oauth_app", "OAuth app"
        WORKFLOW_TOKEN = "workflow_token", "Workflow token"
        ACCESS_KEY = "access_key", "Cloud access key"
        RUNPROOF_TOKEN = "runproof_token", "Runproof API token"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"
        REVOKED = "revoked", "Revoked"
        EXPIRED = "expired", "Expired"

    name = models.CharField(max_length=300)
    kind = models.CharField(
        max_length=30, choices=Kind.choices, default=Kind.SERVICE_ACCOUNT, db_index=True
    )
    provider = models.CharField(
        max_length=100,
        blank=True,
        db_index=True,
        help_text="aws, gcp, github, vault, …",
    )
    vendor = models.CharField(
        max_length=100,
        blank=True,
        help_text="Third party that issued or uses it, if any.",
    )
    scopes = models.JSONField(default=list, blank=True)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.ACTIVE, db_index=True
    )
    issued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the provider created it."
    )
    rotated_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.PROTECT, related_name="identities"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_identities",
    )
    deployments = models.ManyToManyField(
        Deployment,
        blank=True,
        related_name="identities",
        help_text="Deployments this identity can invoke.",
    )
    model = models.ForeignKey(
        AIModel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="identities",
        help_text="The model this credential exists for (from tags, metadata or naming rules).",
    )

    class Meta:
        verbose_name = "non-human identity"
        verbose_name_plural = "non-human identities"
        ordering = ["name"]
        constraints = [natural_key_constraint("nonhumanidentity")]
        indexes = [
            models.Index(fields=["name", "id"], name="nhi_name_id"),
            models.Index(fields=["updated_at", "id"], name="nhi_updated_id"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("inventory:identity_detail", args=[self.pk])


class APIToken(models.Model):
    """A machine's bearer token for Runproof's own API. Only a SHA-256 of the token is stored.

    Each token is also a NonHumanIdentity (provider "runproof"), so Runproof lists its own
    credentials beside everyone else's.
    """

    class Scope(models.TextChoices):
        READ = "read", "Read the inventory"
        TELEMETRY = "telemetry", "Send OTLP telemetry"
        DEPLOY = "deploy", "Record CI/CD deployment events"
        SOURCES = "sources", "Manage data sources"

    name = models.CharField(max_length=200)
    prefix = models.CharField(
        max_length=16, unique=True, help_text="Public part, shown to find the token."
    )
    token_hash = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    identity = models.OneToOneField(
        NonHumanIdentity, on_delete=models.PROTECT, related_name="api_token"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


# ---------------------------------------------------------------------------
# Sources, sync runs and what they bring in
# ---------------------------------------------------------------------------
class DataSource(TimeStamped):
    """A system Runproof reads the inventory from: a registry, a runtime, a credential store.

    `config` holds the settings that may be shown back (URLs, names, rules); `secrets_encrypted` holds
    tokens and passwords, encrypted (inventory.sync.secrets), never shown back. A secret may
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
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.external_id or 'record'}: {self.reason[:80]}"


class UsageHour(models.Model):
    """Calls to one deployment by one caller in one hour, aggregated from trace spans.

    Raw spans are not stored. The caller is the calling service (`service.name`) and the
    end user it reported (`enduser.id` / `user.id`), as the telemetry names them.
    """

    # No index of its own: the unique bucket index starts with deployment_id.
    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="usage", db_index=False
    )
    hour = models.DateTimeField()
    caller_service = models.CharField(max_length=200, blank=True)
    caller_user = models.CharField(max_length=200, blank=True)
    identity = models.ForeignKey(
        NonHumanIdentity,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="usage",
        help_text="The identity whose name matches the calling service, if known.",
    )
    operation = models.CharField(max_length=50, blank=True)
    response_model = models.CharField(max_length=200, blank=True)
    calls = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    duration_ms_total = models.FloatField(default=0)
    duration_ms_max = models.FloatField(default=0)
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "deployment",
                    "hour",
                    "caller_service",
                    "caller_user",
                    "operation",
                    "response_model",
                ],
                name="usagehour_unique_bucket",
            )
        ]
        indexes = [models.Index(fields=["hour", "id"], name="usagehour_hour_id")]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.hour:%Y-%m-%d %H}:00 {self.calls} calls"

    @property
    def mean_duration_ms(self) -> float:
        return self.duration_ms_total / self.calls if self.calls else 0.0


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
        constraints = [
            models.UniqueConstraint(
                fields=["source", "sha256"], name="importedfile_once_per_source"
            )
        ]

    def __str__(self) -> str:
        return f"{self.sha256[:12]}… in {self.source}"
