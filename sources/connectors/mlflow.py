"""MLflow Model Registry: registered models and their versions, read over plain REST.

What the registry says is approved becomes the drift baseline: the version carrying the
approved alias (`champion` by default) or the approval tag `approval_status=approved`.
After a sync, that version becomes its model's baseline version, so a deployment of the
model serving another version shows as drift (unless the committee pinned another).
Approvals and retirements the registry reports go through inventory.services, each its
own audit event with the source as actor; a move the transition table forbids is a
skipped record.

Shapes and quirks of the REST API (mlflow 3.17, checked against a real server; see the
research note, section 1):

- `registered-models/search` pages with `max_results` (at most 1000) and an opaque
  `page_token`; the last page has no `next_page_token`. It is the only list that carries
  the aliases, as `[{alias, version}]`.
- `model-versions/search` returns no aliases, so versions are joined with their model's.
  Versions are fetched for up to `VERSION_NAMES_PER_QUERY` models at a time with
  `name IN (...)`: one query instead of one per model is fifteen times faster on a real
  server. MLflow reads an IN list with `ast.literal_eval`, so Python's `repr` quotes any
  name exactly, quotes and backslashes included (an `=` value cannot carry a `'`).
- `version` is a string, timestamps are epoch milliseconds, tags are `[{key, value}]`
  lists, and empty fields are left out.

The app needs no MLflow client library: `requests` is enough.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db.models import Q

from audit.actors import Actor
from inventory import models as m
from inventory import services
from sources.sync.base import (
    Connector,
    FetchContext,
    Malformed,
    Record,
    RevokeError,
    Setting,
    SourceConfigError,
    SourceUnavailable,
    SyncFailure,
    chunked,
    excerpt,
)
from sources.sync.engine import ApplyContext
from sources.sync.schema import TypedSettings

API = "/api/2.0/mlflow"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 500
# Models whose versions one search asks for. 4000 characters of filter stay under 12 KB
# of URL even when every character is percent-escaped: below the 16 KB request-line limit
# of h11, which MLflow's uvicorn server uses.
VERSION_NAMES_PER_QUERY = 100
MAX_VERSION_FILTER_CHARS = 4000
VERSION_ORDER = ("name ASC", "version_number ASC")
# How many model ids finish() handles per query.
FINISH_CHUNK = 500
FALSY = frozenset({"", "0", "false", "no", "n", "off", "none", "null"})
WITHDRAWN_VALUES = frozenset({"rejected", "revoked"})
REMOVE_ALIAS = "remove_alias"
SET_TAG = "set_tag"

REFUSED = (
    "MLflow refused the credentials (HTTP {status}). Check the token, or the user name "
    "and password, and that this user may read the model registry."
)
BAD_HOST = (
    "MLflow refused the request's Host header (HTTP 403 'Invalid Host header'). Start "
    "mlflow server with --allowed-hosts listing the host name in the tracking URI "
    "({host})."
)
NOT_MLFLOW = (
    "{url} answered HTTP 404 for the registry API: is the tracking URI the MLflow "
    "server's base URL (without /api/…)?"
)
NOT_JSON = "{url} did not answer with JSON (HTTP {status}): is it an MLflow server?"
REJECTED = "MLflow rejected the request (HTTP {status}): {message}"
UNREACHABLE = "MLflow at {url} did not answer: {error}."
SERVER_ERROR = "MLflow at {url} answered HTTP {status}; trying again later."
REPEATED_TOKEN = "MLflow returned the same page token twice; stopping to avoid a loop."
NO_URI = "The source has no tracking URI."
BAD_SETTING = "Setting {name!r}: {problem}"
PAGE_SIZE_RANGE = f"Between 1 and {MAX_PAGE_SIZE}."
TAG_SHAPE = "Write key=value, e.g. approval_status=revoked."
URL_CREDENTIALS = "Put the user name and password in the secrets, not in the URL."
CHOOSE_AUTH = "Enter a token, or a user name and password, not both."
PASSWORD_PAIR = "Enter both the user name and the password, or neither."
NOT_A_VERSION = "Only model versions can be revoked at MLflow."
NOT_OURS = "{version} did not come from this source ({source})."
NO_ALIAS = (
    "{name} version {version} does not carry the alias '{alias}' in MLflow; there is "
    "no alias to remove. If the approval comes from a tag, revoke with the set_tag action."
)
VERSION_GONE = "MLflow has no version {version} of {name} any more: {message}"
REVOKE_FAILED = "MLflow did not revoke {name} version {version}: {error}"
ALIAS_REMOVED = "Removed the alias '{alias}' from {name} version {version} in MLflow."
TAG_SET = "Set the tag {key}={value} on {name} version {version} in MLflow."


class MalformedItem(ValueError):
    """A model or version that cannot be read; the message says what is wrong."""


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Rules:
    """The settings that decide how registry data maps to the inventory."""

    approved_alias: str = "champion"
    approval_tag: str = "approval_status"
    deprecation_tag: str = "deprecated"
    retired_tag: tuple[str, str] = ("lifecycle", "retired")
    revoke_action: str = REMOVE_ALIAS
    revoke_tag: tuple[str, str] = ("approval_status", "revoked")


def _key_value(text: str, default_value: str | None = None) -> tuple[str, str]:
    key, sep, value = str(text).partition("=")
    key, value = key.strip(), value.strip()
    if not sep and default_value is not None:
        value = default_value
    if not key or not value:
        raise ValueError(TAG_SHAPE)
    return key, value


def _text(config: dict[str, Any], name: str, default: str) -> str:
    value = config.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    if not isinstance(value, str):
        raise ValueError("enter text.")
    return value.strip()


def _tracking_uri(uri: str) -> str:
    """No credentials in the URL (they belong in the secrets); no trailing slash."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        raise ValidationError(URL_CREDENTIALS)
    return uri.rstrip("/")


