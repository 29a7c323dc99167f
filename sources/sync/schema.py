"""A connector's settings, declared once: the typed schema every caller uses.

Each source kind declares its settings as a tuple of `Setting`s (type, default, bounds,
choices, secret or not, help text, validators) plus, where settings depend on each other,
a `validate_settings` check. `SourceKind.schema` is built from them, and:

- the form (`sources.forms.SourceForm`) renders one field per `Setting`, bounds included;
- `Schema.clean(raw)` checks input for storage, for the services that the form, the API
  serializer, the admin form and `manage.py sources add|set` all call
  (`sources.sync.services.source_check`); errors are keyed "config.<name>" and
  "secrets.<name>", so each caller puts them beside its own field (a 400 or a form error,
  never a 500);
- `Schema.parse(config, secrets)` gives the connector a `TypedSettings` at sync time:
  every setting present, typed and defaulted (`ctx.options.page_size` is an int), so no
  connector reads `source.config` or re-applies defaults itself.

Secrets are declared here too (`secret=True`) but stored apart, encrypted
(`sources.sync.secrets`), never shown back; `parse` only passes them through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

UNKNOWN_SETTING = "Unknown setting."
SETTING_REQUIRED = "This setting is required."
NOT_A_NUMBER = "Enter a whole number."
NOT_A_URL = "Enter a URL starting with http:// or https://."
NOT_A_CHOICE = "Choose one of: {choices}."
NOT_CHOICES = "Unknown: {unknown}. Choose from: {choices}."
NOT_TEXT = "Enter text."
NOT_A_BOOL = "Enter true or false."
TOO_LONG = "At most {limit} characters."
OUT_OF_RANGE = "Enter a whole number from {min} to {max}."
TOO_SMALL = "Enter a whole number of at least {min}."
TOO_LARGE = "Enter a whole number of at most {max}."
MAX_SETTING_CHARS = 10_000
MAX_INT = 2**31

KINDS = ("text", "url", "int", "bool", "textarea", "choice")

# A validator takes the value already coerced to the setting's type and returns it,
# normalised if need be, or raises ValidationError with the text to show.
Validator = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Setting:
    """One configurable setting of a connector."""

    name: str
    label: str
    required: bool = False
    secret: bool = False
    kind: str = "text"  # text | url | int | bool | textarea | choice
    default: Any = None
    help: str = ""
    choices: tuple[tuple[str, str], ...] = ()
    min_value: int | None = None  # int settings: inclusive bounds
    max_value: int | None = None
    # Several values: a list, or text separated by commas; stored as "a,b" (the
    # validators see the list), parsed as a tuple. With choices, each must be one.
    many: bool = False
    validators: tuple[Validator, ...] = ()

    def coerce(self, value: Any) -> Any:
        """The value in its stored type, checked; ValidationError says why not."""
        if self.many:
            items = _items(value)
            if self.choices:
                allowed = [c for c, _ in self.choices]
                unknown = [i for i in items if i not in allowed]
                if unknown:
                    raise ValidationError(
                        NOT_CHOICES.format(
                            unknown=", ".join(unknown), choices=", ".join(allowed)
                        )
                    )
            for validator in self.validators:
                items = validator(items)
            text = ",".join(items)
            if len(text) > MAX_SETTING_CHARS:
                raise ValidationError(TOO_LONG.format(limit=MAX_SETTING_CHARS))
            return text
        value = _coerce(self, value)
        for validator in self.validators:
            value = validator(value)
        return value

    def typed(self, stored: Any) -> Any:
        """A stored (already checked) value as the connector reads it."""
        if self.many:
            return tuple(_items(stored))
        return stored

    def bounds_text(self) -> str:
        if self.min_value is not None and self.max_value is not None:
            return OUT_OF_RANGE.format(min=self.min_value, max=self.max_value)
        if self.min_value is not None:
            return TOO_SMALL.format(min=self.min_value)
        return TOO_LARGE.format(max=self.max_value)


def _items(value: Any) -> list[str]:
    """A list, or comma-separated text, as stripped non-empty strings in order."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        if not all(isinstance(v, str) for v in value):
            raise ValidationError(NOT_TEXT)
        items = value
    elif isinstance(value, str):
        items = value.split(",")
    else:
        raise ValidationError(NOT_TEXT)
    return [v.strip() for v in items if v.strip()]


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def check_url(text: str) -> None:
    """http(s) and a host. Looser than URLValidator on purpose: in-cluster and compose
    hosts such as http://mlflow:5000 have no dot."""
    parts = urlsplit(text)
    if (
        parts.scheme not in {"http", "https"}
        or not parts.hostname
        or any(c.isspace() for c in text)
    ):
        raise ValidationError(NOT_A_URL)
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise ValidationError(NOT_A_URL) from None


