"""What exists and what was observed: teams, models, systems, deployments, identities."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from audit.actors import Actor
from inventory import querysets

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
    # from "updated" without comparing every field), when a sync last wrote it (an
    # unchanged row is not rewritten: the source's last successful run says when it was
    # last listed), and when it stopped reporting the record. Gone rows are kept.
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


class NullsFirstIndex(models.Index):
    """A (nullable field, id) index in the order lists sort it: NULL first going up.

    Keyset pages sort NULL as the smallest value (inventory.pagination). PostgreSQL puts
    NULLs last in a plain index, so there the index says NULLS FIRST and a page reads it
    forwards or backwards; SQLite sorts NULLs first already and takes no NULLS modifier
    in an index, so it gets the plain one.
    """

    def create_sql(self, model, schema_editor, using="", **kwargs):
        if schema_editor.connection.vendor != "postgresql" or not self.fields:
            return super().create_sql(model, schema_editor, using=using, **kwargs)
        columns = [
            F(model._meta.get_field(name.lstrip("-")).attname) for name in self.fields
        ]
        expressions = [columns[0].asc(nulls_first=True), *columns[1:]]
        index = models.Index(*expressions, name=self.name)
        return index.create_sql(model, schema_editor, using=using, **kwargs)


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


class Sensitivity(models.TextChoices):
    """How sensitive a business purpose is: one fact of a deployment's risk tier."""

    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


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
    # Changed only by inventory.services (aimodel_set_baseline, model_version_set_approval,
    # the registry's sync): the version every deployment of the model is held to, unless
    # the committee pinned another one on the deployment.
    baseline_version = models.ForeignKey(
        "ModelVersion",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="baseline_of",
        help_text="The approved version its deployments should run: the registry's "
        "approved alias, or the approved version the committee marked.",
    )
    sensitivity = models.CharField(
        max_length=20,
        choices=Sensitivity.choices,
        default=Sensitivity.MEDIUM,
        help_text="How sensitive the purpose it serves is: its deployments' default.",
    )
    # The riskiest tier of its deployments (1 riskiest … 4), kept by governance.tiers;
    # NULL while it has no deployment.
    risk_tier = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)

    objects = querysets.AIModelQuerySet.as_manager()

    class Meta:
        verbose_name = "model"
        ordering = ["name"]
        constraints = [natural_key_constraint("aimodel")]
        indexes = [
            models.Index(fields=["name", "id"], name="aimodel_name_id"),
            models.Index(fields=["updated_at", "id"], name="aimodel_updated_id"),
            # The list's tier sort, NULL (no deployment) last: a plain index's order.
            models.Index(fields=["risk_tier", "id"], name="aimodel_tier_id"),
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
        help_text="Approved behaviour bounds, judged per hour (out-of-bounds findings): "
        'e.g. {"max_error_rate": 0.02, "max_mean_latency_ms": 250, "max_latency_ms": '
        '2000, "max_calls_per_hour": 50000, "allowed_callers": ["checkout"]}.',
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
    sensitivity = models.CharField(
        max_length=20,
        choices=Sensitivity.choices,
        blank=True,
        help_text="How sensitive the business process it serves is; blank: its models' own.",
    )
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
        verbose_name="baseline pin",
        help_text="The committee's pin: the version this deployment must run, overriding "
        "its model's baseline. Changed only by inventory.services.deployment_pin_baseline.",
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
        max_length=200,
        blank=True,
        help_text='When it may change, e.g. "Tue 02:00-04:00 UTC" or "Mon-Fri '
        '22:00-06:00 Europe/London" (inventory.change_window reads it); a note after '
        "a semicolon is kept as text.",
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.ACTIVE, db_index=True
    )
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    # The latest call telemetry reported (inventory.usage.record_calls keeps it, with the
    # usage rows): a list sorts on it without reading the usage table. None: never called.
    last_call_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Kept by governance.tiers: the computed tier unless a committee override is in force
    # (1 riskiest … 4), and the score it came from.
    # Indexed with the id (deployment_tier_id): the list's sort and the tier filter.
    risk_tier = models.PositiveSmallIntegerField(default=4, editable=False)
    risk_score = models.PositiveSmallIntegerField(default=0, editable=False)

    objects = querysets.DeploymentQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [natural_key_constraint("deployment")]
        indexes = [
            models.Index(fields=["name", "id"], name="deployment_name_id"),
            models.Index(fields=["last_seen_at", "id"], name="deployment_last_seen_id"),
            # The dashboard's silent count on the cutoff's day (summary._boundary).
            models.Index(fields=["seen_at"], name="deployment_seen_at"),
            models.Index(fields=["environment", "id"], name="deployment_env_id"),
            models.Index(fields=["team", "name", "id"], name="deployment_team_name_id"),
            # The list's sorts on nullable keys (views.SPECS, keyset by (key, id)).
            NullsFirstIndex(
                fields=["last_call_at", "id"], name="deployment_last_call_id"
            ),
            NullsFirstIndex(fields=["owner", "id"], name="deployment_owner_id"),
            NullsFirstIndex(fields=["team", "id"], name="deployment_team_id"),
            models.Index(fields=["risk_tier", "id"], name="deployment_tier_id"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("inventory:deployment_detail", args=[self.pk])

    @property
    def baseline_version_id(self) -> int | None:
        """The committee's pin, else the model's baseline (querysets.BASELINE in SQL)."""
        return self.approved_version_id or self.model.baseline_version_id

    @property
    def version_drift(self) -> bool:
        """Observed ≠ baseline: the row form of `Deployment.objects.drifting()`."""
        baseline = self.baseline_version_id
        return bool(baseline and self.observed_version_id != baseline)

    @property
    def baseline_version(self) -> ModelVersion | None:
        """The version it must run (the baseline_version_id row): the pin, else the model's."""
        if self.approved_version_id:
            return self.approved_version
        return self.model.baseline_version if self.model.baseline_version_id else None

    @property
    def baseline_kind(self) -> str:
        """Where its baseline comes from: "pin", "model", or "" (none approved)."""
        if self.approved_version_id:
            return "pin"
        return "model" if self.model.baseline_version_id else ""

    @property
    def running_version(self) -> str:
        """The version it runs as the pages show it: the registry's version, else the
        runtime's own label (a version the registry does not have), else ""."""
        if self.observed_version_id:
            return self.observed_version.version
        return self.observed_version_label

    @property
    def running_version_registered(self) -> bool | None:
        """Whether the registry has the running version (None: nothing is reported)."""
        if self.observed_version_id:
            return True
        return False if self.observed_version_label else None

    @property
    def inherited_owner(self) -> Any:
        """Its model's owner when it has none of its own: they see it (permissions.scope)
        but do not answer for it, so it still counts as ownerless."""
        return (
            self.model.owner if self.owner_id is None and self.model.owner_id else None
        )

    @property
    def is_silent(self) -> bool:
        """Active, and no source reported it for the policy's hours (querysets.deployment_silent_q)."""
        return querysets.deployment_is_silent(self)

    @property
    def observed_is_declared(self) -> bool:
        """No source reports it: its observed version is what an owner declared."""
        return self.source == MANUAL_SOURCE


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

    objects = querysets.IdentityQuerySet.as_manager()

    class Meta:
        verbose_name = "non-human identity"
        verbose_name_plural = "non-human identities"
        ordering = ["name"]
        constraints = [natural_key_constraint("nonhumanidentity")]
        indexes = [
            models.Index(fields=["name", "id"], name="nhi_name_id"),
            models.Index(fields=["updated_at", "id"], name="nhi_updated_id"),
            # The dashboard counts the boundary day of each time rule (inventory.summary).
            models.Index(fields=["last_used_at"], name="nhi_last_used"),
            models.Index(fields=["issued_at"], name="nhi_issued"),
            models.Index(fields=["rotated_at"], name="nhi_rotated"),
            models.Index(fields=["expires_at"], name="nhi_expires"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("inventory:identity_detail", args=[self.pk])

    @property
    def is_silent(self) -> bool:
        """Active, and its source has not reported it for the policy's hours."""
        return querysets.identity_is_silent(self)


class APIToken(models.Model):
    """A machine's bearer token for Runproof's own API. Only a SHA-256 of the token is stored.

    Each token is also a NonHumanIdentity (provider "runproof"), so Runproof lists its own
    credentials beside everyone else's.
    """

    class Scope(models.TextChoices):
        READ = "read", "Read the inventory"
        TELEMETRY = "telemetry", "Send OTLP telemetry"
        DEPLOY = "deploy", "Record CI/CD deployment events"
        GATE = "gate", "Ask the CI/CD release gate"
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

    def audit_actor(self) -> Actor:
        return Actor.token(self.prefix)


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


class Policy(models.Model):
    """The policy numbers the rules read (`inventory.querysets`): one row, edited by an
    administrator through `services.policy_update`, every change audited."""

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID)
    unrotated_after_days = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="An active credential not rotated (or issued) for this many days is unrotated.",
    )
    unused_after_days = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="An active credential not used (or, never used, issued) for this many "
        "days is unused (also called stale).",
    )
    silent_after_hours = models.PositiveIntegerField(
        default=72,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 365)],
        help_text="An active deployment or identity no source has seen for this many "
        "hours is silent.",
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
        verbose_name_plural = "policy"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="policy_singleton"),
        ]

    def __str__(self) -> str:
        return "Policy"

    def get_absolute_url(self) -> str:
        return reverse("governance:policy")


