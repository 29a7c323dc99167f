"""POST /v1/traces: the OTLP/HTTP traces receiver (protobuf or JSON, gzip or deflate).

Clients are the OpenTelemetry SDK exporters and collectors, authenticated by a Runproof API
token with the `telemetry` scope (`Authorization: Bearer rp_…`). The answers follow the
OTLP/HTTP specification: 200 with an ExportTraceServiceResponse in the request's encoding;
4xx errors with a google.rpc.Status, as protobuf for a protobuf request and as JSON
otherwise (a request whose type is refused gets JSON); 503 with Retry-After when the
database cannot take the write, which the exporters retry. A bad request is never a 500
and never half-written: everything one request writes is in one transaction.

The view is HTTP only (method, token, the capped read, the answer's encoding); what the
body means is `sources.receivers.otlp.OtlpReceiver`'s: decode -> aggregate -> apply.

The body is read from the stream with a cap rather than through `request.body`: Django's
DATA_UPLOAD_MAX_MEMORY_SIZE would answer its own 400 for a large export, and the OTLP
limits (`OTLP_MAX_BODY_BYTES`, `OTLP_MAX_INFLATED_BYTES`) are what apply here.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from inventory import services
from sources.receivers import otlp

log = logging.getLogger(__name__)

PROTOBUF = otlp.PROTOBUF
JSON = otlp.JSON
READ_CHUNK = 64 * 1024
RETRY_AFTER_SECONDS = 5

METHOD_NOT_ALLOWED = "Only POST is accepted."
UNAUTHENTICATED = "A bearer token with the telemetry scope is required."
BAD_TOKEN = "Invalid, expired or revoked token."
NO_SCOPE = "This token does not have the telemetry scope."
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
        return _receive(request, as_protobuf)
    except otlp.OtlpError as exc:
        return _error(exc.status, exc.message, as_protobuf=as_protobuf)
    except DatabaseError:
        # The token check or the write: the database is down or refused. Exporters
        # retry a 503 after Retry-After; nothing was written (one transaction).
        log.exception("OTLP export could not be written")
        return _error(503, UNAVAILABLE, as_protobuf=as_protobuf)


def _receive(request: HttpRequest, as_protobuf: bool) -> HttpResponse:
    refused = _authenticate(request)
    if refused is not None:
        return _error(*refused, as_protobuf=as_protobuf)
    receiver = otlp.OtlpReceiver(max_inflated=settings.OTLP_MAX_INFLATED_BYTES)
    receiver.check_headers(request.headers)  # 415 before the body is read
    body = _read_body(request, settings.OTLP_MAX_BODY_BYTES)
    message = receiver.decode(body, request.headers)
    del body
    result = receiver.apply(receiver.aggregate(message))
    reason = otlp.REJECTED_REASON.format(n=result.rejected) if result.rejected else ""
    return HttpResponse(
        otlp.response_body(result.rejected, reason, as_json=not as_protobuf),
        content_type=PROTOBUF if as_protobuf else JSON,
    )


# ---------------------------------------------------------------------------
# The usage panel of the deployment page
