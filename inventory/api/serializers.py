"""Read-only representations of the inventory. Explicit fields only: never `__all__`."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from inventory import models as m


class TeamRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = m.Team
        fields = ["id", "name", "slug"]
        read_only_fields = fields


class PersonRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = get_user_model()
        fields = ["id", "username"]
        read_only_fields = fields


class AIModelRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = m.AIModel
        fields = ["id", "name"]
        read_only_fields = fields


class ModelVersionRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = m.ModelVersion
        fields = ["id", "version"]
        read_only_fields = fields


class SystemRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = m.System
        fields = ["id", "name"]
        read_only_fields = fields


SOURCED_FIELDS = ["source", "external_id", "created_at", "updated_at"]


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = m.Team
        fields = ["id", "name", "slug", "description", "created_at", "updated_at"]
        read_only_fields = fields


class AIModelSerializer(serializers.ModelSerializer):
    team = TeamRefSerializer(read_only=True, allow_null=True)
    owner = PersonRefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = m.AIModel
        fields = [
            "id",
            "name",
            "kind",
            "provider",
            "description",
            "lifecycle",
            "baseline_version",
            "team",
            "owner",
            *SOURCED_FIELDS,
        ]
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    model = AIModelRefSerializer(read_only=True)
    approved_by = PersonRefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = m.ModelVersion
        fields = [
            "id",
            "model",
            "version",
            "artifact_uri",
            "digest",
            "approval",
            "approved_by",
            "approved_at",
            "approved_bounds",
            *SOURCED_FIELDS,
        ]
        read_only_fields = fields


class SystemSerializer(serializers.ModelSerializer):
    team = TeamRefSerializer(read_only=True, allow_null=True)
    owner = PersonRefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = m.System
        fields = [
            "id",
            "name",
            "kind",
            "description",
            "business_purpose",
            "team",
            "owner",
            *SOURCED_FIELDS,
        ]
        read_only_fields = fields


class DeploymentSerializer(serializers.ModelSerializer):
    model = AIModelRefSerializer(read_only=True)
    observed_version = ModelVersionRefSerializer(read_only=True, allow_null=True)
    approved_version = ModelVersionRefSerializer(read_only=True, allow_null=True)
    version_drift = serializers.BooleanField(read_only=True)
    baseline_version_id = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="The committee's pin (approved_version) if set, else the model's "
        "baseline version: drift is observed ≠ this.",
    )
    system = SystemRefSerializer(read_only=True, allow_null=True)
    team = TeamRefSerializer(read_only=True, allow_null=True)
    owner = PersonRefSerializer(read_only=True, allow_null=True)

    class Meta:
        model = m.Deployment
        fields = [
            "id",
            "name",
            "model",
            "observed_version",
            "approved_version",
            "baseline_version_id",
            "version_drift",
            "system",
            "environment",
            "endpoint",
            "platform",
            "platform_locator",
            "exposure",
            "write_access",
            "decision_making",
            "team",
            "owner",
            "business_purpose",
            "change_window",
            "status",
            "first_seen_at",
            "last_seen_at",
            *SOURCED_FIELDS,
        ]
        read_only_fields = fields


class IdentitySerializer(serializers.ModelSerializer):
    team = TeamRefSerializer(read_only=True, allow_null=True)
    owner = PersonRefSerializer(read_only=True, allow_null=True)
    deployments = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = m.NonHumanIdentity
        fields = [
            "id",
            "name",
            "kind",
            "provider",
            "vendor",
            "scopes",
            "status",
            "issued_at",
            "rotated_at",
            "last_used_at",
            "expires_at",
            "team",
            "owner",
            "deployments",
            *SOURCED_FIELDS,
        ]
        read_only_fields = fields
