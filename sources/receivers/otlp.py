"""OpenTelemetry traces → hourly usage per deployment and caller, and unowned deployments.

The OTLP/HTTP receiver (`OtlpReceiver` at the end, behind `views_otlp`) and the JSON-lines
importer (`connectors.otlp`) share this module:

1. *Decoding* (pure): inflate a gzip/deflate body with a size cap, parse protobuf or
   OTLP/JSON (whose trace and span ids are hex, not the base64 protobuf's JSON mapping
   expects) into an `ExportTraceServiceRequest`.
2. *Aggregating* (pure): each span carrying GenAI attributes (`gen_ai.request.model` or
   `gen_ai.response.model`) adds one call to a bucket keyed by (endpoint, model, hour,
   calling service, end user, operation, answering model). Other spans are counted as
   ignored. Raw spans are never kept: a busy gateway sends millions a day and governance
   needs who called what, how often and how it went, not each call.
3. *Applying* (`apply_aggregate`, inside the caller's transaction): resolve each
   (endpoint, model) to a Deployment, creating an observed, unowned one where the
   inventory knows nothing (a model answering that nobody registered is exactly what
   governance must see), then add the buckets to `UsageHour` with one
   INSERT … ON CONFLICT DO UPDATE per 500 buckets, and move `last_seen_at` forward.

Lookups are made in bulk, once per request, and remembered in a small process cache
(`TTLCache`) filled only after the transaction commits, so a steady stream of requests
does no lookup queries and a rolled-back request never leaves an id behind.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.http import parse_header_parameters
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

import audit
from audit.actors import Actor
from inventory import history, summary, usage
from inventory import models as m
from sources import models as sm
from sources.receivers.base import Receiver, ReceiverError
from sources.receivers.baselines import baselines_from_approved

RECEIVER_SOURCE_NAME = "OpenTelemetry traces"
OBSERVED_MODEL_DESCRIPTION = "Observed at runtime; not in any registry."
# OTLP's Status.StatusCode.STATUS_CODE_ERROR.
STATUS_ERROR = 2
NS_PER_HOUR = 3_600_000_000_000
# Spans stamped before this (a zero or garbled clock) are rejected, not bucketed in 1970.
EARLIEST_NS = 946_684_800 * 10**9  # 2000-01-01T00:00:00Z
# … and so are spans more than a day in the future (a clock far ahead).
FUTURE_SLACK_NS = 24 * NS_PER_HOUR
# One span's token counts are clamped to this: a corrupt counter must not poison the sums.
MAX_TOKENS_PER_SPAN = 10**9
UPSERT_CHUNK = 500
# Endpoint and model as they go into an observed deployment's external id (≤ 500 chars).
ENDPOINT_KEY_MAX = 255

ATTR_REQUEST_MODEL = "gen_ai.request.model"
ATTR_RESPONSE_MODEL = "gen_ai.response.model"
ATTR_PROVIDER = "gen_ai.provider.name"
ATTR_SYSTEM = "gen_ai.system"  # deprecated since semconv 1.37; older instrumentations
ATTR_OPERATION = "gen_ai.operation.name"
ATTR_INPUT_TOKENS = "gen_ai.usage.input_tokens"
ATTR_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
ATTR_SERVER_ADDRESS = "server.address"
ATTR_SERVER_PORT = "server.port"
ATTR_ENDUSER = "enduser.id"
ATTR_USER = "user.id"  # some SDKs (semconv 1.27 era) used it instead of enduser.id
ATTR_ERROR_TYPE = "error.type"
SPAN_KEYS = frozenset(
    {
        ATTR_REQUEST_MODEL,
        ATTR_RESPONSE_MODEL,
        ATTR_PROVIDER,
        ATTR_SYSTEM,
        ATTR_OPERATION,
        ATTR_INPUT_TOKENS,
        ATTR_OUTPUT_TOKENS,
        ATTR_SERVER_ADDRESS,
        ATTR_SERVER_PORT,
        ATTR_ENDUSER,
        ATTR_USER,
        ATTR_ERROR_TYPE,
    }
)
RES_SERVICE = "service.name"
RES_ENVIRONMENT = "deployment.environment.name"
RES_ENVIRONMENT_OLD = "deployment.environment"
RESOURCE_KEYS = frozenset({RES_SERVICE, RES_ENVIRONMENT, RES_ENVIRONMENT_OLD})

ENVIRONMENTS = {
    "prod": m.Deployment.Environment.PRODUCTION,
    "production": m.Deployment.Environment.PRODUCTION,
    "staging": m.Deployment.Environment.STAGING,
    "stage": m.Deployment.Environment.STAGING,
}
EMBEDDING_OPERATIONS = frozenset({"embeddings"})

# Field lengths, read once from the models so truncation follows the schema.
_LEN = {
    "service": m.UsageHour._meta.get_field("caller_service").max_length,
    "user": m.UsageHour._meta.get_field("caller_user").max_length,
    "operation": m.UsageHour._meta.get_field("operation").max_length,
    "response_model": m.UsageHour._meta.get_field("response_model").max_length,
    "model": m.AIModel._meta.get_field("name").max_length,
    "provider": m.AIModel._meta.get_field("provider").max_length,
    "deployment_name": m.Deployment._meta.get_field("name").max_length,
    "platform": m.Deployment._meta.get_field("platform").max_length,
}


_MODEL_LEN = _LEN["model"]
_RESPONSE_MODEL_LEN = _LEN["response_model"]
_OPERATION_LEN = _LEN["operation"]
_USER_LEN = _LEN["user"]
_PROVIDER_LEN = _LEN["provider"]


class OtlpError(ReceiverError):
    """A request the receiver refuses; `status` is the HTTP status to answer."""


BODY_TOO_LARGE = "The request body is larger than {limit} bytes."
INFLATED_TOO_LARGE = "The request body inflates to more than {limit} bytes."
BAD_COMPRESSION = "The request body is not valid {encoding} data."
BAD_PROTOBUF = "The request body is not an OTLP ExportTraceServiceRequest (protobuf)."
BAD_JSON = "The request body is not an OTLP ExportTraceServiceRequest (JSON): {reason}"
SOURCE_DISABLED = (
    "The OpenTelemetry source is disabled; enable it under Sources to receive traces."
)
REJECTED_REASON = (
    "{n} span(s) had a start time before 2000 or more than a day ahead; "
    "they were dropped."
)


# ---------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------
def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """Undo Content-Encoding `encoding` ("gzip", "deflate" or ""), never past `limit` bytes.

    zlib's `max_length` stops a small gzip bomb from expanding in memory before the check.
    "deflate" is HTTP's zlib format (what the OTel exporters send) or, as some clients do,
    raw deflate; the zlib header tells which.
    """
    if not encoding:
        if len(body) > limit:
            raise OtlpError(413, INFLATED_TOO_LARGE.format(limit=limit))
        return body
    if encoding == "gzip":
        wbits = 16 + zlib.MAX_WBITS
    elif _zlib_header(body):
        wbits = zlib.MAX_WBITS
    else:
        wbits = -zlib.MAX_WBITS
    out = bytearray()
    data = body
    try:
        while True:
            inflater = zlib.decompressobj(wbits)
            out += inflater.decompress(data, limit + 1 - len(out))
            while inflater.unconsumed_tail and len(out) <= limit:
                out += inflater.decompress(
                    inflater.unconsumed_tail, limit + 1 - len(out)
                )
            if len(out) > limit:
                raise OtlpError(413, INFLATED_TOO_LARGE.format(limit=limit))
            if not inflater.eof:  # cut short
                raise OtlpError(400, BAD_COMPRESSION.format(encoding=encoding))
            data = inflater.unused_data
            # gzip allows several members one after another; deflate has one stream.
            if not data or encoding != "gzip":
                break
    except zlib.error:
        raise OtlpError(400, BAD_COMPRESSION.format(encoding=encoding)) from None
    return bytes(out)


def _zlib_header(body: bytes) -> bool:
    return len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0


def parse_protobuf(body: bytes) -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    try:
        message.ParseFromString(body)
    except Exception:  # DecodeError, or upb's recursion limit on nested AnyValues
        raise OtlpError(400, BAD_PROTOBUF) from None
    return message


def parse_json(body: bytes | str) -> ExportTraceServiceRequest:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and bad UTF-8
        raise OtlpError(400, BAD_JSON.format(reason=_short(exc))) from None
    return request_from_json(obj)


def request_from_json(obj: Any) -> ExportTraceServiceRequest:
    """An OTLP/JSON object (already parsed) as a protobuf message.

    OTLP/JSON differs from protobuf's canonical JSON mapping in one way that matters: ids
    are hex strings. They are rewritten to base64 before `ParseDict`, or they would decode
    to the wrong bytes. 64-bit integers as strings, enum numbers and unknown fields are
    accepted by `ParseDict` as they are.
    """
    if not isinstance(obj, dict):
        raise OtlpError(400, BAD_JSON.format(reason="the top level is not an object"))
    message = ExportTraceServiceRequest()
    try:
        _hex_ids_to_base64(obj)
        json_format.ParseDict(obj, message, ignore_unknown_fields=True)
    except OtlpError:
        raise
    except Exception as exc:  # ParseError, and the odd TypeError on wrong shapes
        raise OtlpError(400, BAD_JSON.format(reason=_short(exc))) from None
    return message


_ID_KEYS = (
    "traceId",
    "spanId",
    "parentSpanId",
    "trace_id",
    "span_id",
    "parent_span_id",
)


def _hex_ids_to_base64(obj: dict) -> None:
    for rs in _list(obj, "resourceSpans", "resource_spans"):
        for ss in _list(rs, "scopeSpans", "scope_spans"):
            for span in _list(ss, "spans"):
                if not isinstance(span, dict):
                    continue
                _convert_ids(span)
                for link in _list(span, "links"):
                    if isinstance(link, dict):
                        _convert_ids(link)


def _list(obj: Any, *keys: str) -> list:
    if not isinstance(obj, dict):
        return []
    for key in keys:
        value = obj.get(key)
        if isinstance(value, list):
            return value
    return []


def _convert_ids(obj: dict) -> None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raise OtlpError(
                    400, BAD_JSON.format(reason=f"{key} is not hex: {value[:40]!r}")
                ) from None
            obj[key] = base64.b64encode(raw).decode()


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"


def response_body(rejected: int, reason: str, *, as_json: bool) -> bytes:
    """An ExportTraceServiceResponse; partial success only when spans were rejected."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = reason
    if as_json:
        if not rejected:
            return b"{}"
        return json_format.MessageToJson(response, indent=None).encode()
    return response.SerializeToString()