def _tag_setting(text: str, default_value: str | None = None) -> str:
    try:
        _key_value(text, default_value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
    return text


def rules_from(config: Mapping[str, Any]) -> Rules:
    """Rules from a source's settings, with defaults; ValueError names a bad one."""
    try:
        retired = _key_value(_text(config, "retired_tag", "lifecycle"), "retired")
    except ValueError as exc:
        raise ValueError(BAD_SETTING.format(name="retired_tag", problem=exc)) from None
    try:
        revoke_tag = _key_value(_text(config, "revoke_tag", "approval_status=revoked"))
    except ValueError as exc:
        raise ValueError(BAD_SETTING.format(name="revoke_tag", problem=exc)) from None
    action = _text(config, "revoke_action", REMOVE_ALIAS)
    if action not in (REMOVE_ALIAS, SET_TAG):
        raise ValueError(
            BAD_SETTING.format(
                name="revoke_action", problem=f"choose {REMOVE_ALIAS} or {SET_TAG}."
            )
        )
    return Rules(
        approved_alias=_text(config, "approved_alias", "champion"),
        approval_tag=_text(config, "approval_tag", "approval_status"),
        deprecation_tag=_text(config, "deprecation_tag", "deprecated"),
        retired_tag=retired,
        revoke_action=action,
        revoke_tag=revoke_tag,
    )


def page_size_from(config: dict[str, Any]) -> int:
    """A page size from a plain dict (recordings, tests); syncs read ctx.options."""
    value = config.get("page_size", DEFAULT_PAGE_SIZE)
    if value in (None, ""):
        return DEFAULT_PAGE_SIZE
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(
            BAD_SETTING.format(name="page_size", problem=PAGE_SIZE_RANGE)
        ) from None
    if isinstance(value, bool) or not 1 <= number <= MAX_PAGE_SIZE:
        raise ValueError(BAD_SETTING.format(name="page_size", problem=PAGE_SIZE_RANGE))
    return number


# ---------------------------------------------------------------------------
# Parsing: registry JSON -> inventory fields (pure functions, unit-tested on recordings)
# ---------------------------------------------------------------------------
@dataclass(slots=True)
class ParsedModel:
    name: str
    fields: dict[str, Any]
    retired: bool
    # version -> its aliases, from the model's [{alias, version}] list
    aliases: dict[str, list[str]] = field(default_factory=dict)


def tag_dict(raw: Any) -> dict[str, str]:
    """MLflow tags as a dict: the REST form is [{key, value}], the client's form a dict."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        items = raw.items()
    elif isinstance(raw, list):
        items = []
        for tag in raw:
            if not isinstance(tag, dict) or not isinstance(tag.get("key"), str):
                raise MalformedItem(f"A tag is not a {{key, value}} pair: {tag!r:.80}")
            items.append((tag["key"], tag.get("value")))
    else:
        raise MalformedItem(f"Tags are neither a list nor an object: {raw!r:.80}")
    out = {}
    for key, value in items:
        if not isinstance(key, str):
            raise MalformedItem(f"A tag key is not text: {key!r:.80}")
        if value is not None and not isinstance(value, str | int | float | bool):
            raise MalformedItem(f"Tag {key!r} has a value that is not text.")
        out[key] = "" if value is None else str(value)
    return out


def version_text(raw: Any) -> str:
    """A version number as text; MLflow sends a string, older clients an integer."""
    if isinstance(raw, bool) or raw is None:
        raise MalformedItem("The version has no version number.")
    if isinstance(raw, int):
        return str(raw)
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    raise MalformedItem(f"The version number is not a number or text: {raw!r:.80}")


def from_millis(raw: Any) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        millis = int(raw)
        return datetime.fromtimestamp(millis / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise MalformedItem(
            f"The timestamp is not epoch milliseconds: {raw!r:.80}"
        ) from None


def _optional_text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedItem(f"{key} is not text: {value!r:.80}")
    return value


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in FALSY


def parse_model(raw: Any, rules: Rules) -> ParsedModel:
    """A registered model from `registered-models/search`."""
    if not isinstance(raw, dict):
        raise MalformedItem("The registered model is not a JSON object.")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise MalformedItem("The registered model has no name.")
    tags = tag_dict(raw.get("tags"))
    key, value = rules.retired_tag
    retired = tags.get(key, "").strip().lower() == value.lower()
    aliases: dict[str, list[str]] = {}
    raw_aliases = raw.get("aliases") or []
    if not isinstance(raw_aliases, list):
        raise MalformedItem("The model's aliases are not a list.")
    for item in raw_aliases:
        if not isinstance(item, dict) or not isinstance(item.get("alias"), str):
            raise MalformedItem(
                f"An alias is not an {{alias, version}} pair: {item!r:.80}"
            )
        aliases.setdefault(version_text(item.get("version")), []).append(item["alias"])
    return ParsedModel(
        name=name,
        fields={
            "name": name,
            "description": _optional_text(raw, "description"),
            "provider": tags.get("provider") or "internal",
            "lifecycle": (
                m.AIModel.Lifecycle.RETIRED if retired else m.AIModel.Lifecycle.ACTIVE
            ),
        },
        retired=retired,
        aliases={v: sorted(a) for v, a in aliases.items()},
    )


def approval_for(
    *, aliases: list[str], tags: dict[str, str], stage: str, retired: bool, rules: Rules
) -> str:
    """What the registry says of a version, strongest statement first.

    A retired model retires all its versions; an archived stage or a deprecation tag
    deprecates one; an explicit rejection (or the revoke tag Runproof sets) outranks an
    approval, so revoking with a tag works even while a stale alias still points at the
    version; then the approved alias or approval tag approves it.
    """
    approval = tags.get(rules.approval_tag, "").strip().lower()
    if retired:
        return m.ModelVersion.Approval.RETIRED
    if stage.lower() == "archived" or _truthy(tags.get(rules.deprecation_tag)):
        return m.ModelVersion.Approval.DEPRECATED
    revoke_key, revoke_value = rules.revoke_tag
    if approval in WITHDRAWN_VALUES or tags.get(revoke_key) == revoke_value:
        return m.ModelVersion.Approval.REJECTED
    if rules.approved_alias in aliases or approval == "approved":
        return m.ModelVersion.Approval.APPROVED
    return m.ModelVersion.Approval.PENDING


def parse_version(
    raw: Any, model: ParsedModel, rules: Rules
) -> tuple[str, dict[str, Any]]:
    """(external id, ModelVersion fields) of one version from `model-versions/search`.

    `approved_by` is never set: it names a Runproof user, which MLflow does not know.
    """
    if not isinstance(raw, dict):
        raise MalformedItem("The model version is not a JSON object.")
    version = version_text(raw.get("version"))
    tags = tag_dict(raw.get("tags"))
    stage = _optional_text(raw, "current_stage")
    status = _optional_text(raw, "status")
    aliases = sorted(
        set(model.aliases.get(version, []))
        | {a for a in raw.get("aliases") or [] if isinstance(a, str)}
    )
    approval = approval_for(
        aliases=aliases, tags=tags, stage=stage, retired=model.retired, rules=rules
    )
    updated = from_millis(raw.get("last_updated_timestamp"))
    registry_status = status
    if stage and stage != "None":
        registry_status = f"{status} / {stage}" if status else stage
    return (
        f"{model.name}/{version}",
        {
            "version": version,
            "artifact_uri": _optional_text(raw, "source"),
            "run_id": _optional_text(raw, "run_id"),
            "registry_status": registry_status,
            "aliases": aliases,
            "tags": tags,
            "approval": approval,
            "approved_at": (
                updated if approval == m.ModelVersion.Approval.APPROVED else None
            ),
        },
    )


def version_filter(names: Iterable[str]) -> str:
    """`name IN (...)`, each name quoted by repr: MLflow parses the list with literal_eval."""
    return "name IN (" + ", ".join(repr(n) for n in names) + ")"


def name_groups(names: Iterable[str]) -> Iterator[list[str]]:
    """Names in groups small enough for one version search each."""
    group: list[str] = []
    size = 0
    for name in names:
        cost = len(repr(name)) + 2
        if group and (
            len(group) >= VERSION_NAMES_PER_QUERY
            or size + cost > MAX_VERSION_FILTER_CHARS
        ):
            yield group
            group, size = [], 0
        group.append(name)
        size += cost
    if group:
        yield group


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------
class Api:
    """A `requests` session for one MLflow server, mapping failures to sync errors."""

    def __init__(self, base_url: str, secrets: dict[str, str]) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Accept"] = "application/json"
        token = secrets.get("token")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif secrets.get("username") or secrets.get("password"):
            self.session.auth = (
                secrets.get("username", ""),
                secrets.get("password", ""),
            )
        self.timeout = django_settings.SYNC_HTTP_TIMEOUT

    def close(self) -> None:
        self.session.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        url = f"{self.base_url}{API}/{path}"
        try:
            response = self.session.request(
                method, url, params=params, json=body, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise SourceUnavailable(
                UNREACHABLE.format(url=self.base_url, error=type(exc).__name__)
            ) from None
        return self._read(response)

    def _read(self, response: requests.Response) -> dict[str, Any]:
        status = response.status_code
        if status >= 500 or status == 429:
            raise SourceUnavailable(
                SERVER_ERROR.format(url=self.base_url, status=status)
            )
        if status == 403 and "Invalid Host header" in response.text[:500]:
            raise SourceConfigError(
                BAD_HOST.format(host=urlsplit(self.base_url).netloc)
            )
        if status in (401, 403):
            raise SourceConfigError(REFUSED.format(status=status))
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            if status == 404:
                raise SourceConfigError(NOT_MLFLOW.format(url=self.base_url))
            raise SourceConfigError(NOT_JSON.format(url=self.base_url, status=status))
        if status >= 400:
            raise MlflowError(status, data)
        return data


class MlflowError(SourceConfigError):
    """MLflow answered with an error document: {error_code, message}."""

    def __init__(self, status: int, data: dict[str, Any]) -> None:
        self.status = status
        self.code = str(data.get("error_code") or "")
        self.message = str(data.get("message") or data)[:500]
        super().__init__(REJECTED.format(status=status, message=self.message))


# ---------------------------------------------------------------------------
# The connector
# ---------------------------------------------------------------------------
class MLflowConnector(Connector):
    kind = "mlflow"
    label = "MLflow Model Registry"
    description = (
        "Registered models and versions with their aliases, tags and stages. The approved "
        "alias or tag sets the version deployments should run; a webhook can trigger syncs."
    )
    pull = True
    upload = "none"
    owns = (m.AIModel, m.ModelVersion)
    revocable = (m.ModelVersion,)
    settings_spec = (
        Setting(
            "tracking_uri",
            "Tracking URI",
            required=True,
            kind="url",
            help="The MLflow server's base URL, e.g. https://mlflow.internal:5000.",
            validators=(_tracking_uri,),
        ),
        Setting(
            "approved_alias",
            "Approved alias",
            default="champion",
            help="The alias that marks the approved version of a model.",
        ),
        Setting(
            "approval_tag",
            "Approval tag",
            default="approval_status",
            help="A version tag whose value 'approved' approves it and 'rejected' rejects it.",
        ),
        Setting(
            "deprecation_tag",
            "Deprecation tag",
            default="deprecated",
            help="A version tag that deprecates it when true. The stage Archived does too.",
        ),
        Setting(
            "retired_tag",
            "Retired model tag",
            default="lifecycle=retired",
            help="A registered-model tag (key=value, or a key meaning key=retired) that retires the model.",
            validators=(partial(_tag_setting, default_value="retired"),),
        ),
        Setting(
            "name_filter",
            "Model filter",
            help="An MLflow filter string to sync only some models, e.g. name LIKE 'fraud%'.",
        ),
        Setting(
            "page_size",
            "Page size",
            kind="int",
            default=DEFAULT_PAGE_SIZE,
            min_value=1,
            max_value=MAX_PAGE_SIZE,
            help=f"Models per request (1 to {MAX_PAGE_SIZE}).",
        ),
        Setting(
            "revoke_action",
            "Revoke by",
            kind="choice",
            default=REMOVE_ALIAS,
            choices=(
                (REMOVE_ALIAS, "Removing the approved alias"),
                (SET_TAG, "Setting the revoke tag"),
            ),
        ),
        Setting(
            "revoke_tag",
            "Revoke tag",
            default="approval_status=revoked",
            help="The key=value tag set on a version when revoking by tag.",
            validators=(_tag_setting,),
        ),
        Setting(
            "token", "Bearer token", secret=True, help="Or a user name and password."
        ),
        Setting("username", "User name (basic auth)", secret=True),
        Setting("password", "Password (basic auth)", secret=True),
        Setting(
            "webhook_secret",
            "Webhook secret",
            secret=True,
            help="The secret given to MLflow's create_webhook; signed webhooks to "
            "/hooks/mlflow/<source id>/ then trigger a sync.",
        ),
    )

    # -- fetching ----------------------------------------------------------------------
    def _setup(self, ctx: FetchContext) -> tuple[Api, Rules, int]:
        options = ctx.options  # checked by the schema: SourceConfigError if bad
        uri = options.tracking_uri
        if not uri:
            raise SourceConfigError(NO_URI)
        try:
            rules = rules_from(options)
        except ValueError as exc:
            raise SourceConfigError(str(exc)) from None
        page_size = options.page_size
        token = ctx.secrets.get("token")
        if token and (ctx.secrets.get("username") or ctx.secrets.get("password")):
            raise SourceConfigError(CHOOSE_AUTH)
        if bool(ctx.secrets.get("username")) != bool(ctx.secrets.get("password")):
            raise SourceConfigError(PASSWORD_PAIR)
        return Api(uri.strip(), ctx.secrets), rules, page_size

    def fetch(self, ctx: FetchContext) -> Iterator[Record | Malformed]:
        api, rules, page_size = self._setup(ctx)
        try:
            for page in self._model_pages(api, ctx.options, page_size):
                yield from self._page_records(api, page, rules, page_size)
        finally:
            api.close()

    def _model_pages(
        self, api: Api, options: TypedSettings, page_size: int
    ) -> Iterator[list[Any]]:
        params: dict[str, Any] = {"max_results": page_size}
        name_filter = options.name_filter or ""
        if name_filter:
            params["filter"] = name_filter
        seen_tokens: set[str] = set()
        while True:
            data = api.call("GET", "registered-models/search", params=params)
            models = data.get("registered_models") or []
            if not isinstance(models, list):
                raise SourceConfigError(NOT_JSON.format(url=api.base_url, status=200))
            yield models
            token = data.get("next_page_token")
            if not token:
                return
            if token in seen_tokens:
                raise SourceUnavailable(REPEATED_TOKEN)
            seen_tokens.add(token)
            params["page_token"] = token

    def _page_records(
        self, api: Api, page: list[Any], rules: Rules, page_size: int
    ) -> Iterator[Record | Malformed]:
        parsed: dict[str, ParsedModel] = {}
        for raw in page:
            try:
                model = parse_model(raw, rules)
            except MalformedItem as exc:
                name = raw.get("name") if isinstance(raw, dict) else None
                yield Malformed(
                    name if isinstance(name, str) else "", str(exc), excerpt(raw)
                )
                continue
            parsed[model.name] = model
        for names in name_groups(parsed):
            yield from self._group_records(api, names, parsed, rules, page_size)

    def _group_records(
        self,
        api: Api,
        names: list[str],
        parsed: dict[str, ParsedModel],
        rules: Rules,
        page_size: int,
    ) -> Iterator[Record | Malformed]:
        """One Record per model, streamed: versions arrive ordered by name, so a model's
        record is complete when the next model's versions start."""
        wanted = set(names)
        done: set[str] = set()
        current: str | None = None
        versions: list[Any] = []
        for raw in self._versions(api, names, page_size):
            if not isinstance(raw, dict):
                yield Malformed(
                    "", "A model version is not a JSON object.", excerpt(raw)
                )
                continue
            name = raw.get("name")
            if name not in wanted:
                continue  # a name a case-insensitive collation matched: not ours
            if name != current:
                if current is not None:
                    yield self._record(parsed[current], versions, rules)
                    done.add(current)
                current, versions = name, []
            versions.append(raw)
        if current is not None:
            yield self._record(parsed[current], versions, rules)
            done.add(current)
        for name in names:
            if name not in done:  # a model without versions
                yield self._record(parsed[name], [], rules)

    def _versions(self, api: Api, names: list[str], page_size: int) -> Iterator[Any]:
        params: dict[str, Any] = {
            "filter": version_filter(names),
            "max_results": page_size,
            "order_by": list(VERSION_ORDER),
        }
        seen_tokens: set[str] = set()
        while True:
            data = api.call("GET", "model-versions/search", params=params)
            versions = data.get("model_versions") or []
            if not isinstance(versions, list):
                raise SourceConfigError(NOT_JSON.format(url=api.base_url, status=200))
            yield from versions
            token = data.get("next_page_token")
            if not token:
                return
            if token in seen_tokens:
                raise SourceUnavailable(REPEATED_TOKEN)
            seen_tokens.add(token)
            params["page_token"] = token

    def _record(
        self, model: ParsedModel, raw_versions: list[Any], rules: Rules
    ) -> Record:
        versions: list[tuple[str, dict[str, Any]]] = []
        skipped: list[tuple[str, str, str]] = []
        for raw in raw_versions:
            try:
                versions.append(parse_version(raw, model, rules))
            except MalformedItem as exc:
                number = raw.get("version") if isinstance(raw, dict) else None
                ext = (
                    f"{model.name}/{number}" if number not in (None, "") else model.name
                )
                skipped.append((ext, str(exc), excerpt(raw)))
        return Record(
            model.name,
            {"model": model.fields, "versions": versions, "skipped": skipped},
        )

    # -- applying ----------------------------------------------------------------------
    def apply(self, batch: list[Record], ctx: ApplyContext) -> None:
        """Upsert models and versions; their governed state goes through inventory.services.

        A model's lifecycle and a version's approval are the registry's to report but the
        services' to change: each reported move is checked against the transition table
        and audited with this source as the actor, one event per move; a move the table
        forbids keeps the stored state and is recorded as a skipped record with its reason.
        """
        actor = Actor.source(ctx.label)
        stored_models = dict(
            m.AIModel.objects.filter(
                source=ctx.label, external_id__in=[r.external_id for r in batch]
            ).values_list("external_id", "lifecycle")
        )
        retiring: list[str] = []
        model_rows: list[tuple[str, dict[str, Any]]] = []
        for record in batch:
            fields = dict(record.payload["model"])
            current = stored_models.get(record.external_id)
            if current is not None and fields["lifecycle"] != current:
                if fields["lifecycle"] == m.AIModel.Lifecycle.RETIRED:
                    retiring.append(record.external_id)
                elif current == m.AIModel.Lifecycle.RETIRED:
                    ctx.error(
                        record.external_id,
                        services.REGISTRY_LIFECYCLE_REFUSED.format(
                            name=record.external_id,
                            current=m.AIModel.Lifecycle.RETIRED.label,
                            target=m.AIModel.Lifecycle(fields["lifecycle"]).label,
                        ),
                    )
                # The registry only says "retired" or not: a committee's development or
                # deprecated stands, and the move to retired is the service's (below).
                fields["lifecycle"] = current
            model_rows.append((record.external_id, fields))
        model_ids = ctx.upsert(m.AIModel, model_rows)
        # One batched call: the transition table for each model, one event per move.
        refused = services.aimodels_set_lifecycle(
            actor=actor,
            model_ids=[model_ids[ext] for ext in retiring if ext in model_ids],
            lifecycle=m.AIModel.Lifecycle.RETIRED,
        )
        for ext in retiring:
            if model_ids.get(ext) in refused:
                ctx.error(ext, refused[model_ids[ext]])

        rows: list[tuple[str, dict[str, Any]]] = []
        kept: list[str] = []
        for record in batch:
            model_id = model_ids.get(record.external_id)
            if model_id is None:
                continue  # the model row was refused and recorded; its versions go with it
            for ext, fields in record.payload["versions"]:
                rows.append((ext, {**fields, "model_id": model_id}))
            for ext, reason, raw in record.payload["skipped"]:
                ctx.error(ext, reason, raw)
                kept.append(ext)
        rows, new = self._approvals_through_services(rows, ctx, actor)
        version_ids = ctx.upsert(m.ModelVersion, rows)
        born = [
            services.ReportedApproval(
                version_ids[ext],
                fields["approval"],
                approved_at=fields.get("approved_at"),
                created=True,
            )
            for ext, fields in rows
            if ext in new
            and ext in version_ids
            and fields["approval"] != m.ModelVersion.Approval.PENDING
        ]
        # New rows carry the registry's approval from birth: the move pending -> it,
        # audited like any other (pending -> anything is allowed, so none is refused).
        services.model_versions_registry_report(actor=actor, reports=born)
        if kept:
            # A version that could not be read this time keeps its last known state
            # instead of being marked gone.
            ctx.mark_seen(
                m.ModelVersion,
                m.ModelVersion.objects.filter(
                    source=ctx.label, external_id__in=kept
                ).values_list("pk", flat=True),
            )
        team_id = ctx.team_id()
        if team_id and model_ids:
            m.AIModel.objects.filter(
                pk__in=model_ids.values(),
                team__isnull=True,
                created_at__gte=ctx.started_at,
            ).update(team_id=team_id)

    def _approvals_through_services(
        self,
        rows: list[tuple[str, dict[str, Any]]],
        ctx: ApplyContext,
        actor: Actor,
    ) -> tuple[list[tuple[str, dict[str, Any]]], set[str]]:
        """Move stored versions' approvals through the service before the upsert; rows
        whose move was refused keep the stored approval (and are recorded as skipped).
        Returns the rows to upsert and the external ids of versions not stored yet."""
        stored = {
            ext: (pk, approval, approved_at)
            for ext, pk, approval, approved_at in m.ModelVersion.objects.filter(
                source=ctx.label, external_id__in=[ext for ext, _ in rows]
            ).values_list("external_id", "pk", "approval", "approved_at")
        }
        new = {ext for ext, _ in rows if ext not in stored}
        reports = [
            services.ReportedApproval(
                stored[ext][0], fields["approval"], approved_at=fields["approved_at"]
            )
            for ext, fields in rows
            if ext in stored and stored[ext][1] != fields["approval"]
        ]
        refused = services.model_versions_registry_report(actor=actor, reports=reports)
        if not refused:
            return rows, new
        result = []
        for ext, fields in rows:
            pk = stored[ext][0] if ext in stored else None
            if pk in refused:
                ctx.error(ext, refused[pk])
                fields = {
                    **fields,
                    "approval": stored[ext][1],
                    "approved_at": stored[ext][2],
                }
            result.append((ext, fields))
        return result, new

    def finish(self, ctx: ApplyContext) -> None:
        """Make each synced model's approved-alias version its baseline.

        Only a model with exactly one approved version carrying the approved alias has a
        clear answer. The baseline is replaced only when it is unset or is another version
        from this registry: a version the committee marked is left alone. Deployments are
        not touched: each follows its model's baseline unless the committee pinned one.
        """
        try:
            rules = rules_from(self.schema.parse(self.source.config))
        except (ValueError, ValidationError):
            return
        champion: dict[int, int | None] = {}
        # Seen in this run: finish() runs before rows not seen are marked gone.
        seen = ctx.seen_ids(m.ModelVersion)
        rows = (
            m.ModelVersion.objects.filter(
                source=ctx.label,
                gone_at__isnull=True,
                approval=m.ModelVersion.Approval.APPROVED,
            )
            .values_list("model_id", "pk", "aliases")
            .iterator(chunk_size=2000)
        )
        for model_id, pk, aliases in rows:
            if pk not in seen:
                continue
            if isinstance(aliases, list) and rules.approved_alias in aliases:
                champion[model_id] = None if model_id in champion else pk
        targets = [(mid, pk) for mid, pk in champion.items() if pk is not None]
        actor = Actor.source(ctx.label)
        for chunk in chunked(targets, FINISH_CHUNK):
            wanted = dict(chunk)
            moving = list(
                m.AIModel.objects.filter(pk__in=wanted)
                .filter(
                    Q(baseline_version__isnull=True)
                    | Q(baseline_version__source=ctx.label)
                )
                .exclude(baseline_version__in=list(wanted.values()))
                .values_list("pk", "external_id", "name", "baseline_version_id")
            )
            if not moving:
                continue
            # One batched call: the same checks as one model at a time, one
            # `aimodel.baseline` event per model, a constant number of queries.
            refused = services.aimodels_set_baselines(
                actor=actor, targets={pk: wanted[pk] for pk, *_ in moving}
            )
            for pk, external_id, name, current in moving:
                if pk in refused:
                    ctx.error(external_id or name, refused[pk])
                    continue
                ctx._note_change(
                    "updated",
                    m.AIModel,
                    external_id or name,
                    fields={"baseline_version_id": [current, wanted[pk]]},
                )
                ctx.touched.add((m.AIModel._meta.label_lower, pk))

    # -- revoking ----------------------------------------------------------------------
    def revoke(self, obj: Any, ctx: FetchContext) -> str:
        """Withdraw a version's approval at MLflow, by removing the alias or tagging it.

        MLflow has no conditional alias delete: the alias is checked to be on this version
        just before it is removed, which leaves a window of one request for it to move.
        """
        if not isinstance(obj, m.ModelVersion):
            raise RevokeError(NOT_A_VERSION)
        if obj.source != ctx.source.source_label:
            raise RevokeError(
                NOT_OURS.format(version=obj, source=ctx.source.source_label)
            )
        name, version = obj.model.name, obj.version
        try:
            api, rules, _ = self._setup(ctx)
        except SyncFailure as exc:
            raise RevokeError(str(exc)) from None
        try:
            if rules.revoke_action == SET_TAG:
                key, value = rules.revoke_tag
                api.call(
                    "POST",
                    "model-versions/set-tag",
                    body={"name": name, "version": version, "key": key, "value": value},
                )
                return TAG_SET.format(key=key, value=value, name=name, version=version)
            current = (
                api.call(
                    "GET",
                    "model-versions/get",
                    params={"name": name, "version": version},
                ).get("model_version")
                or {}
            )
            if rules.approved_alias not in (current.get("aliases") or []):
                raise RevokeError(
                    NO_ALIAS.format(
                        name=name, version=version, alias=rules.approved_alias
                    )
                )
            api.call(
                "DELETE",
                "registered-models/alias",
                body={"name": name, "alias": rules.approved_alias},
            )
            return ALIAS_REMOVED.format(
                alias=rules.approved_alias, name=name, version=version
            )
        except MlflowError as exc:
            if exc.code == "RESOURCE_DOES_NOT_EXIST":
                raise RevokeError(
                    VERSION_GONE.format(name=name, version=version, message=exc.message)
                ) from None
            raise RevokeError(
                REVOKE_FAILED.format(name=name, version=version, error=exc)
            ) from None
        except SyncFailure as exc:
            raise RevokeError(
                REVOKE_FAILED.format(name=name, version=version, error=exc)
            ) from None
        finally:
            api.close()
