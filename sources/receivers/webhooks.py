"""Webhooks that sources push: each one only asks for a sync of its source.

`MlflowWebhookReceiver` is the receiver (decode -> aggregate -> apply); the view,
`sources.views_hooks.mlflow_webhook`, finds the source, reads the capped body and answers.

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
from collections.abc import Mapping
from dataclasses import dataclass, replace

from django.core.exceptions import ValidationError

from inventory import jsonsafe
from sources import models as sm
from sources.receivers.base import Receiver, ReceiverError
from sources.sync import runner, secrets

log = logging.getLogger(__name__)

MAX_SKEW_SECONDS = 5 * 60
SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
# Registry events; prompt and budget events say nothing about models or versions.
REGISTRY_ENTITIES = frozenset(
    {"registered_model", "model_version", "model_version_tag", "model_version_alias"}
)

UNSIGNED = (
    "The request is not signed: X-MLflow-Signature, X-MLflow-Timestamp and "
    "X-MLflow-Delivery-Id are required."
)
BAD_SIGNATURE = "The signature does not match this source's webhook secret."
STALE = "The timestamp is more than five minutes from now; the delivery is refused."
NOT_JSON = "The body is not a JSON object."
SECRETS_UNREADABLE = "This source's secrets cannot be decrypted; ask an administrator."
SOURCE_REFUSED = "This source does not accept syncs now: {reason}"


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


@dataclass(frozen=True)
class Delivery:
    """A verified delivery; `wanted` once aggregate() found it is a registry event."""

    delivery_id: str
    event: dict
    wanted: bool = False

    @property
    def entity(self) -> str:
        return str(self.event.get("entity"))[:100]


@dataclass(frozen=True)
class WebhookResult:
    """The sync a delivery asked for, or the entity it was ignored for."""

    run: sm.SyncRun | None = None
    created: bool = False
    ignored: str = ""


class MlflowWebhookReceiver(Receiver[Delivery, Delivery, WebhookResult]):
    """One MLflow registry delivery: verify and parse it, keep registry events, ask a sync.

    `decode` checks the signature (over the delivery id, timestamp and body), then the
    timestamp, then that the body is a JSON object; `aggregate` drops events that say
    nothing about models (not `wanted`); `apply` asks the runner for a webhook sync of the source.
    """

    kind = "mlflow"

    def __init__(self, *, source: sm.DataSource) -> None:
        self.source = source

    def decode(self, body: bytes, headers: Mapping[str, str]) -> Delivery:
        source = self.source
        header = headers.get(SIGNATURE_HEADER, "")
        timestamp = headers.get(TIMESTAMP_HEADER, "")
        delivery_id = headers.get(DELIVERY_HEADER, "")
        if not (header and timestamp and delivery_id):
            raise ReceiverError(401, UNSIGNED)
        try:
            stored = secrets.resolve(secrets.decrypt(source.secrets_encrypted))
        except secrets.SecretError:
            log.warning(
                "MLflow webhook for source %s: its secrets do not decrypt", source.pk
            )
            raise ReceiverError(503, SECRETS_UNREADABLE) from None
        secret = stored.get("webhook_secret", "")
        if not secret or not signature_matches(
            header, expected_signature(secret, delivery_id, timestamp, body)
        ):
            raise ReceiverError(401, BAD_SIGNATURE)
        # Checked after the signature, which covers the timestamp: a forged one fails above.
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise ReceiverError(401, STALE) from None
        if abs(time.time() - sent_at) > MAX_SKEW_SECONDS:
            raise ReceiverError(401, STALE)
        try:
            event = jsonsafe.loads(body)
        except ValueError:  # not JSON, bad UTF-8, NaN, deep nesting, NUL (jsonsafe)
            raise ReceiverError(400, NOT_JSON) from None
        if not isinstance(event, dict):
            raise ReceiverError(400, NOT_JSON)
        return Delivery(delivery_id=delivery_id, event=event)

    def aggregate(self, message: Delivery) -> Delivery:
        wanted = message.event.get("entity") in REGISTRY_ENTITIES
        return replace(message, wanted=wanted)

    def apply(self, batch: Delivery) -> WebhookResult:
        if not batch.wanted:
            return WebhookResult(ignored=batch.entity)
        try:
            run, created = runner.request_sync(
                source=self.source,
                trigger=sm.SyncRun.Trigger.WEBHOOK,
                actor_label=f"mlflow webhook {batch.delivery_id[:100]}",
            )
        except ValidationError as exc:
            raise ReceiverError(
                409, SOURCE_REFUSED.format(reason=" ".join(exc.messages))
            ) from None
        return WebhookResult(run=run, created=created)
