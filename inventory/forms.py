"""Forms for creating and editing the inventory. Explicit fields only (no mass assignment);
every choice list is narrowed to what the user may see."""

from __future__ import annotations

import json

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from inventory import jsonsafe, permissions, selectors
from inventory import models as m
from inventory.widgets import LookupInput, describe_choice, use_fast_select

VERSION_OF_OTHER_MODEL = "This version belongs to another model."
SCOPES_INVALID = "List scopes separated by commas or new lines."
BOUNDS_INVALID = 'Enter a JSON object, e.g. {"max_error_rate": 0.02}.'
DATES_INVERTED = "Expiry must come after issue."
DEPENDENCY_SELF = "A deployment cannot depend on itself."


# The largest id a database column holds: a bigger one is no object's (SQLite raised
# OverflowError on 99999999999999999999999, a 500).
MAX_ID = 2**63 - 1


def reject_huge_ids(field: forms.ModelChoiceField) -> None:
    """Make a choice field answer "not a valid choice" for an id past MAX_ID."""
    clean = field.clean
    multiple = isinstance(field, forms.ModelMultipleChoiceField)

    def checked(value):
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            text = str(item).strip() if item is not None else ""
            if text.lstrip("-").isdigit() and abs(int(text)) > MAX_ID:
                if multiple:
                    raise ValidationError(
                        field.error_messages["invalid_choice"],
                        code="invalid_choice",
                        params={"value": text[:40]},
                    )
                raise ValidationError(
                    field.error_messages["invalid_choice"], code="invalid_choice"
                )
        return clean(value)

    field.clean = checked


class StyledForm(forms.ModelForm):
    """Bootstrap classes, and choices narrowed to the user's view."""

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput):
                widget.attrs.setdefault("class", "form-check-input")
            elif isinstance(widget, forms.Select | forms.SelectMultiple):
                widget.attrs.setdefault("class", "form-select")
            else:
                widget.attrs.setdefault("class", "form-control")
            # Before any queryset is set below: setting it refreshes the current widget's choices.
            use_fast_select(field)
            if isinstance(field, forms.ModelChoiceField):
                reject_huge_ids(field)
        if "team" in self.fields:
            self.fields["team"].queryset = permissions.scope(m.Team.objects.all(), user)
            if not permissions.is_admin(user):
                self.fields["team"].required = True
                self.fields["team"].empty_label = None
        if "owner" in self.fields:
            self._lookup("owner", "user", selectors.person_list(user=user))

    def _lookup(self, name: str, kind: str, queryset, **attrs) -> None:
        """Give a foreign key a type-ahead input instead of a <select> of every row."""
        field = self.fields[name]
        field.queryset = queryset
        field.widget = LookupInput(
            kind, attrs={"class": "form-control", **attrs}, labelled=True
        )
        field.widget.current_label = describe_choice(field, self[name].value())


def _datetime_widget() -> forms.DateTimeInput:
    return forms.DateTimeInput(
        attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"
    )


class TeamForm(StyledForm):
    class Meta:
        model = m.Team
        fields = ["name", "slug", "description", "members"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, user=user, **kwargs)
        self.fields["members"].queryset = (
            get_user_model().objects.filter(is_active=True).order_by("username")
        )
        self.fields["members"].label_from_instance = lambda u: u.get_username()


class AIModelForm(StyledForm):
    class Meta:
        model = m.AIModel
        fields = [
            "name",
            "kind",
            "provider",
            # No lifecycle: only services.aimodel_set_lifecycle moves it (the model's page).
            "team",
            "owner",
            "description",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class ModelVersionForm(StyledForm):
    approved_bounds = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=m.ModelVersion._meta.get_field("approved_bounds").help_text,
    )

    class Meta:
        model = m.ModelVersion
        fields = [
            "model",
            "version",
            "artifact_uri",
            "digest",
            "approved_bounds",
            # No approval: only services.model_version_set_approval moves it (the
            # committee's approval form on the version's page, or the registry's sync).
        ]

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, user=user, **kwargs)
        self._lookup(
            "model", "aimodel", permissions.scope(m.AIModel.objects.all(), user)
        )
        if self.instance.pk:
            self.initial["approved_bounds"] = json.dumps(
                self.instance.approved_bounds or {}, indent=2
            )

    def clean_approved_bounds(self) -> dict:
        raw = (self.cleaned_data.get("approved_bounds") or "").strip()
        if not raw:
            return {}
        try:
            value = jsonsafe.loads(raw)
        except jsonsafe.UnsafeJSON as exc:
            # Not JSON at all: the usual hint; NaN, nesting, NUL and the like: the reason.
            text = str(exc)
            raise ValidationError(
                BOUNDS_INVALID if text == jsonsafe.JSON_INVALID else text
            ) from exc
        if not isinstance(value, dict):
            raise ValidationError(BOUNDS_INVALID)
        return value


