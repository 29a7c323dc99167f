"""JSON-safe pictures of objects, for the audit trail's before and after."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

from django.db.models import Model

# Many-to-many relations worth recording, as sorted id lists.
TRACKED_M2M = {
    "nonhumanidentity": ["deployments"],
    "team": ["members"],
    "user": ["groups"],
}
# Never written to the audit trail: secrets, and bookkeeping the event's own time already says.
SKIPPED_FIELDS = {
    "token_hash",
    "password",
    "updated_at",
    "last_login",
    "secrets_encrypted",
    "content_hash",
    "seen_at",
}


def json_safe(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    return value


def snapshot(instance: Model) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if field.name in SKIPPED_FIELDS:
            continue
        data[field.attname] = json_safe(getattr(instance, field.attname))
    if instance.pk is not None:
        for name in TRACKED_M2M.get(instance._meta.model_name, []):
            data[name] = sorted(getattr(instance, name).values_list("pk", flat=True))
    return data


def diff(
    before: dict[str, Any] | None, after: dict[str, Any] | None
) -> dict[str, tuple[Any, Any]]:
    """Fields whose value changed, as (before, after) pairs."""
    before, after = before or {}, after or {}
    return {
        key: (before.get(key), after.get(key))
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }
