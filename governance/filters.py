"""Audit log filters. The URL parameters object_type and object_id are what the
"History" button on every inventory detail page links to."""

from __future__ import annotations

import datetime as dt

import django_filters as df
from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import QuerySet
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import object_types
from inventory.filters import BaseFilter
from inventory.permissions import OWNERSHIP

# The day after the last day must still be a date (9999-12-31 + 1 overflows).
DAY_BOUNDS = [
    MinValueValidator(dt.date(1900, 1, 1)),
    MaxValueValidator(dt.date(9998, 12, 31)),
]

# Offered as suggestions in the action box (a <datalist>), which still accepts any text:
# services elsewhere may record actions this list does not know yet.
KNOWN_ACTIONS: tuple[str, ...] = tuple(
    sorted(
        {
            f"{model._meta.model_name}.{verb}"
            for model in OWNERSHIP
            for verb in ("create", "update", "delete")
        }
        | {
            "apitoken.issue",
            "apitoken.revoke",
            "modelversion.approve",
            "modelversion.reject",
            "modelversion.deprecate",
            "modelversion.retire",
            "modelversion.reopen",
        }
    )
)


def _start_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


class DayRangeFilter(BaseFilter):
    """From and To days on one timestamp column (`date_field`), as day bounds rather than
    `__date`: a range on the column itself can use its index."""

    date_field = "occurred_at"

    date_from = df.DateFilter(
        label="From",
        method="filter_date_from",
        validators=DAY_BOUNDS,
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    date_to = df.DateFilter(
        label="To",
        method="filter_date_to",
        validators=DAY_BOUNDS,
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def filter_date_from(
        self, queryset: QuerySet, name: str, value: dt.date
    ) -> QuerySet:
        return queryset.filter(**{f"{self.date_field}__gte": _start_of(value)})

    def filter_date_to(self, queryset: QuerySet, name: str, value: dt.date) -> QuerySet:
        end = _start_of(value + dt.timedelta(days=1))
        return queryset.filter(**{f"{self.date_field}__lt": end})


class AuditEventFilter(DayRangeFilter):
    search_fields = ("object_repr",)

    actor = df.CharFilter(field_name="actor_label", lookup_expr="iexact", label="Actor")
    action = df.CharFilter(
        label="Action",
        widget=forms.TextInput(attrs={"list": "audit-actions", "autocomplete": "off"}),
    )
    object_type = df.CharFilter(
        label="Object type",
        method="filter_object_type",
        widget=forms.TextInput(attrs={"placeholder": "inventory.deployment"}),
    )
    object_id = df.CharFilter(label="Object id")

    class Meta:
        model = AuditEvent
        fields: list[str] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.form.fields["q"].label = "Object name"
        self.form.fields["q"].widget.attrs["placeholder"] = "contains…"

    def filter_object_type(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # An object whose model moved app keeps its old label in older events.
        return queryset.filter(object_type__in=object_types(value.strip().lower()))