class SystemForm(StyledForm):
    class Meta:
        model = m.System
        fields = ["name", "kind", "team", "owner", "description", "business_purpose"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "business_purpose": forms.Textarea(attrs={"rows": 3}),
        }


class DeploymentForm(StyledForm):
    class Meta:
        model = m.Deployment
        fields = [
            "name",
            "model",
            # What the runtime runs: sources set it; on a deployment no source reports
            # (typed in), the owner declares it. No baseline pin and no status here: the
            # committee changes those through services on the deployment's page.
            "observed_version",
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
        ]
        widgets = {"business_purpose": forms.Textarea(attrs={"rows": 3})}
        labels = {"observed_version": "Declared version"}
        help_texts = {
            "observed_version": "The version it runs, as you declare it: no source "
            "reports this deployment."
        }

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, user=user, **kwargs)
        self._lookup(
            "model", "aimodel", permissions.scope(m.AIModel.objects.all(), user)
        )
        versions = permissions.scope(
            m.ModelVersion.objects.select_related("model"), user
        )
        if self.instance.source != m.MANUAL_SOURCE:
            # A source reports this deployment: the runtime's version is its to set.
            del self.fields["observed_version"]
        else:
            # Suggest only the chosen model's versions.
            self._lookup(
                "observed_version",
                "modelversion",
                versions,
                **{"hx-include": "#id_model"},
            )
        self._lookup(
            "system", "system", permissions.scope(m.System.objects.all(), user)
        )

    def clean(self) -> dict:
        data = super().clean()
        model = data.get("model")
        version = data.get("observed_version")
        if model and version and version.model_id != model.pk:
            self.add_error("observed_version", VERSION_OF_OTHER_MODEL)
        return data


class ScopesField(forms.CharField):
    def to_python(self, value):
        text = super().to_python(value) or ""
        scopes = [s.strip() for s in text.replace("\n", ",").split(",") if s.strip()]
        if any(len(s) > 200 for s in scopes):
            raise ValidationError(SCOPES_INVALID)
        return scopes

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value


class IdentityForm(StyledForm):
    scopes = ScopesField(required=False, help_text="Comma-separated.")

    class Meta:
        model = m.NonHumanIdentity
        fields = [
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
        ]
        widgets = {
            "issued_at": _datetime_widget(),
            "rotated_at": _datetime_widget(),
            "last_used_at": _datetime_widget(),
            "expires_at": _datetime_widget(),
        }

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, user=user, **kwargs)
        # Runproof's own tokens are issued on the tokens page, not typed in here.
        self.fields["kind"].choices = [
            c
            for c in self.fields["kind"].choices
            if c[0] != m.NonHumanIdentity.Kind.RUNPROOF_TOKEN
        ]

    def clean(self) -> dict:
        data = super().clean()
        issued, expires = data.get("issued_at"), data.get("expires_at")
        if issued and expires and expires <= issued:
            self.add_error("expires_at", DATES_INVERTED)
        return data


class DependencyForm(StyledForm):
    class Meta:
        model = m.Dependency
        fields = ["upstream", "kind", "description"]

    def __init__(self, *args, user, downstream: m.Deployment, **kwargs) -> None:
        super().__init__(*args, user=user, **kwargs)
        self.downstream = downstream
        self.instance.downstream = downstream
        self._lookup(
            "upstream",
            "deployment",
            permissions.scope(m.Deployment.objects.all(), user),
        )
        self.fields["upstream"].label = "Depends on (upstream deployment)"

    def clean(self) -> dict:
        data = super().clean()
        if data.get("upstream") and data["upstream"].pk == self.downstream.pk:
            self.add_error("upstream", DEPENDENCY_SELF)
        return data


class IdentityBindForm(forms.Form):
    """Bind an identity to one more deployment it can invoke."""

    deployment = forms.ModelChoiceField(
        queryset=m.Deployment.objects.none(), label="Deployment"
    )

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["deployment"]
        field.queryset = permissions.scope(m.Deployment.objects.all(), user)
        field.widget = LookupInput(
            "deployment", attrs={"class": "form-control"}, labelled=True
        )