class FieldChange(models.Model):
    """One change to a governed field, as a source reported it or a person made it.

    `object_type` is the model's label ("inventory.deployment"), `run_id` a plain sync run
    id (no foreign key: inventory does not point at sources). Set-valued fields (bound
    identities, dependencies) store sorted id lists. Read with `history.field_history`.
    """

    object_type = models.CharField(max_length=100)
    object_id = models.BigIntegerField()
    field = models.CharField(max_length=50)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(
        max_length=100, blank=True, help_text="The reporting source's label."
    )
    run_id = models.BigIntegerField(null=True, blank=True)
    actor_kind = models.CharField(max_length=20, blank=True)
    actor_label = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [
            # Per object, newest first (the history panel's keyset order).
            models.Index(
                fields=["object_type", "object_id", "-id"], name="fieldchange_object"
            ),
            # Per (object, field), latest: what the prune keeps and rules read.
            models.Index(
                fields=["object_type", "object_id", "field", "-id"],
                name="fieldchange_field_latest",
            ),
            models.Index(fields=["changed_at"], name="fieldchange_changed_at"),
        ]

    def __str__(self) -> str:
        return f"{self.object_type}:{self.object_id} {self.field}"


class ChangeNotice(models.Model):
    """ "These objects changed": written by sources in the transaction that changed them,
    claimed and consumed by governance (`history.change_notices_claim` / `_consume`)."""

    object_type = models.CharField(max_length=100)
    object_id = models.BigIntegerField()
    source = models.CharField(max_length=100, blank=True)
    run_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    consumed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"],
                condition=Q(consumed_at__isnull=True),
                name="changenotice_pending",
            ),
            models.Index(fields=["consumed_at"], name="changenotice_consumed_at"),
        ]

    def __str__(self) -> str:
        return f"{self.object_type}:{self.object_id} ({self.source or 'by hand'})"