def _coerce(setting: Setting, value: Any) -> Any:
    if setting.kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise ValidationError(NOT_A_BOOL)
    if setting.kind == "int":
        if isinstance(value, bool):
            raise ValidationError(NOT_A_NUMBER)
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValidationError(NOT_A_NUMBER) from None
        if abs(number) > MAX_INT:
            raise ValidationError(NOT_A_NUMBER)
        low, high = setting.min_value, setting.max_value
        if (low is not None and number < low) or (high is not None and number > high):
            raise ValidationError(setting.bounds_text())
        return number
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValidationError(NOT_TEXT)
    text = str(value).strip()
    if len(text) > MAX_SETTING_CHARS:
        raise ValidationError(TOO_LONG.format(limit=MAX_SETTING_CHARS))
    if setting.kind == "url":
        check_url(text)
    if setting.kind == "choice":
        allowed = [c for c, _ in setting.choices]
        if text not in allowed:
            raise ValidationError(NOT_A_CHOICE.format(choices=", ".join(allowed)))
    return text


class TypedSettings:
    """One source's settings as its connector reads them: every one present, typed and
    defaulted, by attribute (`options.page_size`) or key; secrets in `.secrets`."""

    __slots__ = ("_values", "secrets")

    def __init__(self, values: Mapping[str, Any], secrets: Mapping[str, str]) -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "secrets", dict(secrets))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("TypedSettings are read-only.")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def __repr__(self) -> str:  # never the secrets' values
        return f"TypedSettings({self._values!r}, secrets={sorted(self.secrets)!r})"


class Schema:
    """The settings of one source kind: what `clean` checks and `parse` reads."""

    def __init__(
        self,
        fields: Iterable[Setting],
        *,
        check: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
    ) -> None:
        self.fields = tuple(fields)
        self.settings = {s.name: s for s in self.fields if not s.secret}
        self.secrets = {s.name: s for s in self.fields if s.secret}
        self.check = check

    def _fields(
        self, raw: Mapping[str, Any], *, prefix: str, strict: bool
    ) -> dict[str, Any]:
        """Each given setting coerced; errors keyed `prefix + name`. `strict` refuses
        unknown names and drops blank values (for storage)."""
        errors: dict[str, list[str]] = {}
        out: dict[str, Any] = {}
        for name, value in raw.items():
            setting = self.settings.get(name)
            if setting is None:
                if strict:
                    errors[f"{prefix}{name}"] = [UNKNOWN_SETTING]
                else:
                    out[name] = value
                continue
            if blank(value) and setting.kind != "bool":
                if not strict:
                    out[name] = value
                continue
            try:
                out[name] = setting.coerce(value)
            except ValidationError as exc:
                errors[f"{prefix}{name}"] = exc.messages
        if strict:
            for name, setting in self.settings.items():
                key = f"{prefix}{name}"
                if setting.required and name not in out and key not in errors:
                    errors[key] = [SETTING_REQUIRED]
        if errors:
            raise ValidationError(errors)
        return out

    def validate(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The given settings checked and normalised, errors keyed by bare name; what
        `SourceKind.validate_settings` does unless a kind overrides it."""
        out = self._fields(settings, prefix="", strict=False)
        if self.check is None:
            return out
        checked = self.check(dict(out))
        return checked if checked is not None else out

    def clean(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Settings to store: each given one checked, then the kind's own check.

        Errors are keyed "config.<setting>" ("secrets.<name>" or the non-field key for the
        check's errors on secrets or on the whole), so a form or the API can put each
        beside its field. Blank optional settings are left out; their defaults apply
        when the sync runs.
        """
        out = self._fields(raw, prefix="config.", strict=True)
        if self.check is None:
            return out
        try:
            checked = self.check(dict(out))
        except ValidationError as exc:
            raise ValidationError(self._prefixed(exc)) from None
        return checked if checked is not None else out

    def parse(
        self, config: Mapping[str, Any], secrets: Mapping[str, str] | None = None
    ) -> TypedSettings:
        """Stored settings as the connector reads them; ValidationError as `clean`'s.

        Unknown stored keys (a setting a newer version dropped) are ignored rather than
        failing a sync; a missing required setting is reported.
        """
        known = {k: v for k, v in config.items() if k in self.settings}
        return TypedSettings(self.typed(self.clean(known)), secrets or {})

    def typed(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Checked values with every other setting's default, in the types connectors
        read (a `many` setting as a tuple)."""
        out = {}
        for name, setting in self.settings.items():
            value = values.get(name)
            if name not in values or (blank(value) and setting.kind != "bool"):
                value = self._default(setting)
            out[name] = setting.typed(value)
        return out

    @staticmethod
    def _default(setting: Setting) -> Any:
        if setting.default is None:
            return False if setting.kind == "bool" else None
        if blank(setting.default) and setting.kind != "bool":
            return setting.default
        return setting.coerce(setting.default)

    def _prefixed(self, exc: ValidationError) -> dict[str, list[str]]:
        if not hasattr(exc, "error_dict"):
            return {NON_FIELD_ERRORS: exc.messages}
        out: dict[str, list[str]] = {}
        for key, errs in exc.message_dict.items():
            if key in self.settings:
                name = f"config.{key}"
            elif key in self.secrets:
                name = f"secrets.{key}"
            else:
                name = NON_FIELD_ERRORS
            out.setdefault(name, []).extend(errs)
        return out


def error_text(exc: ValidationError) -> str:
    """A ValidationError from `clean`/`parse` as one line for a run's error."""
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    return "; ".join(
        f"{key.split('.', 1)[-1]}: {' '.join(msgs)}"
        if key != NON_FIELD_ERRORS
        else " ".join(msgs)
        for key, msgs in exc.message_dict.items()
    )
