"""The small interfaces every source kind implements, and what flows through them.

A connector *fetches* records from its source (outside any transaction, as a stream, so
memory stays bounded) and *applies* a batch of them as idempotent upserts keyed on
(source, external id) through the `ApplyContext` it is given. Where the source allows it,
it can also *revoke* access (deactivate a key, revoke a token, remove an alias).
A source that only pushes (CI/CD events) is a `PushSource`: its deliveries go through a
`sources.receivers` Receiver (decode -> aggregate -> apply), never through fetch/apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.exceptions import ValidationError

from sources.sync.schema import Schema, Setting, TypedSettings, error_text

if TYPE_CHECKING:
    from django.db.models import Model

    from sources.models import DataSource
    from sources.sync.engine import ApplyContext


class SyncFailure(Exception):
    """The whole run cannot go on; the message is shown to administrators."""


class SourceUnavailable(SyncFailure):
    """The source did not answer (connection refused, timeout, 5xx): retried with backoff."""


class SourceConfigError(SyncFailure):
    """The source's settings are wrong (bad URL, missing secret, refused credentials)."""


class RevokeError(Exception):
    """A revoke the source refused or could not do; the message says why."""


@dataclass(slots=True)
class Record:
    """One thing a source reported. `payload` is the connector's own parsed form."""

    external_id: str
    payload: Any


@dataclass(slots=True)
class Malformed:
    """A record that could not be read. It is recorded on the run and skipped."""

    external_id: str
    reason: str
    excerpt: str = ""


@dataclass(slots=True)
class FetchContext:
    """What fetch() may read: the settings, the decrypted secrets and an uploaded file."""

    source: DataSource
    settings: dict[str, Any]
    secrets: dict[str, str]
    upload_path: str | None = None
    expected: list[int] = field(default_factory=list)
    run_id: int | None = None
    schema: Schema | None = None
    _options: TypedSettings | None = None

    @property
    def options(self) -> TypedSettings:
        """The settings parsed by the kind's schema: typed, defaulted, checked.

        Settings stored before a check existed (or edited into the database) fail the
        run with the schema's own messages, as SourceConfigError.
        """
        if self._options is None:
            schema = self.schema or _kind_schema(self.source.kind)
            try:
                self._options = schema.parse(self.settings, self.secrets)
            except ValidationError as exc:
                raise SourceConfigError(error_text(exc)) from None
        return self._options

    def expect(self, total: int) -> None:
        """Say how many records the source will send, when it knows (for the progress bar)."""
        self.expected[:] = [total]


class SourceKind:
    """What every kind of source declares: its name, settings and the rows it owns.

    Pull connectors (`Connector`) add fetch/apply; a push kind (`PushSource`) names the
    `sources.receivers` Receiver that takes what it sends, and has nothing to fetch.
    """

    kind: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str] = ""
    settings_spec: ClassVar[tuple[Setting, ...]] = ()
    # pull: Runproof fetches from the source (scheduled and "Sync now").
    pull: ClassVar[bool] = True
    # upload: "none" (never), "optional" (the API or a file) or "required" (a file only).
    upload: ClassVar[str] = "none"
    upload_help: ClassVar[str] = ""
    # upload_json: the upload is JSON, read by a parser whose memory grows with nesting;
    # the runner reads it first in a child process under limits (sync/upload_guard.py).
    upload_json: ClassVar[bool] = False
    # Attributes fetch() sets on the connector that apply() or finish() read: when the
    # guard's child process reads an upload, it sends them back to the worker.
    fetch_state: ClassVar[tuple[str, ...]] = ()
    # The inventory models whose rows this kind owns, for marking rows gone.
    owns: ClassVar[tuple[type[Model], ...]] = ()
    # What revoke() can act on, if anything.
    revocable: ClassVar[tuple[type[Model], ...]] = ()
    # Dotted path of the push receiver (sources.receivers) this kind also takes, if any.
    receiver: ClassVar[str] = ""
    # Built from settings_spec and check_settings: what forms, the API, the admin, the
    # command and the connector itself all check and read settings with.
    schema: ClassVar[Schema] = Schema(())

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # A kind that overrides validate_settings wholesale keeps it as its check.
        overridden = (
            cls.validate_settings.__func__ is not SourceKind.validate_settings.__func__
        )  # type: ignore[attr-defined]
        check = cls.validate_settings if overridden else cls.check_settings
        cls.schema = Schema(cls.settings_spec, check=check)

    def __init__(self, source: DataSource) -> None:
        self.source = source

    def revoke(self, obj: Model, ctx: FetchContext) -> str:
        """Withdraw `obj`'s access at the source; return what was done, in words."""
        raise RevokeError(f"{self.label} cannot revoke access.")

    @classmethod
    def validate_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """Check and normalise the given settings by the schema (each `Setting`'s type,
        bounds, choices and validators, then `check_settings`); raise django
        ValidationError keyed by setting name."""
        return cls.schema.validate(settings)

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """What one setting's validators cannot see: settings that depend on each other.

        Gets the given settings already checked one by one; raise ValidationError keyed
        by setting (or secret) name, or return them, normalised if need be."""
        return settings


class Connector(SourceKind):
    """A pull (or file upload) source. Subclasses implement fetch() and apply()."""

    def fetch(self, ctx: FetchContext) -> Iterator[Record | Malformed]:
        raise NotImplementedError

    def apply(self, batch: list[Record], ctx: ApplyContext) -> None:
        raise NotImplementedError

    def finish(self, ctx: ApplyContext) -> None:
        """Runs once after the last batch, in its own transaction (e.g. derived links)."""


class PushSource(SourceKind):
    """A source that only pushes: nothing to fetch, so the runner never starts a run.

    `receiver` names its `sources.receivers.base.Receiver`, which decodes, aggregates and
    applies each delivery.
    """

    pull = False
    upload = "none"


def _kind_schema(kind: str) -> Schema:
    from django.utils.module_loading import import_string

    from sources.connectors import CONNECTORS

    return import_string(CONNECTORS[kind]).schema if kind in CONNECTORS else Schema(())


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def excerpt(value: Any, limit: int = 500) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "…"
