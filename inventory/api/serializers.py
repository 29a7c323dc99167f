"""Read-only representations of the inventory. Explicit fields only: never `__all__`."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
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


class IdentityRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = m.NonHumanIdentity
        fields = ["id", "name"]
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
            "sensitivity",
            # The riskiest tier of its deployments (governance.tiers); null with none.
            "risk_tier",
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
    # What the pages show, said the same way (the list's "Running" column, the detail's
    # baseline and badges, the CSV): see Deployment's properties of the same names.
    observed_version_label = serializers.CharField(
        read_only=True,
        help_text="The version string the runtime reports, kept even when the registry "
        "has no such version (then observed_version is null).",
    )
    running_version = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text="The version it runs as the pages show it: the registered version, "
        "else the runtime's label; null when nothing reports one.",
    )
    running_version_registered = serializers.BooleanField(
        read_only=True,
        allow_null=True,
        help_text="False when the running version is one the registry does not have "
        "(the pages' 'unregistered'); null when nothing reports a version.",
    )
    baseline_version = ModelVersionRefSerializer(
        read_only=True,
        allow_null=True,
        help_text="The approved version it must run: the committee's pin "
        "(approved_version) if set, else its model's baseline.",
    )
    baseline_kind = serializers.ChoiceField(
        choices=[("pin", "pin"), ("model", "model"), ("", "none")],
        read_only=True,
        help_text="Where baseline_version comes from: the deployment's pin, its model's "
        "baseline, or '' when no version is approved.",
    )
    # A plain string: a second enum of the same choices would make drf-spectacular name one
    # choice set twice (W001, which `check --deploy` fails on). Values as the model's.
    model_lifecycle = serializers.CharField(
        source="model.lifecycle",
        read_only=True,
        help_text="Its model's lifecycle: "
        + ", ".join(m.AIModel.Lifecycle.values)
        + " (as the model's `lifecycle`).",
    )
    silent = serializers.BooleanField(
        source="is_silent",
        read_only=True,
        help_text="Active, but no source has reported it for the policy's "
        "silent_after_hours: not answering as far as anyone can tell.",
    )
    last_call_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="The time of the latest call recorded in its usage (kept by the "
        "traces receiver with the usage rows); null when no call was ever recorded.",
    )
    identities = IdentityRefSerializer(
        many=True,
        read_only=True,
        help_text="The non-human identities bound to it (that can invoke it) the caller may read.",
    )
    system = SystemRefSerializer(read_only=True, allow_null=True)
    team = TeamRefSerializer(read_only=True, allow_null=True)
    owner = PersonRefSerializer(read_only=True, allow_null=True)
    inherited_owner = PersonRefSerializer(
        read_only=True,
        allow_null=True,
        help_text="Its model's owner when it has no owner of its own: shown, and able "
        "to read it, but not accountable (it still counts as ownerless).",
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["running_version"] = data["running_version"] or None
        return data

    class Meta:
        model = m.Deployment
        fields = [
            "id",
            "name",
            "model",
            "model_lifecycle",
            "observed_version",
            "observed_version_label",
            "running_version",
            "running_version_registered",
            "approved_version",
            "baseline_version",
            "baseline_kind",
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
            "inherited_owner",
            "business_purpose",
            "change_window",
            "status",
            "silent",
            "first_seen_at",
            "last_seen_at",
            "last_call_at",
            "identities",
            # 1 riskiest … 4, an override in force included, and its computed score.
            "risk_tier",
            "risk_score",
            *SOURCED_FIELDS,
        ]
        read_only_fields = fields


class IdentitySerializer(serializers.ModelSerializer):
    team = TeamRefSerializer(read_only=True, allow_null=True)
    owner = PersonRefSerializer(read_only=True, allow_null=True)
    deployments = serializers.PrimaryKeyRelatedField(
        many=True,
        read_only=True,
        help_text="Ids of the deployments it can invoke that the caller may read "
        "(names in deployment_names, same order).",
    )
    deployment_names = serializers.SerializerMethodField()
    model = AIModelRefSerializer(
        read_only=True,
        allow_null=True,
        help_text="The model this credential exists for, if known.",
    )
    silent = serializers.BooleanField(
        source="is_silent",
        read_only=True,
        help_text="Active, but its source has not reported it for the policy's "
        "silent_after_hours.",
    )
    scopes = serializers.ListField(child=serializers.CharField(), read_only=True)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_deployment_names(self, obj: m.NonHumanIdentity) -> list[str]:
        return [d.name for d in obj.deployments.all()]

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
            "silent",
            "model",
            "issued_at",
            "rotated_at",
            "last_used_at",
            "expires_at",
            "team",
            "owner",
            "deployments",
            "deployment_names",
            *SOURCED_FIELDS,
        ]
        read_only_fields = fields
