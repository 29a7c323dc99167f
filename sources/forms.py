"""Forms for data sources: one form per connector kind, built from its settings schema
(`connector.schema`, see sources.sync.schema).

Forms only collect input; sources.sync.services validates (forms call its `source_check`
in clean(), so errors sit beside their fields) and writes. Secret inputs never render a
value back: a blank secret keeps the stored one, and a "clear" box removes it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from inventory import models as m
from sources import models as sm
from sources.sync import secrets, services
from sources.sync.base import Setting, SourceKind

SECRET_HELP = (
    "Stored encrypted and never shown again. Leave blank to keep the stored value; "
    "enter env:VARIABLE to read it from the server's environment when syncing."
)
SCHEDULE_HELP = "Minutes between scheduled syncs; 0 syncs only on demand."
NO_SCHEDULE_HELP = {
    "push": "This source sends its data; it is never polled.",
    "upload": "This source syncs from uploaded files only, so it has no schedule.",
}

CONFIG_PREFIX, SECRET_PREFIX, CLEAR_PREFIX = "cfg_", "secret_", "clear_"


def _css(field: forms.Field) -> None:
    widget = field.widget
    if isinstance(widget, forms.CheckboxInput):
        widget.attrs.setdefault("class", "form-check-input")
    elif isinstance(widget, forms.Select):
        widget.attrs.setdefault("class", "form-select")
    elif isinstance(widget, forms.ClearableFileInput | forms.FileInput):
        widget.attrs.setdefault("class", "form-control")
    else:
        widget.attrs.setdefault("class", "form-control")


def setting_field(setting: Setting, *, initial: Any) -> forms.Field:
    """A form field for one non-secret setting; the services check its value."""
    common = {
        "label": setting.label,
        "help_text": setting.help,
        "required": setting.required and setting.kind != "bool",
        "initial": initial,
    }
    if setting.kind == "int":
        # The bounds render (the browser stops most slips); the schema checks them, so the
        # form, the API and the command refuse with the same words.
        attrs = {
            key: value
            for key, value in (("min", setting.min_value), ("max", setting.max_value))
            if value is not None
        }
        return forms.IntegerField(widget=forms.NumberInput(attrs=attrs), **common)
    if setting.kind == "bool":
        return forms.BooleanField(**common)
    if setting.kind == "textarea":
        return forms.CharField(
            widget=forms.Textarea(attrs={"rows": 4}),
            max_length=services.MAX_SETTING_CHARS,
            strip=True,
            **common,
        )
    if setting.kind == "choice":
        choices = list(setting.choices)
        if not setting.required:
            choices = [("", "—"), *choices]
        return forms.ChoiceField(choices=choices, **common)
    widget = (
        forms.URLInput(attrs={"inputmode": "url"})
        if setting.kind == "url"
        else forms.TextInput(attrs={"autocomplete": "off"})
    )
    # A plain text field even for URLs: the services accept in-cluster hosts such as
    # http://mlflow:5000, which Django's URLField refuses.
    return forms.CharField(
        widget=widget, max_length=services.MAX_SETTING_CHARS, **common
    )


def connector_info(cls: type[SourceKind]) -> dict[str, Any]:
    """What templates show of a connector. Templates call callables, and a connector
    class is one, so they get a plain dict instead of the class."""
    return {
        "kind": cls.kind,
        "label": str(cls.label),
        "description": cls.description,
        "pull": cls.pull,
        "upload": cls.upload,
        "upload_help": cls.upload_help,
    }


def describe_stored(value: str | None) -> str:
    if not value:
        return "Not set."
    if value.startswith(secrets.ENV_PREFIX):
        return f"Read from the environment variable {value[len(secrets.ENV_PREFIX) :]}."
    return "Set."


class SourceForm(forms.Form):
    """Create or edit a source of one kind. `source` is None when creating."""

    name = forms.CharField(max_length=200)
    enabled = forms.BooleanField(
        required=False,
        initial=True,
        help_text="A disabled source is neither scheduled nor synced on demand.",
    )
    schedule_minutes = forms.IntegerField(
        label="Schedule (minutes)",
        min_value=0,
        max_value=services.MAX_SCHEDULE_MINUTES,
        help_text=SCHEDULE_HELP,
    )
    team = forms.ModelChoiceField(
        queryset=m.Team.objects.order_by("name"),
        required=False,
        empty_label="No team",
        help_text="Team given to new records this source brings in.",
    )

    def __init__(
        self,
        data: Any = None,
        *,
        connector: type[SourceKind],
        source: sm.DataSource | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(data, **kwargs)
        self.connector = connector
        self.connector_info = connector_info(connector)
        self.source = source
        self.stored = services.stored_secrets(source) if source else {}
        config = source.config if source else {}
        if source is not None:
            self.initial.update(
                name=source.name,
                enabled=source.enabled,
                schedule_minutes=source.schedule_minutes,
                team=source.team_id,
            )
        else:
            self.initial.setdefault(
                "schedule_minutes", services.default_schedule(connector)
            )
        if not connector.pull or connector.upload == "required":
            # Never scheduled: keep what is stored (0 for new ones) and say why.
            self.fields["schedule_minutes"].widget = forms.HiddenInput()
            self.schedule_note = NO_SCHEDULE_HELP[
                "upload" if connector.upload == "required" else "push"
            ]
        else:
            self.schedule_note = ""
        self.setting_names: list[str] = []
        self.secret_names: list[str] = []
        for setting in connector.schema.fields:
            if setting.secret:
                self._add_secret(setting)
            else:
                self.setting_names.append(setting.name)
                self.fields[CONFIG_PREFIX + setting.name] = setting_field(
                    setting,
                    initial=config.get(setting.name, setting.default)
                    if source
                    else setting.default,
                )
        for field in self.fields.values():
            _css(field)

    def _add_secret(self, setting: Setting) -> None:
        stored = self.stored.get(setting.name)
        self.secret_names.append(setting.name)
        help_text = " ".join(
            part
            for part in (
                setting.help,
                f"Currently: {describe_stored(stored)}",
                SECRET_HELP,
            )
            if part
        )
        self.fields[SECRET_PREFIX + setting.name] = forms.CharField(
            label=setting.label,
            required=setting.required and not stored,
            strip=False,
            max_length=services.MAX_SETTING_CHARS,
            widget=forms.PasswordInput(
                render_value=False, attrs={"autocomplete": "new-password"}
            ),
            help_text=help_text,
        )
        if stored:
            self.fields[CLEAR_PREFIX + setting.name] = forms.BooleanField(
                label=f"Remove the stored “{setting.label}”",
                required=False,
            )

    # -- what the services get ---------------------------------------------------------
    def config_values(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            name: data.get(CONFIG_PREFIX + name)
            for name in self.setting_names
            if CONFIG_PREFIX + name in data
        }

    def secret_values(self) -> dict[str, str]:
        return {
            name: self.cleaned_data.get(SECRET_PREFIX + name) or ""
            for name in self.secret_names
        }

    def cleared(self) -> list[str]:
        return [
            name
            for name in self.secret_names
            if self.cleaned_data.get(CLEAR_PREFIX + name)
        ]

    def schedule(self) -> int:
        value = self.cleaned_data.get("schedule_minutes")
        if value is None:
            return (
                self.source.schedule_minutes
                if self.source
                else services.default_schedule(self.connector)
            )
        return value

    def clean(self) -> dict[str, Any]:
        # The services check even when some fields already failed, so every problem is
        # reported at once; a field keeps its own error rather than a second one.
        data = super().clean()
        try:
            services.source_check(
                kind=self.connector.kind,
                name=data.get("name") or "",
                config=self.config_values(),
                secrets_given=self.secret_values(),
                clear=self.cleared(),
                schedule_minutes=self.schedule(),
                source=self.source,
            )
        except ValidationError as exc:
            add_service_errors(self, exc, skip_failed=True)
        return data


def add_service_errors(
    form: forms.Form, exc: ValidationError, *, skip_failed: bool = False
) -> None:
    """Put a service's errors beside the fields they name ("config.x" -> cfg_x).

    With `skip_failed`, fields that already have an error keep only theirs.
    """
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for key, messages in exc.message_dict.items():
        field: str | None
        if key == NON_FIELD_ERRORS:
            field = None
        elif key.startswith("config."):
            field = CONFIG_PREFIX + key.split(".", 1)[1]
        elif key.startswith("secrets."):
            field = SECRET_PREFIX + key.split(".", 1)[1]
        else:
            field = key
        if field is not None and field not in form.fields:
            messages = [f"{key}: {msg}" for msg in messages]
            field = None
        if skip_failed and field is not None and field in form.errors:
            continue
        for message in messages:
            form.add_error(field, message)


class SyncForm(forms.Form):
    """Sync now / Dry run, with the file for sources that sync from one."""

    file = forms.FileField(required=False, label="File")
    dry_run = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, connector: type[SourceKind], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connector = connector
        if connector.upload == "none":
            del self.fields["file"]
        else:
            field = self.fields["file"]
            field.required = connector.upload == "required"
            field.help_text = connector.upload_help
            _css(field)

    def clean_file(self) -> Any:
        upload = self.cleaned_data.get("file")
        if upload is not None:
            too_big = services.upload_too_big(upload)
            if too_big:
                raise ValidationError(too_big)
        return upload
