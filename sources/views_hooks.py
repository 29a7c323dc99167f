"""Webhooks that sources push: each one only asks for a sync of its source.

MLflow signs its registry webhooks the Standard Webhooks way:
`X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, "<delivery id>.<timestamp>.<body>")>`
with `X-MLflow-Delivery-Id` and `X-MLflow-Timestamp` (Unix seconds). The secret is the
source's `webhook_secret`. A delivery older (or further ahead) than five minutes is refused,
so a captured request cannot be replayed later. A webhook never writes inventory rows
itself: the sync it asks for reads the registry, and polling stays the safety net (MLflow
gives up on a delivery after three retries).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from inventory import jsonsafe
from sources import models as sm
from sources.sync import runner, secrets

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_SKEW_SECONDS = 5 * 60
SIGNATURE_HEADER = "HTTP_X_MLFLOW_SIGNATURE"
TIMESTAMP_HEADER = "HTTP_X_MLFLOW_TIMESTAMP"
DELIVERY_HEADER = "HTTP_X_MLFLOW_DELIVERY_ID"
SIGNATURE_VERSION = "v1"
# Registry events; prompt and budget events say nothing about models or versions.
REGISTRY_ENTITIES = frozenset(
    {"registered_model", "model_version", "model_version_tag", "model_version_alias"}
)

NO_SOURCE = "No MLflow source with this id."
TOO_LARGE = f"The body is larger than {MAX_BODY_BYTES} bytes."
BAD_LENGTH = "The Content-Length header is not a number."
UNSIGNED = (
    "The request is not signed: X-MLflow-Signature, X-MLflow-Timestamp and "
    "X-MLflow-Delivery-Id are required."
)
BAD_SIGNATURE = "The signature does not match this source's webhook secret."
STALE = "The timestamp is more than five minutes from now; the delivery is refused."
NOT_JSON = "The body is not a JSON object."
SECRETS_UNREADABLE = "This source's secrets cannot be decrypted; ask an administrator."
SOURCE_REFUSED = "This source does not accept syncs now: {reason}"


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def expected_signature(
    secret: str, delivery_id: str, timestamp: str, body: bytes
) -> str:
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_matches(header: str, expected: str) -> bool:
    """Any of the space-separated signatures matches (several during a secret rotation)."""
    matched = False
    for candidate in header.split():
        version, _, value = candidate.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            continue
        # Compare every candidate, in constant time each.
        matched |= hmac.compare_digest(candidate.encode(), expected.encode())
    return matched


def _read_body(request: HttpRequest) -> bytes | JsonResponse:
    length = request.META.get("CONTENT_LENGTH") or "0"
    try:
        declared = int(length)
    except ValueError:
        return _error(BAD_LENGTH, 400)
    if declared > MAX_BODY_BYTES:
        return _error(TOO_LARGE, 413)
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _error(TOO_LARGE, 413)
    return body


@csrf_exempt
@login_not_required
@never_cache
@require_POST
def mlflow_webhook(request: HttpRequest, source_id: int) -> JsonResponse:
    source = sm.DataSource.objects.filter(
        pk=source_id, kind=sm.DataSource.Kind.MLFLOW
    ).first()
    if source is None:
        return _error(NO_SOURCE, 404)
    body = _read_body(request)
    if isinstance(body, JsonResponse):
        return body
    header = request.META.get(SIGNATURE_HEADER, "")
    timestamp = request.META.get(TIMESTAMP_HEADER, "")
    delivery_id = request.META.get(DELIVERY_HEADER, "")
    if not (header and timestamp and delivery_id):
        return _error(UNSIGNED, 401)
    try:
        stored = secrets.resolve(secrets.decrypt(source.secrets_encrypted))
    except secrets.SecretError:
        log.warning(
            "MLflow webhook for source %s: its secrets do not decrypt", source.pk
        )
        return _error(SECRETS_UNREADABLE, 503)
    secret = stored.get("webhook_secret", "")
    if not secret or not signature_matches(
        header, expected_signature(secret, delivery_id, timestamp, body)
    ):
        return _error(BAD_SIGNATURE, 401)
    # Checked after the signature, which covers the timestamp: a forged one fails above.
    try:
        sent_at = int(timestamp)
    except ValueError:
        return _error(STALE, 401)
    if abs(time.time() - sent_at) > MAX_SKEW_SECONDS:
        return _error(STALE, 401)
    try:
        event = jsonsafe.loads(body)
    except ValueError:  # not JSON, bad UTF-8, NaN, deep nesting, NUL (jsonsafe)
        return _error(NOT_JSON, 400)
    if not isinstance(event, dict):
        return _error(NOT_JSON, 400)
    entity = event.get("entity")
    if entity not in REGISTRY_ENTITIES:
        return JsonResponse({"ignored": str(entity)[:100]}, status=200)
    try:
        run, created = runner.request_sync(
            source=source,
            trigger=sm.SyncRun.Trigger.WEBHOOK,
            actor_label=f"mlflow webhook {delivery_id[:100]}",
        )
    except ValidationError as exc:
        return _error(SOURCE_REFUSED.format(reason=" ".join(exc.messages)), 409)
    return JsonResponse({"run": run.pk, "created": created}, status=202)
