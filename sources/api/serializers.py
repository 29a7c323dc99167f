"""Data sources, sync runs and CI/CD deployment events in the API.

Secrets are write-only: accepted on input, shown back only as {"name": "set" | "env:VAR"}.
Input serializers only check shapes; sources.sync.services decides what is valid.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inventory import models as m
from inventory.api.serializers import TeamRefSerializer
from sources import models as sm
from sources.sync import services

MAX_RUN_ERRORS_SHOWN = 500


def _absolute(request: Any, path: str) -> str:
    return request.build_absolute_uri(path) if request is not None else path


class SourceSerializer(serializers.ModelSerializer):
    kind_label = serializers.SerializerMethodField()
    secrets = serializers.SerializerMethodField(
        help_text='Which secrets are stored: "set", or "env:VAR" when read from the environment.'
    )
    team = TeamRefSerializer(read_only=True, allow_null=True)
    url = serializers.SerializerMethodField(help_text="The source's page in Runproof.")

    class Meta:
        model = sm.DataSource
        fields = [
            "id",
            "name",
            "kind",
            "kind_label",
            "enabled",
            "config",
            "secrets",
            "schedule_minutes",
            "team",
            "health",
            "last_run_at",
            "last_success_at",
            "last_error_at",
            "last_error",
            "created_at",
            "updated_at",
            "url",
        ]
        read_only_fields = fields

    def get_kind_label(self, obj: sm.DataSource) -> str:
        try:
            return str(services.connector_class(obj.kind).label)
        except (
            ImportError,
            ValidationError,
        ):  # a kind whose connector is gone still lists
            return obj.kind

    @extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
    def get_secrets(self, obj: sm.DataSource) -> dict[str, str]:
        return services.describe_secrets(obj)

    def get_url(self, obj: sm.DataSource) -> str:
        return _absolute(self.context.get("request"), obj.get_absolute_url())


class SourceWriteSerializer(serializers.Serializer):
    """Input for creating (POST) and changing (PATCH) a source."""

    name = serializers.CharField(max_length=200)
    kind = serializers.CharField(
        max_length=30,
        help_text="One of the connector kinds, e.g. mlflow, kubernetes, aws_iam. Fixed once created.",
    )
    enabled = serializers.BooleanField(required=False)
    config = serializers.DictField(
        required=False,
        help_text="Settings that may be shown back. On PATCH, merged over the stored ones; null removes one.",
    )
    secrets = serializers.DictField(
        child=serializers.CharField(
            allow_blank=True, trim_whitespace=False, max_length=10_000
        ),
        required=False,
        write_only=True,
        help_text='Tokens and passwords, stored encrypted; "env:VAR" reads VAR when syncing. '
        "A blank value keeps the stored secret.",
    )
    clear_secrets = serializers.ListField(
        child=serializers.CharField(max_length=100),
        required=False,
        write_only=True,
        help_text="Names of stored secrets to remove.",
    )
    schedule_minutes = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=services.MAX_SCHEDULE_MINUTES,
        help_text="Minutes between scheduled syncs; 0 syncs only on demand.",
    )
    team = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=m.Team.objects.all(),
        required=False,
        allow_null=True,
        help_text="Slug of the team given to new records this source brings in.",
    )


class SyncRequestSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Run it, count what would change, and keep nothing.",
    )
    file = serializers.FileField(
        required=False,
        help_text="For sources that sync from an uploaded file (multipart/form-data).",
    )


class SyncRunSerializer(serializers.ModelSerializer):
    # Plain text in the schema: as an enum, "status" would collide with the deployments'
    # and identities' status enums across the two run components (drf-spectacular W001).
    status = serializers.CharField(
        read_only=True,
        help_text="; ".join(f"{v}: {label}" for v, label in sm.SyncRun.Status.choices),
    )
    requested_by = serializers.SerializerMethodField()
    duration_seconds = serializers.SerializerMethodField()
    progress_percent = serializers.IntegerField(read_only=True, allow_null=True)
    url = serializers.SerializerMethodField(help_text="The run's page in Runproof.")

    class Meta:
        model = sm.SyncRun
        fields = [
            "id",
            "source",
            "status",
            "phase",
            "trigger",
            "dry_run",
            "requested_by",
            "requested_at",
            "started_at",
            "finished_at",
            "duration_seconds",
            "attempt",
            "retry_number",
            "expected",
            "seen",
            "created",
            "updated",
            "unchanged",
            "gone",
            "errors",
            "error",
            "progress_percent",
            "url",
        ]
        read_only_fields = fields

    def get_requested_by(self, obj: sm.SyncRun) -> str | None:
        return obj.requested_by.get_username() if obj.requested_by else None

    @extend_schema_field(OpenApiTypes.FLOAT)
    def get_duration_seconds(self, obj: sm.SyncRun) -> float | None:
        return obj.duration.total_seconds() if obj.duration else None

    def get_url(self, obj: sm.SyncRun) -> str:
        return _absolute(self.context.get("request"), obj.get_absolute_url())


class SyncErrorSerializer(serializers.ModelSerializer):
    class Meta:
        model = sm.SyncError
        fields = ["external_id", "reason", "excerpt", "created_at"]
        read_only_fields = fields


class SyncRunDetailSerializer(SyncRunSerializer):
    changes = serializers.JSONField(
        read_only=True,
        help_text="A sample of what changed (or would): {action, kind, external_id, fields?}.",
    )
    error_rows = serializers.SerializerMethodField(
        help_text=f"Records the run skipped, and why (the first {MAX_RUN_ERRORS_SHOWN})."
    )

    class Meta(SyncRunSerializer.Meta):
        fields = [*SyncRunSerializer.Meta.fields, "changes", "error_rows"]
        read_only_fields = fields

    @extend_schema_field(SyncErrorSerializer(many=True))
    def get_error_rows(self, obj: sm.SyncRun) -> list[dict[str, Any]]:
        rows = obj.error_rows.order_by("id")[:MAX_RUN_ERRORS_SHOWN]
        return SyncErrorSerializer(rows, many=True).data


# ---------------------------------------------------------------------------
# CI/CD deployment events
# ---------------------------------------------------------------------------
class DeploymentEventInSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200, help_text="The model's name.")
    version = serializers.CharField(max_length=100)
    environment = serializers.ChoiceField(choices=m.Deployment.Environment.choices)
    endpoint = serializers.CharField(
        max_length=500, help_text="URL or address where it answers."
    )
    deployment = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        help_text='The deployment\'s name; default "<model> @ <endpoint>".',
    )
    commit = serializers.CharField(max_length=100, required=False, allow_blank=True)
    pipeline = serializers.CharField(max_length=200, required=False, allow_blank=True)
    pipeline_run = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="The pipeline run's URL or id. The same run, model, version and "
        "environment sent twice is recorded once.",
    )
    deployed_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="ISO 8601, with a time zone."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A typo'd field name would otherwise be dropped silently, and a pipeline never
        # learns its commit or run id went missing.
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {name: ["Unknown field."] for name in unknown[:20]}
            )
        return attrs


class DeploymentEventSerializer(serializers.ModelSerializer):
    deployment = serializers.SerializerMethodField()
    model_version = serializers.SerializerMethodField()
    sent_by = serializers.SerializerMethodField()

    class Meta:
        model = sm.DeploymentEvent
        fields = [
            "id",
            "received_at",
            "model_name",
            "version",
            "environment",
            "endpoint",
            "deployment_name",
            "commit",
            "pipeline",
            "pipeline_run",
            "deployed_at",
            "deployment",
            "model_version",
            "sent_by",
        ]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "url": {"type": "string"},
            },
        }
    )
    def get_deployment(self, obj: sm.DeploymentEvent) -> dict[str, Any] | None:
        d = obj.deployment
        if d is None:
            return None
        return {
            "id": d.pk,
            "name": d.name,
            "url": _absolute(self.context.get("request"), d.get_absolute_url()),
        }

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "properties": {
                "id": {"type": "integer"},
                "version": {"type": "string"},
                "approval": {"type": "string"},
            },
        }
    )
    def get_model_version(self, obj: sm.DeploymentEvent) -> dict[str, Any] | None:
        v = obj.model_version
        if v is None:
            return None
        return {"id": v.pk, "version": v.version, "approval": v.approval}

    def get_sent_by(self, obj: sm.DeploymentEvent) -> str | None:
        return obj.sent_by.name if obj.sent_by_id else None