class SummaryCount(models.Model):
    """One headline count of the dashboard for one (team, person) pair, kept exact by
    `inventory.summary` in the transactions that change the inventory.

    `team_key`/`owner_key` are the object's team and accountable person (0 for none);
    the row with both -1 is the sum over every pair (what a reader of everything sees).
    Time rules are day buckets (`day` is the UTC day of the rule's timestamp); counts that
    do not move with time have `day` = `summary.NO_DAY`. Derived data: `rebuild_summary`
    recomputes it from the rules.
    """

    team_key = models.BigIntegerField()
    owner_key = models.BigIntegerField()
    metric = models.CharField(max_length=40)
    day = models.DateField()
    n = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team_key", "owner_key", "metric", "day"],
                name="summarycount_key",
            )
        ]
        indexes = [
            models.Index(fields=["owner_key"], name="summarycount_owner"),
            # The by-team chart reads one metric of every pair.
            models.Index(
                fields=["metric", "day", "team_key"], name="summarycount_metric"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.team_key}/{self.owner_key} {self.metric} {self.day}: {self.n}"


class SummaryDirty(models.Model):
    """A team whose summary rows are out of date, or an object whose team's are (when the
    writer did not look its team up: a telemetry push moving last-seen): written in the
    transaction that changed it, removed by the refresh that recounted it
    (`inventory.summary`)."""

    team_key = models.BigIntegerField(null=True, blank=True, db_index=True)
    object_kind = models.CharField(max_length=100, blank=True)
    object_id = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        what = (
            f"team {self.team_key}"
            if self.team_key is not None
            else (f"{self.object_kind} {self.object_id}")
        )
        return f"{what} dirty since {self.created_at}"
