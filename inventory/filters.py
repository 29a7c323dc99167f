"""List filters. Choices for teams and owners are narrowed to what the user may see."""

from __future__ import annotations

import datetime as dt

import django_filters as df
from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db.models import Q, QuerySet
from django.utils import timezone

from inventory import models as m
from inventory import permissions, querysets, selectors, source_names
from inventory.widgets import LookupInput, describe_choice, use_fast_select

# The largest id a BIGINT column holds: anything past it fails in the database, not the form.
MAX_ID = 2**63 - 1


class IdFilter(df.NumberFilter):
    """An object id: a whole number the database can hold (NumberFilter would take -4e58)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(*args, **kwargs)


class BaseFilter(df.FilterSet):
    """Adds free-text search over `search_fields` and Bootstrap widgets."""

    search_fields: tuple[str, ...] = ("name",)
    q = df.CharFilter(method="filter_q", label="Search")

    def __init__(self, *args, user=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        for name, field in self.form.fields.items():
            widget = field.widget
            css = (
                "form-select form-select-sm"
                if isinstance(widget, forms.Select)
                else "form-control form-control-sm"
            )
            widget.attrs.setdefault("class", css)
            widget.attrs.setdefault("id", f"filter-{name}")
            if isinstance(field, forms.ModelChoiceField):
                field.empty_label = "Any"
            # Before the querysets below: setting one refreshes the current widget's choices.
            use_fast_select(field)
        if "team" in self.filters and user is not None:
            # Hundreds of teams at enterprise scale: a type-ahead, not a <select> of all.
            field = self.form.fields["team"]
            field.queryset = permissions.scope(m.Team.objects.all(), user)
            self._lookup("team", "team", "filter-team")
        if "owner" in self.filters and user is not None:
            # Thousands of people: a type-ahead, not a <select> of everyone.
            self.form.fields["owner"].queryset = selectors.person_list(user=user)
            self._lookup("owner", "user", "filter-owner")

    def get_form_class(self) -> type[forms.Form]:
        """django-filters builds a form class (its metaclass, a new field per filter) for
        every filter set; ours is built once per filter set class: each form copies the
        class's fields (Form.__init__), and __init__ above changes only those copies.
        It was a third of what a filtered list spends on its filters (bench)."""
        cls = type(self)
        form_class = cls.__dict__.get("_runproof_form_class")
        if form_class is None:
            form_class = super().get_form_class()
            cls._runproof_form_class = form_class
        return form_class

    def _lookup(self, name: str, kind: str, widget_id: str) -> None:
        """Choose `name` by type-ahead; the chosen object's label costs a query only when
        one is chosen."""
        field = self.form.fields[name]
        field.widget = LookupInput(
            kind,
            attrs={
                "class": "form-control form-control-sm",
                "id": widget_id,
                "placeholder": "Any",
            },
        )
        raw = self.data.get(self.form.add_prefix(name)) if self.is_bound else None
        field.widget.current_label = describe_choice(field, raw)

    def filter_q(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # One search for every list (inventory.querysets.search_q): trigram indexes answer
        # it on PostgreSQL.
        return queryset.filter(
            querysets.search_q(queryset.model, self.search_fields, value)
        )


BOOL_CHOICES = (("true", "Yes"), ("false", "No"))
# Risk tiers (kept by governance.tiers): 1 riskiest … 4.
TIER_CHOICES = tuple((str(t), f"Tier {t}") for t in (1, 2, 3, 4))


def source_choices() -> list[tuple[str, str]]:
    """Typed-in rows, then each data source by name. Called only when the form renders,
    so the API (which never renders it) and the OpenAPI document run no query for it."""
    return [
        ("", "Any"),
        (m.MANUAL_SOURCE, "Typed in (manual)"),
        *source_names.names().items(),
    ]


GONE_CHOICES = (("present", "Still reported"), ("gone", "Gone from its source"))


class SourcedFilter(BaseFilter):
    """Where rows came from: typed in, or which data source; and whether it still reports them."""

    source = df.CharFilter(
        label="Source",
        max_length=100,
        widget=forms.Select(choices=source_choices),
    )
    gone = df.ChoiceFilter(method="filter_gone", label="Gone", choices=GONE_CHOICES)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._source_names: dict[str, str] | None = None
        # Read when the form renders (never for the API), once however often it iterates;
        # the list's source column reads the same names (inventory.lists).
        self.form.fields["source"].widget.choices = self._source_choices

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

    def filter_gone(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "present":
            return queryset.filter(gone_at__isnull=True)
        if value == "gone":
            return queryset.filter(gone_at__isnull=False)
        return queryset


class TeamFilter(BaseFilter):
    search_fields = ("name", "description")

    class Meta:
        model = m.Team
        fields: list[str] = []


class AIModelFilter(SourcedFilter):
    search_fields = ("name", "description", "provider", "external_id")
    team = df.ModelChoiceFilter(queryset=m.Team.objects.none())
    owner = df.ModelChoiceFilter(queryset=get_user_model().objects.none())
    lifecycle = df.ChoiceFilter(choices=m.AIModel.Lifecycle.choices)
    kind = df.ChoiceFilter(choices=m.AIModel.Kind.choices)
    risk_tier = df.ChoiceFilter(label="Tier", choices=TIER_CHOICES)
    ownerless = df.BooleanFilter(
        method="filter_ownerless",
        label="No owner",
        widget=forms.Select(choices=(("", "Any"), *BOOL_CHOICES)),
    )

    class Meta:
        model = m.AIModel
        fields = ["team", "owner", "lifecycle", "kind"]

    def filter_ownerless(
        self, queryset: QuerySet, name: str, value: bool | None
    ) -> QuerySet:
        if value is None:
            return queryset
        return queryset.filter(
            querysets.ownerless_q() if value else ~querysets.ownerless_q()
        )


class ModelVersionFilter(SourcedFilter):
    search_fields = ("version", "model__name", "artifact_uri", "digest")
    team = df.ModelChoiceFilter(
        field_name="model__team", queryset=m.Team.objects.none()
    )
    approval = df.ChoiceFilter(choices=m.ModelVersion.Approval.choices)
    model = IdFilter(field_name="model_id", widget=forms.HiddenInput)

    class Meta:
        model = m.ModelVersion
        fields = ["team", "approval"]


class SystemFilter(BaseFilter):
    search_fields = ("name", "description", "business_purpose")
    team = df.ModelChoiceFilter(queryset=m.Team.objects.none())
    owner = df.ModelChoiceFilter(queryset=get_user_model().objects.none())
    kind = df.ChoiceFilter(choices=m.System.Kind.choices)

    class Meta:
        model = m.System
        fields = ["team", "owner", "kind"]


class DeploymentFilter(SourcedFilter):
    search_fields = (
        "name",
        "endpoint",
        "platform_locator",
        "model__name",
        "business_purpose",
    )
    team = df.ModelChoiceFilter(queryset=m.Team.objects.none())
    owner = df.ModelChoiceFilter(queryset=get_user_model().objects.none())
    environment = df.ChoiceFilter(choices=m.Deployment.Environment.choices)
    exposure = df.ChoiceFilter(choices=m.Deployment.Exposure.choices)
    status = df.ChoiceFilter(choices=m.Deployment.Status.choices)
    risk_tier = df.ChoiceFilter(label="Tier", choices=TIER_CHOICES)
    risk = df.ChoiceFilter(
        method="filter_risk",
        label="Risk flag",
        choices=(
            ("external", "Externally exposed"),
            ("write", "Write access"),
            ("decision", "Decision-making"),
            ("drift", "Version drift"),
            ("unregistered", "Runs a version the registry does not have"),
            ("ownerless", "No owner"),
            ("silent", "Silent (no source has seen it lately)"),
        ),
    )
    model = IdFilter(field_name="model_id", widget=forms.HiddenInput)
    system = IdFilter(field_name="system_id", widget=forms.HiddenInput)

    class Meta:
        model = m.Deployment
        fields = ["team", "owner", "environment", "exposure", "status"]

    def filter_risk(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        conditions = {
            "external": lambda: Q(exposure=m.Deployment.Exposure.EXTERNAL),
            "write": lambda: Q(write_access=True),
            "decision": lambda: Q(decision_making=True),
            "drift": querysets.deployment_drift_q,
            "unregistered": querysets.deployment_unregistered_q,
            "ownerless": querysets.ownerless_q,
            "silent": lambda: querysets.deployment_silent_q(selectors.policy_current()),
        }
        if value not in conditions:
            return queryset
        return queryset.filter(conditions[value]())


class IdentityFilter(SourcedFilter):
    search_fields = ("name", "external_id", "vendor", "provider")
    team = df.ModelChoiceFilter(queryset=m.Team.objects.none())
    owner = df.ModelChoiceFilter(queryset=get_user_model().objects.none())
    kind = df.ChoiceFilter(choices=m.NonHumanIdentity.Kind.choices)
    provider = df.CharFilter(lookup_expr="iexact")
    status = df.ChoiceFilter(choices=m.NonHumanIdentity.Status.choices)
    risk = df.ChoiceFilter(
        method="filter_risk",
        label="Risk flag",
        choices=(
            ("ownerless", "No owner"),
            ("unused", "Unused (past the policy's days)"),
            # The older name of "unused", kept so saved links and API clients still work.
            ("stale", "Stale (= unused)"),
            ("unrotated", "Not rotated (past the policy's days)"),
            ("expired", "Past its expiry, still active"),
            ("retired_model", "Belongs or bound to a retired model"),
            ("silent", "Silent (its source has not reported it lately)"),
        ),
    )
    deployment = IdFilter(field_name="deployments", widget=forms.HiddenInput)

    class Meta:
        model = m.NonHumanIdentity
        fields = ["team", "owner", "kind", "provider", "status"]

    def filter_risk(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        conditions = {
            "ownerless": querysets.ownerless_q,
            "unused": lambda: querysets.identity_unused_q(selectors.policy_current()),
            "stale": lambda: querysets.identity_stale_q(selectors.policy_current()),
            "unrotated": lambda: querysets.identity_unrotated_q(
                selectors.policy_current()
            ),
            "expired": querysets.identity_expired_q,
            "retired_model": querysets.identity_bound_to_retired_model_q,
            "silent": lambda: querysets.identity_silent_q(selectors.policy_current()),
        }
        if value not in conditions:
            return queryset
        return queryset.filter(conditions[value]())


# Days a date filter takes: the bounds keep the day's start, in any time zone, a datetime
# the database (and Python) can hold, so a typed-in 0001-01-01 is refused, not a 500.
EARLIEST_DAY = dt.date(1900, 1, 1)
LATEST_DAY = dt.date(9998, 12, 31)


def _start_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=timezone.get_current_timezone())


class DayFilter(df.DateFilter):
    """A calendar day (a date picker), as a range on a timestamp column.

    `bound="from"` keeps rows from the start of the day, `bound="to"` rows up to its end:
    both days are included. A range on the column itself, not `__date`, can use its index.
    """

    def __init__(self, *args, bound: str, **kwargs) -> None:
        kwargs.setdefault("widget", forms.DateInput(attrs={"type": "date"}))
        kwargs.setdefault(
            "validators",
            [MinValueValidator(EARLIEST_DAY), MaxValueValidator(LATEST_DAY)],
        )
        super().__init__(*args, **kwargs)
        self.bound = bound

    def filter(self, qs: QuerySet, value: dt.date | None) -> QuerySet:
        if value is None:
            return qs
        if self.bound == "from":
            return qs.filter(**{f"{self.field_name}__gte": _start_of_day(value)})
        end = _start_of_day(value + dt.timedelta(days=1))
        return qs.filter(**{f"{self.field_name}__lt": end})
