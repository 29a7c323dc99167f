"""Filters of the sources pages: sources, runs and deployment events."""

from __future__ import annotations

import django_filters as df
from django import forms
from django.db.models import QuerySet

from inventory import models as m
from inventory.filters import BOOL_CHOICES, BaseFilter, DayFilter
from sources import models as sm


class DataSourceFilter(BaseFilter):
    search_fields = ("name", "last_error")
    kind = df.ChoiceFilter(choices=sm.DataSource.Kind.choices)
    health = df.ChoiceFilter(
        choices=[
            *sm.DataSource.Health.choices,
            ("attention", "Needs attention (failing or degraded)"),
        ],
        method="filter_health",
    )
    enabled = df.BooleanFilter(
        widget=forms.Select(choices=(("", "Any"), *BOOL_CHOICES)),
    )

    class Meta:
        model = sm.DataSource
        fields = ["kind", "health", "enabled"]

    def filter_health(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "attention":
            # What the dashboard's "Sources needing attention" counts.
            return queryset.filter(
                enabled=True,
                health__in=[
                    sm.DataSource.Health.FAILING,
                    sm.DataSource.Health.DEGRADED,
                ],
            )
        return queryset.filter(health=value)


class SyncRunFilter(BaseFilter):
    """The runs list: which source, how it went, what started it; `q` searches the error."""

    search_fields = ("error",)
    source = df.ModelChoiceFilter(queryset=sm.DataSource.objects.order_by("name"))
    status = df.ChoiceFilter(choices=sm.SyncRun.Status.choices)
    trigger = df.ChoiceFilter(choices=sm.SyncRun.Trigger.choices)
    dry_run = df.BooleanFilter(
        label="Dry run",
        widget=forms.Select(choices=(("", "Any"), *BOOL_CHOICES)),
    )
    requested_after = DayFilter(
        field_name="requested_at", bound="from", label="Requested from"
    )
    requested_before = DayFilter(
        field_name="requested_at", bound="to", label="Requested until"
    )

    class Meta:
        model = sm.SyncRun
        fields = ["source", "status", "trigger", "dry_run"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.form.fields["q"].label = "Error contains"
        # Listed names come first, in this order; the free-text box goes last.
        self.form.order_fields([name for name in self.form.fields if name != "q"])


class DeploymentEventFilter(BaseFilter):
    """The deployment events list; `q` searches endpoint, commit and pipeline."""

    search_fields = ("endpoint", "commit", "pipeline")
    model_name = df.CharFilter(
        lookup_expr="icontains", label="Model name", max_length=200
    )
    environment = df.ChoiceFilter(choices=m.Deployment.Environment.choices)
    received_after = DayFilter(
        field_name="received_at", bound="from", label="Received from"
    )
    received_before = DayFilter(
        field_name="received_at", bound="to", label="Received until"
    )

    class Meta:
        model = sm.DeploymentEvent
        fields = ["model_name", "environment"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.form.fields["q"].widget.attrs["placeholder"] = "endpoint, commit, pipeline"
        self.form.order_fields([name for name in self.form.fields if name != "q"])
