"""POST /v1/traces: the OTLP/HTTP traces receiver (protobuf or JSON, gzip or deflate).

Clients are the OpenTelemetry SDK exporters and collectors, authenticated by a Runproof API
token with the `telemetry` scope (`Authorization: Bearer rp_…`). The answers follow the
OTLP/HTTP specification: 200 with an ExportTraceServiceResponse in the request's encoding;
4xx errors with a google.rpc.Status, as protobuf for a protobuf request and as JSON
otherwise (a request whose type is refused gets JSON); 503 with Retry-After when the
database cannot take the write, which the exporters retry. A bad request is never a 500
and never half-written: everything one request writes is in one transaction.

The body is read from the stream with a cap rather than through `request.body`: Django's
DATA_UPLOAD_MAX_MEMORY_SIZE would answer its own 400 for a large export, and the OTLP
limits (`OTLP_MAX_BODY_BYTES`, `OTLP_MAX_INFLATED_BYTES`) are what apply here.
"""

from __future__ import annotations

import json
import logging
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from inventory import services
from sources.receivers import otlp

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
ENCODINGS = {"": "", "identity": "", "gzip": "gzip", "deflate": "deflate"}
READ_CHUNK = 64 * 1024
RETRY_AFTER_SECONDS = 5

METHOD_NOT_ALLOWED = "Only POST is accepted."
UNAUTHENTICATED = "A bearer token with the telemetry scope is required."
BAD_TOKEN = "Invalid, expired or revoked token."
NO_SCOPE = "This token does not have the telemetry scope."
UNSUPPORTED_TYPE = (
    "Content-Type must be application/x-protobuf or application/json, not {value!r}."
)
UNSUPPORTED_ENCODING = (
    "Content-Encoding must be gzip, deflate or identity, not {value!r}."
)
BAD_LENGTH = "The Content-Length header is not a number."
UNAVAILABLE = "The inventory database could not take the write; retry later."

# google.rpc.Code for each HTTP status this view answers.
RPC_CODES = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    405: 12,  # UNIMPLEMENTED
    413: 8,  # RESOURCE_EXHAUSTED
    415: 3,  # INVALID_ARGUMENT
    503: 14,  # UNAVAILABLE
}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def status_protobuf(code: int, message: str) -> bytes:
    """A google.rpc.Status{code, message} in protobuf wire format.

    Written by hand (two fields) so the receiver needs no googleapis-common-protos.
    """
    text = message.encode()
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _error(status: int, message: str, *, as_protobuf: bool) -> HttpResponse:
    code = RPC_CODES[status]
    if as_protobuf:
        response = HttpResponse(
            status_protobuf(code, message), status=status, content_type=PROTOBUF
        )
    else:
        response = HttpResponse(
            json.dumps({"code": code, "message": message}),
            status=status,
            content_type=JSON,
        )
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="runproof"'
    if status == 503:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _authenticate(request: HttpRequest) -> tuple[int, str] | None:
    """None when the token may send telemetry, else (status, message)."""
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return 401, UNAUTHENTICATED
    token = services.api_token_authenticate(raw.strip())
    if token is None:
        return 401, BAD_TOKEN
    if "telemetry" not in token.scopes:
        return 403, NO_SCOPE
    return None


def _read_body(request: HttpRequest, limit: int) -> bytes:
    """At most `limit` bytes of the body, or OtlpError(413); never request.body."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        length = int(declared)
    except ValueError:
        raise otlp.OtlpError(400, BAD_LENGTH) from None
    if length < 0:
        raise otlp.OtlpError(400, BAD_LENGTH)
    if length > limit:
        raise otlp.OtlpError(413, otlp.BODY_TOO_LARGE.format(limit=limit))
    chunks = []
    size = 0
    while True:
        chunk = request.read(min(READ_CHUNK, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise otlp.OtlpError(413, otlp.BODY_TOO_LARGE.format(limit=limit))
    return b"".join(chunks)


@csrf_exempt
@login_not_required
@never_cache
def traces(request: HttpRequest) -> HttpResponse:
    content_type = (request.content_type or "").strip().lower()
    as_protobuf = content_type == PROTOBUF
    if request.method != "POST":
        response = _error(405, METHOD_NOT_ALLOWED, as_protobuf=as_protobuf)
        response["Allow"] = "POST"
        return response
    try:
        return _receive(request, content_type, as_protobuf)
    except otlp.OtlpError as exc:
        return _error(exc.status, exc.message, as_protobuf=as_protobuf)
    except DatabaseError:
        # The token check or the write: the database is down or refused. Exporters
        # retry a 503 after Retry-After; nothing was written (one transaction).
        log.exception("OTLP export could not be written")
        return _error(503, UNAVAILABLE, as_protobuf=as_protobuf)


def _receive(
    request: HttpRequest, content_type: str, as_protobuf: bool
) -> HttpResponse:
    refused = _authenticate(request)
    if refused is not None:
        return _error(*refused, as_protobuf=as_protobuf)
    if content_type not in (PROTOBUF, JSON):
        return _error(
            415,
            UNSUPPORTED_TYPE.format(value=request.META.get("CONTENT_TYPE", "")[:100]),
            as_protobuf=False,
        )
    raw_encoding = request.headers.get("Content-Encoding", "").strip().lower()
    encoding = ENCODINGS.get(raw_encoding)
    if encoding is None:
        return _error(
            415,
            UNSUPPORTED_ENCODING.format(value=raw_encoding[:100]),
            as_protobuf=as_protobuf,
        )
    body = _read_body(request, settings.OTLP_MAX_BODY_BYTES)
    body = otlp.inflate(body, encoding, settings.OTLP_MAX_INFLATED_BYTES)
    message = otlp.parse_protobuf(body) if as_protobuf else otlp.parse_json(body)
    del body
    result = _ingest(message)
    reason = otlp.REJECTED_REASON.format(n=result.rejected) if result.rejected else ""
    return HttpResponse(
        otlp.response_body(result.rejected, reason, as_json=not as_protobuf),
        content_type=PROTOBUF if as_protobuf else JSON,
    )


def _ingest(message) -> otlp.IngestResult:
    """One transaction; once more with an empty cache if a cached id's row was deleted.

    Foreign keys are checked at commit (Django creates them deferred), so a usage row for
    a deployment deleted since it was cached fails there, as an IntegrityError; so does
    losing the race to create the same observed deployment or source.
    """
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return otlp.ingest(message, cache=otlp.RECEIVER_CACHE)
        except IntegrityError:
            otlp.RECEIVER_CACHE.clear()
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


# ---------------------------------------------------------------------------
# The usage panel of the deployment page
