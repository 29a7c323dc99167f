"""GET /api/v1/findings and /api/v1/findings/{id}: read-only, the `read` scope, scoped by
`findings.finding_scope` for the caller, paged by keyset on id like every list endpoint.

Filters: kind, status (one status, `unresolved`, or `all`: the default is every status),
severity (low, medium, high, critical), min_severity, tier (1 to 4), team (id), and the
subject as subject_type + subject_id. A bad value answers 400 naming the parameter.
"""

from __future__ import annotations

from typing import Any

import django_filters as df
from django import forms
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers, viewsets

from governance import filters_findings as ff
from governance import selectors_findings as selectors
from governance.models import Finding, FindingEvent
from inventory.api import schema  # noqa: F401  (the bearer scheme)
from inventory.api.filters import UserFilterBackend
from inventory.api.pagination import IdCursorPagination
from inventory.api.permissions import HasReadScope
from inventory.api.serializers import PersonRefSerializer, TeamRefSerializer
from inventory.filters import IdFilter

SUBJECT_ID_NEEDS_TYPE = "Give subject_type with subject_id."
API_STATUS_CHOICES = ff.STATUS_CHOICES
SEVERITY_NAME = {v: k for k, v in ff.SEVERITY_NAMES.items()}


class FindingAPIForm(forms.Form):
    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("subject_id") and not data.get("subject_type"):
            raise forms.ValidationError({"subject_id": SUBJECT_ID_NEEDS_TYPE})
        return data


class FindingAPIFilter(df.FilterSet):
    kind = df.ChoiceFilter(choices=Finding.Kind.choices)
    status = df.ChoiceFilter(choices=API_STATUS_CHOICES, method="filter_status")
    severity = df.ChoiceFilter(
        choices=ff.SEVERITY_CHOICES, method="filter_severity", label="Severity"
    )
    min_severity = df.ChoiceFilter(
        choices=ff.SEVERITY_CHOICES,
        method="filter_min_severity",
        label="Severity at least",
    )
    tier = df.ChoiceFilter(choices=ff.TIER_CHOICES)
    team = IdFilter(field_name="team_id", label="Team id")
    subject_type = df.ChoiceFilter(choices=Finding.Subject.choices)
    subject_id = IdFilter(label="Subject id (with subject_type)")

    class Meta:
        model = Finding
        fields: list[str] = []
        form = FindingAPIForm

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == ff.ALL:
            return queryset
        if value == ff.UNRESOLVED:
            return queryset.filter(ff.unresolved_q())
        return queryset.filter(status=value)

    def filter_severity(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(severity=ff.SEVERITY_NAMES[value])

    def filter_min_severity(
        self, queryset: QuerySet, name: str, value: str
    ) -> QuerySet:
        return queryset.filter(severity__gte=ff.SEVERITY_NAMES[value])


class FindingSubjectSerializer(serializers.Serializer):
    type = serializers.CharField()
    id = serializers.IntegerField()
    name = serializers.CharField(allow_null=True)


class FindingSerializer(serializers.ModelSerializer):
    severity = serializers.SerializerMethodField(
        help_text="low, medium, high or critical."
    )
    severity_level = serializers.IntegerField(
        source="severity", read_only=True, help_text="1 (low) to 4 (critical)."
    )
    subject = serializers.SerializerMethodField()
    team = TeamRefSerializer(read_only=True, allow_null=True)
    owner = PersonRefSerializer(read_only=True, allow_null=True)
    assignee = PersonRefSerializer(read_only=True, allow_null=True)
    url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = Finding
        fields = [
            "id",
            "kind",
            "title",
            "severity",
            "severity_level",
            "tier",
            "status",
            "subject",
            "deployment_id",
            "identity_id",
            "model_id",
            "team",
            "owner",
            "queue",
            "assignee",
            "assigned_manually",
            "source",
            "evidence",
            "opened_at",
            "first_opened_at",
            "last_seen_at",
            "resolved_at",
            "times_opened",
            "acknowledged_at",
            "accepted_until",
            "decision_reason",
            "url",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=list(ff.SEVERITY_NAMES)))
    def get_severity(self, obj: Finding) -> str:
        return SEVERITY_NAME.get(obj.severity, str(obj.severity))

    @extend_schema_field(FindingSubjectSerializer)
    def get_subject(self, obj: Finding) -> dict[str, Any]:
        subject = {
            Finding.Subject.DEPLOYMENT: obj.deployment,
            Finding.Subject.IDENTITY: obj.identity,
            Finding.Subject.MODEL: obj.model,
        }.get(obj.subject_type)
        return {
            "type": obj.subject_type,
            "id": obj.subject_id,
            "name": subject.name if subject is not None else None,
        }


class FindingEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = FindingEvent
        fields = ["at", "action", "actor_label", "note", "data"]
        read_only_fields = fields


class FindingDetailSerializer(FindingSerializer):
    events = serializers.SerializerMethodField(
        help_text="The finding's history, newest first (at most 200)."
    )

    class Meta(FindingSerializer.Meta):
        fields = [*FindingSerializer.Meta.fields, "events"]
        read_only_fields = fields

    @extend_schema_field(FindingEventSerializer(many=True))
    def get_events(self, obj: Finding) -> list[dict[str, Any]]:
        return FindingEventSerializer(
            selectors.finding_events(finding=obj), many=True
        ).data


class FindingViewSet(viewsets.ReadOnlyModelViewSet):
    """Findings: conditions the detection engine concluded on deployments, identities and
    models, with their evidence, severity, tier and who must act."""

    queryset = Finding.objects.none()
    permission_classes = [HasReadScope]
    filter_backends = [UserFilterBackend]
    filterset_class = FindingAPIFilter
    pagination_class = IdCursorPagination
    lookup_value_regex = r"\d+"

    def get_serializer_class(self) -> type[serializers.Serializer]:
        if self.action == "retrieve":
            return FindingDetailSerializer
        return FindingSerializer

    def get_queryset(self) -> QuerySet[Finding]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return self.queryset
        return selectors.finding_list(user=self.request.user)

    def get_object(self) -> Finding:
        obj = selectors.finding_get(user=self.request.user, pk=int(self.kwargs["pk"]))
        self.check_object_permissions(self.request, obj)
        return obj
