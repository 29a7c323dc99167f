"""GCP service-account keys, from an uploaded JSON export (no API access needed).

Accepted shapes, read as a stream:
- the REST answer for one service account, `{"keys": [...]}` (and `{}` when it has none);
- gcloud's `gcloud iam service-accounts keys list --format=json`, a list of keys;
- many service accounts at once: a list of either, or several of them one after another.

Each user-managed key becomes a `NonHumanIdentity` of kind "access_key": a key is a
long-lived secret for a cloud API, like an AWS access key, while "service_account" would
be the account itself, which may hold up to ten keys. Google-managed (SYSTEM_MANAGED) keys
are rotated by Google and never leave it; they are skipped, not reported as errors. Last
use is not in this export (it comes from Policy Intelligence), so last_used_at stays empty.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import ijson

from inventory import models as m
from sources.connectors.credentials import (
    FILE_EMPTY,
    FILE_NOT_JSON,
    Credential,
    CredentialConnector,
    entry_excerpt,
    json_entries,
    key_settings,
    parse_time,
    rules_setting,
)
from sources.sync.base import (
    FetchContext,
    Malformed,
    Record,
    SourceConfigError,
)

log = logging.getLogger(__name__)

NEVER_EXPIRES_YEAR = 9999
SHORT_ID = 8

NOT_A_KEYS_EXPORT = (
    "This file is not a GCP service-account key export: expected "
    '{{"keys": [...]}} or a list of keys (gcloud iam service-accounts keys list '
    "--format=json); its first entry has {found}."
)
NOT_A_KEY = "Not a service-account key: it has no name like projects/…/serviceAccounts/…/keys/…."


class GcpKeysConnector(CredentialConnector):
    kind = "gcp_keys"
    label = "GCP service-account keys (JSON export)"
    description = (
        "User-managed service-account keys with their validity; linked to models by "
        "naming rules on the service account's name."
    )
    pull = False
    upload = "required"
    upload_json = True
    upload_help = (
        "JSON from `gcloud iam service-accounts keys list --iam-account=SA "
        "--managed-by=user --format=json`, or the REST API's "
        "projects.serviceAccounts.keys.list answer; several accounts may be "
        "concatenated or put in one list."
    )
    revocable = ()
    settings_spec = (
        *key_settings("model", "label"),
        rules_setting(),
    )

    def fetch(self, ctx: FetchContext) -> Iterator[Record | Malformed]:
        self.check_rules()
        path = ctx.upload_path
        if not path or os.path.getsize(path) == 0:
            raise SourceConfigError(FILE_EMPTY)
        model_key = ctx.options.model_key
        deployment_key = ctx.options.deployment_key
        skipped = 0
        first = True
        with open(path, "rb") as fp:
            try:
                for entry in json_entries(fp):
                    keys = _keys_in(entry)
                    if keys is None:
                        if first:
                            raise SourceConfigError(
                                NOT_A_KEYS_EXPORT.format(found=_describe(entry))
                            )
                        yield Malformed("", NOT_A_KEY, entry_excerpt(entry))
                        continue
                    first = False
                    for key in keys:
                        if isinstance(key, dict) and key.get("keyType") == (
                            "SYSTEM_MANAGED"
                        ):
                            skipped += 1
                            continue
                        yield _record(key, model_key, deployment_key)
            except ijson.JSONError as exc:
                raise SourceConfigError(
                    FILE_NOT_JSON.format(error=" ".join(str(exc).split())[:200])
                ) from exc
        if skipped:
            log.info(
                "gcp_keys source %s: %s system-managed keys skipped",
                ctx.source.pk,
                skipped,
            )


def _keys_in(entry: Any) -> list[Any] | None:
    """The keys an entry holds, or None when it is not a key export at all."""
    if isinstance(entry, list):
        found: list[Any] = []
        for item in entry:
            inner = _keys_in(item)
            found.extend(inner if inner is not None else [item])
        return found
    if not isinstance(entry, dict):
        return None
    if "keys" in entry:
        keys = entry["keys"]
        return keys if isinstance(keys, list) else [keys]
    if not entry:
        return []  # the REST API's answer for an account without user-managed keys
    if _is_key_name(entry.get("name")):
        return [entry]
    return None


def _is_key_name(name: Any) -> bool:
    return isinstance(name, str) and "/serviceAccounts/" in name and "/keys/" in name


def _record(key: Any, model_key: str, deployment_key: str) -> Record | Malformed:
    if not isinstance(key, dict) or not _is_key_name(key.get("name")):
        return Malformed(
            str(key.get("name", ""))[:500] if isinstance(key, dict) else "",
            NOT_A_KEY,
            entry_excerpt(key),
        )
    name: str = key["name"]
    email = name.split("/serviceAccounts/", 1)[1].split("/keys/", 1)[0]
    key_id = name.rsplit("/keys/", 1)[1]
    if not email or not key_id:
        return Malformed(name[:500], NOT_A_KEY, entry_excerpt(key))
    try:
        issued_at = parse_time(key.get("validAfterTime"))
        expires_at = parse_time(key.get("validBeforeTime"))
    except ValueError as exc:
        return Malformed(
            name[:500], f"A time is not readable: {exc}.", entry_excerpt(key)
        )
    if expires_at is not None and expires_at.year >= NEVER_EXPIRES_YEAR:
        expires_at = None  # Google's way of saying the key never expires
    disabled = key.get("disabled", False)
    if not isinstance(disabled, bool):
        return Malformed(
            name[:500], "disabled is not true or false.", entry_excerpt(key)
        )
    labels = key.get("labels") if isinstance(key.get("labels"), dict) else {}
    return Record(
        name,
        Credential(
            name=f"{email} key {key_id[:SHORT_ID]}",
            kind=m.NonHumanIdentity.Kind.ACCESS_KEY,
            provider="gcp",
            subject=email.split("@", 1)[0],
            status=(
                m.NonHumanIdentity.Status.DISABLED
                if disabled
                else m.NonHumanIdentity.Status.ACTIVE
            ),
            issued_at=issued_at,
            expires_at=expires_at,
            model_name=str(labels.get(model_key) or "") if model_key else "",
            deployment_name=(
                str(labels.get(deployment_key) or "") if deployment_key else ""
            ),
        ),
    )


def _describe(entry: Any) -> str:
    if isinstance(entry, dict):
        names = ", ".join(sorted(str(k) for k in entry)[:8])
        return f"the fields {names}" if names else "no fields"
    return f"a {type(entry).__name__} value"