# ---------------------------------------------------------------------------
# Aggregating
# ---------------------------------------------------------------------------
@dataclass(slots=True)
class Seen:
    """What the spans said about one (endpoint, model): enough to create a deployment."""

    address: str
    provider: str
    environment: str
    operation: str
    first_ns: int
    last_ns: int


# A bucket's numbers: calls, errors, duration total (ms), duration max (ms), tokens in, out.
Bucket = list
# (endpoint, model, hour start in epoch seconds, service, user, operation, response model)
BucketKey = tuple[str, str, int, str, str, str, str]


@dataclass(slots=True)
class Aggregate:
    """Spans of one or more requests, summed per bucket. Pure: no database."""

    buckets: dict[BucketKey, Bucket] = field(default_factory=dict)
    deployments: dict[tuple[str, str], Seen] = field(default_factory=dict)
    spans: int = 0
    genai: int = 0
    ignored: int = 0
    rejected: int = 0

    def add_request(
        self, request: ExportTraceServiceRequest, now_ns: int | None = None
    ) -> Aggregate:
        """Add one export's spans. This loop runs for every span the receiver gets, so it
        keeps to locals and reads each attribute once."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        latest_ns = now_ns + FUTURE_SLACK_NS
        buckets, deployments = self.buckets, self.deployments
        keys, text, count = SPAN_KEYS, _text, _count
        spans = ignored = rejected = genai = 0
        for rs in request.resource_spans:
            service, environment = _resource(rs.resource.attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    spans += 1
                    attrs = {
                        kv.key: kv.value for kv in span.attributes if kv.key in keys
                    }
                    get = attrs.get
                    response_model = text(get(ATTR_RESPONSE_MODEL), _RESPONSE_MODEL_LEN)
                    model = (
                        text(get(ATTR_REQUEST_MODEL), _MODEL_LEN)
                        or response_model[:_MODEL_LEN]
                    )
                    if not model:
                        ignored += 1
                        continue
                    start = span.start_time_unix_nano or span.end_time_unix_nano
                    if not EARLIEST_NS <= start <= latest_ns:
                        rejected += 1
                        continue
                    genai += 1
                    end = span.end_time_unix_nano
                    if end < start:
                        end = start
                    duration_ms = (end - start) / 1e6
                    address = text(get(ATTR_SERVER_ADDRESS), ENDPOINT_KEY_MAX)
                    port = count(get(ATTR_SERVER_PORT), 65535)
                    endpoint = (
                        f"{address}:{port}"[:ENDPOINT_KEY_MAX]
                        if address and port
                        else address
                    )
                    operation = text(get(ATTR_OPERATION), _OPERATION_LEN)
                    user = text(get(ATTR_ENDUSER), _USER_LEN) or text(
                        get(ATTR_USER), _USER_LEN
                    )
                    key = (
                        endpoint,
                        model,
                        start // NS_PER_HOUR * 3600,
                        service,
                        user,
                        operation,
                        response_model,
                    )
                    bucket = buckets.get(key)
                    if bucket is None:
                        buckets[key] = bucket = [0, 0, 0.0, 0.0, 0, 0]
                    bucket[0] += 1
                    if span.status.code == STATUS_ERROR or ATTR_ERROR_TYPE in attrs:
                        bucket[1] += 1
                    bucket[2] += duration_ms
                    if duration_ms > bucket[3]:
                        bucket[3] = duration_ms
                    bucket[4] += count(get(ATTR_INPUT_TOKENS), MAX_TOKENS_PER_SPAN)
                    bucket[5] += count(get(ATTR_OUTPUT_TOKENS), MAX_TOKENS_PER_SPAN)
                    last = end if end < now_ns else now_ns
                    seen = deployments.get((endpoint, model))
                    if seen is None:
                        provider = text(get(ATTR_PROVIDER), _PROVIDER_LEN) or text(
                            get(ATTR_SYSTEM), _PROVIDER_LEN
                        )
                        deployments[(endpoint, model)] = Seen(
                            address, provider, environment, operation, start, last
                        )
                    else:
                        if start < seen.first_ns:
                            seen.first_ns = start
                        if last > seen.last_ns:
                            seen.last_ns = last
        self.spans += spans
        self.ignored += ignored
        self.rejected += rejected
        self.genai += genai
        return self

    def merge(self, other: Aggregate) -> Aggregate:
        for key, numbers in other.buckets.items():
            bucket = self.buckets.get(key)
            if bucket is None:
                self.buckets[key] = list(numbers)
                continue
            bucket[0] += numbers[0]
            bucket[1] += numbers[1]
            bucket[2] += numbers[2]
            bucket[3] = max(bucket[3], numbers[3])
            bucket[4] += numbers[4]
            bucket[5] += numbers[5]
        for key, seen in other.deployments.items():
            mine = self.deployments.get(key)
            if mine is None:
                self.deployments[key] = Seen(
                    seen.address,
                    seen.provider,
                    seen.environment,
                    seen.operation,
                    seen.first_ns,
                    seen.last_ns,
                )
            else:
                mine.first_ns = min(mine.first_ns, seen.first_ns)
                mine.last_ns = max(mine.last_ns, seen.last_ns)
        self.spans += other.spans
        self.genai += other.genai
        self.ignored += other.ignored
        self.rejected += other.rejected
        return self


def aggregate(
    requests: Iterable[ExportTraceServiceRequest], now_ns: int | None = None
) -> Aggregate:
    agg = Aggregate()
    for request in requests:
        agg.add_request(request, now_ns)
    return agg


def _resource(attributes) -> tuple[str, str]:
    found = {kv.key: kv.value for kv in attributes if kv.key in RESOURCE_KEYS}
    service = _text(found.get(RES_SERVICE), _LEN["service"])
    environment = _text(found.get(RES_ENVIRONMENT), 100) or _text(
        found.get(RES_ENVIRONMENT_OLD), 100
    )
    return service, environment_choice(environment)


def environment_choice(value: str) -> str:
    """deployment.environment.name → our environment; none said means production.

    Telemetry is emitted by what runs; when a service does not say where it runs, the
    cautious reading for governance is that it is live.
    """
    if not value:
        return m.Deployment.Environment.PRODUCTION
    return ENVIRONMENTS.get(value.strip().lower(), m.Deployment.Environment.DEVELOPMENT)


def _scalar(value) -> Any:
    if value is None:
        return None
    kind = value.WhichOneof("value")
    if kind is None or kind in ("array_value", "kvlist_value", "bytes_value"):
        return None
    return getattr(value, kind)


def _text(value, limit: int) -> str:
    """An attribute as text fit for a column: no NUL (PostgreSQL refuses it), cut to fit."""
    if value is None:
        return ""
    # Fast path: almost every such attribute is a string (this runs for every span).
    text = value.string_value
    if not text:
        raw = _scalar(value)
        if raw is None or raw == "":
            return ""
        text = str(raw)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return text.strip()[:limit]


def _count(value, limit: int) -> int:
    if value is None:
        return 0
    raw = value.int_value  # the fast path, as in _text
    if raw > 0:
        return raw if raw <= limit else limit
    raw = _scalar(value)
    if isinstance(raw, bool) or raw is None:
        return 0
    if isinstance(raw, str):
        try:
            raw = int(raw.strip())
        except ValueError:
            return 0
    if isinstance(raw, float):
        if raw != raw:  # NaN
            return 0
        raw = int(min(max(raw, 0.0), float(limit)))
    return min(max(raw, 0), limit)


# ---------------------------------------------------------------------------
# A small process cache for lookups
# ---------------------------------------------------------------------------
_MISSING = object()


class TTLCache:
    """A bounded map whose entries expire, shared by the receiver's requests in a process.

    Entries are added only after the writing transaction commits (`put_on_commit`), so a
    rolled-back request never leaves an id of a row that does not exist. A row deleted
    later is caught by the receiver: the insert fails on its foreign key, the cache is
    cleared and the request retried once; the TTL bounds how long a newly registered
    deployment can go unnoticed behind a cached observed one.
    """

    def __init__(self, maxsize: int = 20_000, ttl: float = 300.0) -> None:
        self.maxsize = maxsize
        self.ttl = ttl
        self._data: OrderedDict[Any, tuple[Any, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, default: Any = _MISSING) -> Any:
        item = self._data.get(key)
        if item is None:
            return default
        value, expires = item
        if expires < time.monotonic():
            with self._lock:
                self._data.pop(key, None)
            return default
        return value

    def put_many(self, items: dict[Any, Any]) -> None:
        expires = time.monotonic() + self.ttl
        with self._lock:
            for key, value in items.items():
                self._data[key] = (value, expires)
                self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def put_on_commit(self, items: dict[Any, Any]) -> None:
        if items:
            transaction.on_commit(lambda: self.put_many(items))

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


RECEIVER_CACHE = TTLCache()


# ---------------------------------------------------------------------------
# Applying
# ---------------------------------------------------------------------------
@dataclass
class ApplyResult:
    buckets: int = 0
    deployments: int = 0
    deployments_created: list[str] = field(default_factory=list)
    models_created: list[str] = field(default_factory=list)
    # ids of the rows above, as the audit event and the change notices name them
    deployment_ids_created: list[int] = field(default_factory=list)
    model_ids_created: list[int] = field(default_factory=list)


def apply_aggregate(
    agg: Aggregate, *, source_label: str, cache: TTLCache | None = None
) -> ApplyResult:
    """Write an aggregate: deployments resolved or created, buckets added, last-seen moved.

    Call inside a transaction. With a `cache`, lookups are remembered once it commits.
    """
    result = ApplyResult()
    if not agg.buckets:
        return result
    remember: dict[Any, Any] = {}
    deployment_ids = _deployment_ids(
        agg, source_label=source_label, cache=cache, remember=remember, result=result
    )
    services = {key[3] for key in agg.buckets if key[3]}
    identity_ids = _identity_ids(services, cache=cache, remember=remember)
    # Locks in one order on every path: deployments (created, then last-seen moved, both
    # in key order), then usage rows (in key order). Usage first on a warm path and
    # deployments first on a cold one deadlocked two requests on PostgreSQL.
    _touch_last_seen(agg, deployment_ids)
    summary.mark_later(m.Deployment, sorted(set(deployment_ids.values())))
    result.buckets = _upsert_usage(agg, deployment_ids, identity_ids)
    result.deployments = len(set(deployment_ids.values()))
    if cache is not None:
        cache.put_on_commit(remember)
    return result


def _deployment_ids(
    agg: Aggregate,
    *,
    source_label: str,
    cache: TTLCache | None,
    remember: dict[Any, Any],
    result: ApplyResult,
) -> dict[tuple[str, str], int]:
    ids: dict[tuple[str, str], int] = {}
    missing: list[tuple[str, str]] = []
    for key in agg.deployments:
        pk = cache.get(("deployment", key)) if cache is not None else _MISSING
        if pk is _MISSING:
            missing.append(key)
        else:
            ids[key] = pk
    if not missing:
        return ids
    found = _match_existing(missing, agg.deployments)
    unknown = [key for key in missing if key not in found]
    if unknown:
        found.update(_create_observed(unknown, agg.deployments, source_label, result))
    for key, pk in found.items():
        ids[key] = pk
        remember[("deployment", key)] = pk
    return ids


def endpoint_keys(endpoint: str) -> tuple[set[str], str]:
    """How a stored endpoint may be named by a span: (exact forms, host).

    Inventory endpoints are often URLs (https://host:port/path) while spans give a host
    and a port. The exact forms are the text itself, host:port, and the bare host when
    the stored endpoint names no port; the host is returned apart, for spans that name no
    port. Everything is compared lower-cased.
    """
    text = endpoint.strip().lower()
    forms = {text} if text else set()
    if not text:
        return forms, ""
    target = text if "://" in text else f"//{text}"
    try:
        parts = urlsplit(target)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        hostname = parts.hostname or ""
        port = parts.port
    except ValueError:  # a port that is not a number, an unbalanced [ …
        return forms, ""
    if netloc:
        forms.add(netloc)
    if hostname and port is None:
        forms.add(hostname)
    return forms, hostname


def _match_existing(
    keys: list[tuple[str, str]], seen: dict[tuple[str, str], Seen]
) -> dict[tuple[str, str], int]:
    """Existing deployments for (endpoint, model) keys, in one query.

    A deployment matches when its model has the span's model name and its endpoint is
    the span's address:port, or the span's address when one of the two names no port.
    Spans that name no address match only this source's own observed deployment (made
    by `_create_observed`), never a registered one with an empty endpoint. One a registry
    or runtime brought in wins over an observed one; then the oldest.
    """
    names = {model for _, model in keys}
    exact: dict[tuple[str, str], tuple[bool, int]] = {}
    by_host: dict[tuple[str, str], tuple[bool, int]] = {}

    def keep(index: dict, key: tuple[str, str], rank: tuple[bool, int]) -> None:
        current = index.get(key)
        if current is None or rank < current:
            index[key] = rank

    rows = m.Deployment.objects.filter(
        model__name__in=names, gone_at__isnull=True
    ).values_list("pk", "endpoint", "model__name", "source")
    for pk, endpoint, model_name, source in rows:
        rank = (source.startswith("otlp:"), pk)
        forms, host = endpoint_keys(endpoint)
        if not forms and rank[0]:
            forms = {""}  # an observed deployment of spans that named no address
        for form in forms:
            keep(exact, (form, model_name), rank)
        if host:
            keep(by_host, (host, model_name), rank)
    found: dict[tuple[str, str], int] = {}
    for endpoint, model in keys:
        address = seen[(endpoint, model)].address.lower()
        span_forms = [(exact, endpoint.lower()), (exact, address)]
        if address and endpoint.lower() == address:  # the span named no port
            span_forms.append((by_host, address))
        for index, form in span_forms:
            hit = index.get((form, model))
            if hit is not None:
                found[(endpoint, model)] = hit[1]
                break
    return found


def observed_external_id(endpoint: str, model: str) -> str:
    return f"otel:{endpoint}|{model}"


def _create_observed(
    keys: list[tuple[str, str]],
    seen: dict[tuple[str, str], Seen],
    source_label: str,
    result: ApplyResult,
) -> dict[tuple[str, str], int]:
    """Observed, unowned deployments (and models nobody registered) for unknown keys."""
    now = timezone.now()
    model_ids = _model_ids(
        {model for _, model in keys}, keys, seen, source_label, result
    )
    # A known model's team is the observed deployment's team, so the model's people see
    # its shadow deployments. Its owner is not made the deployment's: nobody has said
    # they answer for this one, so it stays ownerless (the model's owner is shown as
    # inherited, Deployment.inherited_owner).
    team_of = dict(
        m.AIModel.objects.filter(pk__in=set(model_ids.values()), team__isnull=False)
        .order_by()
        .values_list("pk", "team_id")
    )
    objs = []
    # In key order, so two requests creating the same deployments lock them alike.
    for endpoint, model in sorted(keys, key=lambda k: observed_external_id(*k)):
        info = seen[(endpoint, model)]
        where = endpoint or info.provider or "unknown endpoint"
        objs.append(
            m.Deployment(
                source=source_label,
                external_id=observed_external_id(endpoint, model),
                seen_at=now,
                name=f"{model} @ {where}"[: _LEN["deployment_name"]],
                model_id=model_ids[model],
                environment=info.environment,
                endpoint=endpoint,
                platform=info.provider[: _LEN["platform"]],
                owner=None,
                team_id=team_of.get(model_ids[model]),
                first_seen_at=_ns_datetime(info.first_ns),
                last_seen_at=_ns_datetime(info.last_ns),
            )
        )
    # ON CONFLICT: a concurrent request may have created the same one; an observed row
    # another sync had marked gone is back, since it answers again.
    created = m.Deployment.objects.bulk_create(
        objs,
        update_conflicts=True,
        unique_fields=["source", "external_id"],
        update_fields=["gone_at", "seen_at", "model"],
    )
    by_ext = {obj.external_id: obj.pk for obj in created if obj.pk}
    if len(by_ext) < len(objs):  # a backend without RETURNING
        by_ext = dict(
            m.Deployment.objects.filter(
                source=source_label, external_id__in=[o.external_id for o in objs]
            ).values_list("external_id", "pk")
        )
    result.deployments_created.extend(o.external_id for o in objs)
    result.deployment_ids_created.extend(by_ext[o.external_id] for o in objs)
    # New deployments are held to their model's approved version now, not next sync.
    baselines_from_approved(
        model_ids=set(model_ids.values()), source_label=source_label
    )
    return {key: by_ext[observed_external_id(*key)] for key in keys}


def _model_ids(
    names: set[str],
    keys: list[tuple[str, str]],
    seen: dict[tuple[str, str], Seen],
    source_label: str,
    result: ApplyResult,
) -> dict[str, int]:
    """Models by name from any source (the registry's is the one spans name); the rest
    become observed models of this source, as `ApplyContext.ensure_models` makes them."""
    ids: dict[str, int] = {}
    for name, pk in (
        m.AIModel.objects.filter(name__in=names)
        .order_by("name", F("gone_at").asc(nulls_first=True), "-id")
        .values_list("name", "pk")
    ):
        ids.setdefault(name, pk)
    unknown = sorted(names - set(ids))
    if not unknown:
        return ids
    hints: dict[str, Seen] = {}
    for endpoint, model in keys:
        hints.setdefault(model, seen[(endpoint, model)])
    now = timezone.now()
    objs = [
        m.AIModel(
            source=source_label,
            external_id=f"model:{name}",
            seen_at=now,
            name=name,
            kind=(
                m.AIModel.Kind.EMBEDDING
                if hints[name].operation in EMBEDDING_OPERATIONS
                else m.AIModel.Kind.LLM
            ),
            provider=hints[name].provider,
            lifecycle=m.AIModel.Lifecycle.ACTIVE,
            description=OBSERVED_MODEL_DESCRIPTION,
        )
        for name in unknown
    ]
    created = m.AIModel.objects.bulk_create(
        objs,
        update_conflicts=True,
        unique_fields=["source", "external_id"],
        update_fields=["seen_at", "gone_at"],
    )
    by_name = {obj.name: obj.pk for obj in created if obj.pk}
    if len(by_name) < len(objs):
        by_name = dict(
            m.AIModel.objects.filter(
                source=source_label, external_id__in=[o.external_id for o in objs]
            ).values_list("name", "pk")
        )
    ids.update(by_name)
    result.models_created.extend(o.external_id for o in objs)
    result.model_ids_created.extend(by_name[o.name] for o in objs)
    return ids


def _identity_ids(
    services: set[str], *, cache: TTLCache | None, remember: dict[Any, Any]
) -> dict[str, int | None]:
    """The non-human identity named as each calling service, if one is known."""
    ids: dict[str, int | None] = {}
    missing = []
    for name in services:
        pk = cache.get(("identity", name)) if cache is not None else _MISSING
        if pk is _MISSING:
            missing.append(name)
        else:
            ids[name] = pk
    if missing:
        found: dict[str, int] = {}
        for name, pk in (
            m.NonHumanIdentity.objects.filter(name__in=missing, gone_at__isnull=True)
            .order_by("name", "id")
            .values_list("name", "pk")
        ):
            found.setdefault(name, pk)
        for name in missing:
            ids[name] = found.get(name)
            remember[("identity", name)] = found.get(name)
    return ids


USAGE_INSERT_COLUMNS = (
    "deployment",
    "hour",
    "caller_service",
    "caller_user",
    "identity",
    "operation",
    "response_model",
    "calls",
    "errors",
    "duration_ms_total",
    "duration_ms_max",
    "input_tokens",
    "output_tokens",
)
USAGE_KEY_COLUMNS = (
    "deployment",
    "hour",
    "caller_service",
    "caller_user",
    "operation",
    "response_model",
)
# PostgreSQL types of the unnest() arrays, in USAGE_INSERT_COLUMNS order.
USAGE_ARRAY_TYPES = (
    "bigint",
    "timestamptz",
    "text",
    "text",
    "bigint",
    "text",
    "text",
    "bigint",
    "bigint",
    "double precision",
    "double precision",
    "bigint",
    "bigint",
)


def _usage_rows(
    agg: Aggregate,
    deployment_ids: dict[tuple[str, str], int],
    identity_ids: dict[str, int | None],
) -> list[list[Any]]:
    """One row per UsageHour key, in a fixed order.

    Two (endpoint, model) keys may resolve to one deployment (its URL and its bare host
    both named in the same request): their buckets are merged first, since one statement
    may not upsert the same row twice. The fixed order makes two requests touching the
    same buckets lock them in the same order (no deadlock on PostgreSQL).
    """
    merged: dict[tuple, list[Any]] = {}
    for key, n in agg.buckets.items():
        endpoint, model, hour, service, user, operation, response_model = key
        db_key = (
            deployment_ids[(endpoint, model)],
            hour,
            service,
            user,
            operation,
            response_model,
        )
        row = merged.get(db_key)
        if row is None:
            merged[db_key] = list(n)
        else:
            row[0] += n[0]
            row[1] += n[1]
            row[2] += n[2]
            row[3] = max(row[3], n[3])
            row[4] += n[4]
            row[5] += n[5]
    hours: dict[int, datetime] = {}
    rows = []
    for db_key in sorted(merged):
        dep, hour, service, user, operation, response_model = db_key
        numbers = merged[db_key]
        when = hours.get(hour)
        if when is None:
            when = hours[hour] = datetime.fromtimestamp(hour, tz=UTC)
        rows.append(
            [
                dep,
                when,
                service,
                user,
                identity_ids.get(service) if service else None,
                operation,
                response_model,
                *numbers[:2],
                float(numbers[2]),  # one type per binary array: never an int 0 here
                float(numbers[3]),
                *numbers[4:],
            ]
        )
    return rows


def _upsert_usage(
    agg: Aggregate,
    deployment_ids: dict[tuple[str, str], int],
    identity_ids: dict[str, int | None],
) -> int:
    """Add the buckets to UsageHour with INSERT … ON CONFLICT DO UPDATE; return rows.

    PostgreSQL gets one statement whose 13 parameters are arrays (unnest), however many
    rows: nothing to parse per row, one plan. SQLite gets multi-row VALUES in chunks. The
    conflict clause is the same on both but for the two-argument maximum.
    """
    rows = _usage_rows(agg, deployment_ids, identity_ids)
    if not rows:
        return 0
    opts = m.UsageHour._meta
    qn = connection.ops.quote_name
    table = qn(opts.db_table)
    col = {f.name: qn(f.column) for f in opts.concrete_fields}
    postgres = connection.vendor == "postgresql"
    summed = ", ".join(
        f"{col[n]} = {table}.{col[n]} + excluded.{col[n]}"
        for n in (
            "calls",
            "errors",
            "duration_ms_total",
            "input_tokens",
            "output_tokens",
        )
    )
    dmax, ident = col["duration_ms_max"], col["identity"]
    greatest = "GREATEST" if postgres else "max"
    # Only quoted names from the model's meta are formatted in; every value is a parameter.
    head = f"INSERT INTO {table} ({', '.join(col[n] for n in USAGE_INSERT_COLUMNS)}) "  # noqa: S608
    tail = (
        f" ON CONFLICT ({', '.join(col[n] for n in USAGE_KEY_COLUMNS)}) DO UPDATE SET "
        f"{summed}, {dmax} = {greatest}({table}.{dmax}, excluded.{dmax}), "
        f"{ident} = COALESCE(excluded.{ident}, {table}.{ident})"
    )
    if postgres:
        # %b: binary parameters. Text arrays made psycopg and the server escape and
        # parse every element, which cost three times as much as sending them.
        arrays = ", ".join(f"%b::{t}[]" for t in USAGE_ARRAY_TYPES)
        with _binding_cursor() as cursor:
            cursor.execute(
                f"{head}SELECT * FROM unnest({arrays}){tail}",  # noqa: S608 - as above
                [list(column) for column in zip(*rows, strict=True)],
            )
        return len(rows)
    with connection.cursor() as cursor:
        adapt = connection.ops.adapt_datetimefield_value
        placeholder = "(" + ", ".join(["%s"] * len(USAGE_INSERT_COLUMNS)) + ")"
        for start in range(0, len(rows), UPSERT_CHUNK):
            chunk = rows[start : start + UPSERT_CHUNK]
            params: list[Any] = []
            for row in chunk:
                row[1] = adapt(row[1])
                params += row
            # "VALUES … ON CONFLICT" parses unambiguously in SQLite (only a SELECT
            # before ON CONFLICT needs a WHERE).
            cursor.execute(
                f"{head}VALUES {', '.join([placeholder] * len(chunk))}{tail}", params
            )
    return len(rows)


def _touch_last_seen(
    agg: Aggregate, deployment_ids: dict[tuple[str, str], int]
) -> None:
    """Move each deployment's last_seen_at and last_call_at forward to its latest span.

    A retired model's deployment that telemetry shows still answering stays "seen": that
    is the shadow deployment governance looks for. The write is the usage module's
    (`inventory.usage.record_calls`, one UPDATE; only later times are written, so a
    replayed old file never moves them back).
    """
    latest: dict[int, int] = {}
    for key, seen in agg.deployments.items():
        pk = deployment_ids[key]
        if seen.last_ns > latest.get(pk, 0):
            latest[pk] = seen.last_ns
    usage.record_calls({pk: _ns_datetime(ns) for pk, ns in latest.items()})


def _binding_cursor():
    """A PostgreSQL cursor that sends parameters apart from the query (server-side binding).

    Django's default psycopg cursor binds on the client: it quotes each of the thousands
    of array elements into the SQL text, which cost as much as the upsert itself. This
    one sends them as parameters, binary where psycopg can. Still Django's cursor wrapper,
    so errors are Django's and queries are logged as usual.
    """
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    raw = ServerBindingCursor(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(raw)
    return connection.make_cursor(raw)


def _ns_datetime(ns: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)


PUSH_CREATE_ACTION = "datasource.push_create"


def push_record(
    *, source: sm.DataSource, result: ApplyResult, run_id: int | None = None
) -> None:
    """One audit event per push naming what it created, and their change notices.

    Call in the push's transaction. Rows a concurrent push created a moment earlier (ON
    CONFLICT) are named by both: an event too many, never one too few.
    """
    if not (result.deployment_ids_created or result.model_ids_created):
        return
    label = source.source_label
    audit.record(
        actor=Actor.source(label),
        action=PUSH_CREATE_ACTION,
        target=source,
        after={
            "run": run_id,
            "deployments": [
                {"id": pk, "external_id": ext}
                for pk, ext in zip(
                    result.deployment_ids_created,
                    result.deployments_created,
                    strict=True,
                )
            ],
            "models": [
                {"id": pk, "external_id": ext}
                for pk, ext in zip(
                    result.model_ids_created, result.models_created, strict=True
                )
            ],
        },
        team_id=source.team_id,
    )
    history.announce(
        objects=[(history.DEPLOYMENT, pk) for pk in result.deployment_ids_created]
        + [(m.AIModel._meta.label_lower, pk) for pk in result.model_ids_created],
        source=label,
        run_id=run_id,
    )


# ---------------------------------------------------------------------------
# The receiver's source
# ---------------------------------------------------------------------------
SOURCE_TOUCH_SECONDS = 60.0
_source_touched: dict[int, float] = {}


@dataclass(frozen=True)
class ReceiverSource:
    pk: int
    label: str


def receiver_source(cache: TTLCache) -> ReceiverSource | None:
    """The OTLP source the receiver writes as: the first enabled one, created if none.

    None when OTLP sources exist but all are disabled: an administrator turned the
    receiver off.
    """
    cached = cache.get(("source",))
    if cached is not _MISSING:
        return cached
    source = _first_enabled_source()
    if source is None:
        # A cold start: senders at once would each find none, and one could see another's
        # new source committed between two reads and answer 403 as if it were disabled.
        # Decided one at a time: after the lock (PostgreSQL; SQLite has one writer) a
        # source another sender created is committed and read here.
        _lock_receiver_source()
        source = _first_enabled_source()
    if source is None:
        if sm.DataSource.objects.filter(kind=sm.DataSource.Kind.OTLP).exists():
            return None
        source = create_receiver_source()
    found = ReceiverSource(source.pk, source.source_label)
    cache.put_on_commit({("source",): found})
    return found


def _first_enabled_source() -> sm.DataSource | None:
    return (
        sm.DataSource.objects.filter(kind=sm.DataSource.Kind.OTLP, enabled=True)
        .order_by("pk")
        .first()
    )


# pg_advisory_xact_lock key of the receiver's source creation.
RECEIVER_SOURCE_LOCK = zlib.crc32(b"runproof.otlp.receiver_source")


def _lock_receiver_source() -> None:
    """Until the caller's transaction ends, be the only sender deciding the receiver's
    source (PostgreSQL)."""
    if connection.vendor == "postgresql" and connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RECEIVER_SOURCE_LOCK])


def create_receiver_source() -> sm.DataSource:
    from inventory.services import change_record

    name = RECEIVER_SOURCE_NAME
    if sm.DataSource.objects.filter(name=name).exists():
        name = f"{RECEIVER_SOURCE_NAME} (OTLP receiver)"
    source = sm.DataSource.objects.create(
        name=name, kind=sm.DataSource.Kind.OTLP, schedule_minutes=0
    )
    change_record(
        actor=None,
        actor_label="otlp receiver",
        action="datasource.create",
        target=source,
        before=None,
        after={"name": source.name, "kind": source.kind, "schedule_minutes": 0},
    )
    return source


def touch_source(source: ReceiverSource) -> None:
    """Mark the source healthy and just heard from, at most once a minute per process."""
    clock = time.monotonic()
    if (
        clock - _source_touched.get(source.pk, -SOURCE_TOUCH_SECONDS)
        < SOURCE_TOUCH_SECONDS
    ):
        return
    now = timezone.now()
    sm.DataSource.objects.filter(pk=source.pk).update(
        last_success_at=now, last_run_at=now, health=sm.DataSource.Health.HEALTHY
    )

    def remember() -> None:
        _source_touched[source.pk] = clock

    transaction.on_commit(remember)


def reset_process_state() -> None:
    """Forget cached ids and touch times (tests; after a database is swapped)."""
    RECEIVER_CACHE.clear()
    _source_touched.clear()


@dataclass
class IngestResult:
    spans: int
    genai: int
    ignored: int
    rejected: int
    applied: ApplyResult


def ingest(request: ExportTraceServiceRequest, *, cache: TTLCache) -> IngestResult:
    """The receiver's whole write for one export request; call inside a transaction.

    Raises OtlpError(403) when the OTLP source is disabled.
    """
    return ingest_aggregate(Aggregate().add_request(request), cache=cache)


def ingest_aggregate(agg: Aggregate, *, cache: TTLCache) -> IngestResult:
    """`ingest` once the request is aggregated; call inside a transaction."""
    source = receiver_source(cache)
    if source is None:
        raise OtlpError(403, SOURCE_DISABLED)
    applied = apply_aggregate(agg, source_label=source.label, cache=cache)
    if applied.deployment_ids_created or applied.model_ids_created:
        push_record(source=sm.DataSource.objects.get(pk=source.pk), result=applied)
    touch_source(source)
    return IngestResult(agg.spans, agg.genai, agg.ignored, agg.rejected, applied)


# ---------------------------------------------------------------------------
# The receiver: what POST /v1/traces does with a body, as decode -> aggregate -> apply
# ---------------------------------------------------------------------------
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ENCODINGS = {"": "", "identity": "", "gzip": "gzip", "deflate": "deflate"}

UNSUPPORTED_TYPE = (
    "Content-Type must be application/x-protobuf or application/json, not {value!r}."
)
UNSUPPORTED_ENCODING = (
    "Content-Encoding must be gzip, deflate or identity, not {value!r}."
)


def content_type_of(headers: Mapping[str, str]) -> str:
    """The media type alone, lower case, as Django's `request.content_type` reads it."""
    return parse_header_parameters(headers.get("Content-Type", ""))[0].strip().lower()


