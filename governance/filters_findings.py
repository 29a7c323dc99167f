"""Filters of the findings queue (the page, its CSV and the API share them)."""

from __future__ import annotations

import datetime as dt

import django_filters as df
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.utils import timezone

from governance.filters import DAY_BOUNDS, _start_of
from governance.models import Finding, Notification
from inventory import models as m
from inventory import source_names
from inventory.filters import BaseFilter, IdFilter

UNRESOLVED = "unresolved"
ALL = "all"
# No status (or an empty one) means unresolved: the queue is what still needs someone.
STATUS_CHOICES = [
    (UNRESOLVED, "Unresolved"),
    (ALL, "Any status"),
    *Finding.Status.choices,
]
SEVERITY_NAMES = {
    "low": Finding.Severity.LOW,
    "medium": Finding.Severity.MEDIUM,
    "high": Finding.Severity.HIGH,
    "critical": Finding.Severity.CRITICAL,
}
SEVERITY_CHOICES = [(name, name.capitalize()) for name in SEVERITY_NAMES]
TIER_CHOICES = [(str(t), f"Tier {t}") for t in (1, 2, 3, 4)]
MINE = "mine"
ASSIGNEE_CHOICES = [(MINE, "Assigned to me"), ("none", "Not assigned to a person")]
OLDER_THAN_MAX = 36_500


class DaysFilter(df.NumberFilter):
    """A whole number of days."""

    field_class = forms.IntegerField


class FindingFilter(BaseFilter):
    search_fields = ("title",)

    kind = df.ChoiceFilter(choices=Finding.Kind.choices)
    severity = df.ChoiceFilter(
        choices=SEVERITY_CHOICES, method="filter_severity", label="Severity"
    )
    min_severity = df.ChoiceFilter(
        choices=SEVERITY_CHOICES,
        method="filter_min_severity",
        label="Severity at least",
    )
    tier = df.ChoiceFilter(choices=TIER_CHOICES)
    status = df.ChoiceFilter(
        choices=STATUS_CHOICES,
        method="filter_status",
        empty_label=None,
        label="Status",
    )
    team = df.ModelChoiceFilter(queryset=m.Team.objects.none())
    owner = df.ModelChoiceFilter(queryset=get_user_model().objects.none())
    assignee = df.ChoiceFilter(
        choices=ASSIGNEE_CHOICES, method="filter_assignee", label="Assignee"
    )
    source = df.CharFilter(
        label="Source", max_length=100, widget=forms.Select(choices=())
    )
    subject_type = df.ChoiceFilter(
        choices=Finding.Subject.choices, label="Subject type"
    )
    subject_id = IdFilter(label="Subject id")
    opened_after = df.DateFilter(
        label="Opened from",
        method="filter_opened_after",
        validators=DAY_BOUNDS,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    opened_before = df.DateFilter(
        label="Opened before",
        method="filter_opened_before",
        validators=DAY_BOUNDS,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    older_than = DaysFilter(
        label="Open for more than (days)",
        method="filter_older_than",
        min_value=0,
        max_value=OLDER_THAN_MAX,
    )

    class Meta:
        model = Finding
        fields: list[str] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._source_names: dict[str, str] | None = None
        self.form.fields["q"].label = "Title"
        self.form.fields["q"].widget.attrs["placeholder"] = "contains…"
        self.form.fields["older_than"].widget.attrs["step"] = "1"
        self.form.fields["source"].widget.choices = self._source_choices

    # The list reads the source names once for the filter and the table (inventory.lists).
    def source_names(self) -> dict[str, str]:
        if self._source_names is None:
            self._source_names = source_names.names()
        return self._source_names

    def _source_choices(self) -> list[tuple[str, str]]:
        return [
            ("", "Any"),
            (m.MANUAL_SOURCE, "Typed in (manual)"),
            *self.source_names().items(),
        ]

    def filter_severity(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(severity=SEVERITY_NAMES[value])

    def filter_min_severity(
        self, queryset: QuerySet, name: str, value: str
    ) -> QuerySet:
        return queryset.filter(severity__gte=SEVERITY_NAMES[value])

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == ALL:
            return queryset
        if value == UNRESOLVED:
            return queryset.filter(unresolved_q())
        return queryset.filter(status=value)

    def filter_assignee(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == MINE:
            user = self.user
            if user is None or getattr(user, "pk", None) is None:
                return queryset.none()
            return queryset.filter(assignee_id=user.pk)
        return queryset.filter(assignee__isnull=True)

    def filter_opened_after(
        self, queryset: QuerySet, name: str, value: dt.date
    ) -> QuerySet:
        return queryset.filter(opened_at__gte=_start_of(value))

    def filter_opened_before(
        self, queryset: QuerySet, name: str, value: dt.date
    ) -> QuerySet:
        return queryset.filter(opened_at__lt=_start_of(value))

    def filter_older_than(self, queryset: QuerySet, name: str, value: int) -> QuerySet:
        return queryset.filter(opened_at__lt=timezone.now() - dt.timedelta(days=value))


def unresolved_q() -> Q:
    return ~Q(status=Finding.Status.RESOLVED)


def default_status(queryset: QuerySet, params) -> QuerySet:
    """Without a status (or with an empty one) the queue lists the unresolved findings;
    a status filter (valid or not) starts from every finding, and an invalid one falls
    back to unresolved."""
    if params.get("status") not in {value for value, _ in STATUS_CHOICES} - {
        UNRESOLVED
    }:
        return queryset.filter(unresolved_q())
    return queryset


class NotificationFilter(BaseFilter):
    search_fields = ("message",)

    state = df.ChoiceFilter(
        choices=[("unread", "Unread"), ("read", "Read")],
        method="filter_state",
        label="State",
    )

    class Meta:
        model = Notification
        fields: list[str] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.form.fields["q"].label = "Message"

    def filter_state(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(read_at__isnull=value == "unread")