class OtlpReceiver(Receiver[ExportTraceServiceRequest, Aggregate, IngestResult]):
    """One OTLP/HTTP export: decode the body, sum its spans, write the buckets.

    `check_headers` runs before the body is read (a refused type or encoding costs no
    read); `decode` runs it again, so the three steps also work on their own.
    """

    kind = "otlp"

    def __init__(self, *, max_inflated: int, cache: TTLCache = RECEIVER_CACHE) -> None:
        self.max_inflated = max_inflated
        self.cache = cache

    @staticmethod
    def check_headers(headers: Mapping[str, str]) -> tuple[bool, str]:
        """(protobuf or not, Content-Encoding) or OtlpError(415)."""
        content_type = content_type_of(headers)
        if content_type not in (PROTOBUF, JSON):
            raise OtlpError(
                415,
                UNSUPPORTED_TYPE.format(value=headers.get("Content-Type", "")[:100]),
            )
        raw_encoding = headers.get("Content-Encoding", "").strip().lower()
        encoding = ENCODINGS.get(raw_encoding)
        if encoding is None:
            raise OtlpError(415, UNSUPPORTED_ENCODING.format(value=raw_encoding[:100]))
        return content_type == PROTOBUF, encoding

    def decode(
        self, body: bytes, headers: Mapping[str, str]
    ) -> ExportTraceServiceRequest:
        as_protobuf, encoding = self.check_headers(headers)
        body = inflate(body, encoding, self.max_inflated)
        return parse_protobuf(body) if as_protobuf else parse_json(body)

    def aggregate(self, message: ExportTraceServiceRequest) -> Aggregate:
        return Aggregate().add_request(message)

    def apply(self, batch: Aggregate) -> IngestResult:
        """One transaction; once more with an empty cache if a cached id's row was deleted.

        Foreign keys are checked at commit (Django creates them deferred), so a usage row for
        a deployment deleted since it was cached fails there, as an IntegrityError; so does
        losing the race to create the same observed deployment or source.
        """
        for attempt in range(1, INGEST_ATTEMPTS + 1):
            try:
                with transaction.atomic():
                    return ingest_aggregate(batch, cache=self.cache)
            except IntegrityError:
                self.cache.clear()
                if attempt >= 2:
                    raise
            except DatabaseError as exc:
                # PostgreSQL chose this request as a deadlock's victim (or a serialization
                # failure): it rolled back whole, so running it again is safe.
                if not _retryable(exc) or attempt == INGEST_ATTEMPTS:
                    raise
                time.sleep(0.01 * attempt)
        raise AssertionError("unreachable")


# Deadlock detected, serialization failure: the transaction may simply be run again.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})
INGEST_ATTEMPTS = 4


def _retryable(exc: DatabaseError) -> bool:
    cause = exc.__cause__
    return (
        getattr(cause, "sqlstate", None) in RETRYABLE_SQLSTATES
        or getattr(cause, "pgcode", None) in RETRYABLE_SQLSTATES
    )
