"""Writes to data sources: create, change, delete, and asking for a sync.

The UI, /admin/, the API and the `sources` command all call these, so every path checks the
same permission, validates settings with the kind's schema (`sources.sync.schema`), encrypts
secrets the same way and leaves the same audit events. Secret values never reach the audit
trail: events record which secret names were set or changed, nothing more.

Who may call them: administrators; API tokens with the `sources` scope; and the operator at
the shell (`actor=None`, which only management commands pass).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.template.defaultfilters import filesizeformat

from audit.actors import Actor
from inventory import models as m
from inventory import permissions
from inventory.services import change_record
from inventory.snapshots import snapshot
from sources import models as sm
from sources.connectors import CONNECTORS
from sources.sync import runner, secrets
from sources.sync.base import Setting, SourceKind
from sources.sync.schema import (  # noqa: F401  (callers and tests read them here)
    MAX_SETTING_CHARS,
    NOT_A_CHOICE,
    NOT_A_NUMBER,
    NOT_A_URL,
    NOT_TEXT,
    SETTING_REQUIRED,
    TOO_LONG,
    UNKNOWN_SETTING,
    blank,
)

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    User = AbstractBaseUser

UNKNOWN_KIND = "Unknown kind {kind!r}; choose from {choices}."
KIND_FIXED = "A source's kind cannot change; create another source."
NAME_TAKEN = "A source with this name already exists."
NAME_REQUIRED = "Give the source a name."
UNKNOWN_SECRET = "Unknown secret."
SECRET_REQUIRED = "This secret is required: enter it, or env:VARIABLE to read it from the environment."
BAD_ENV_NAME = "After env: give an environment variable name (letters, digits, _)."
SCHEDULE_RANGE = "Between 0 (on demand only) and 10080 minutes (a week)."
RUN_ACTIVE = "A run of this source is queued or running; wait for it to finish."
UPLOAD_TOO_BIG = "The file is {size}; the limit is {limit}."
UPLOAD_DUPLICATE = (
    "This file is the one run #{run} already synced ({when} UTC): the same content "
    "would change nothing, so no run was started. Upload a newer export."
)
MANAGE_SOURCES = (
    "Only an administrator (or a token with the 'sources' scope) can do this."
)

MAX_SCHEDULE_MINUTES = 7 * 24 * 60
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# ---------------------------------------------------------------------------
# Who may
# ---------------------------------------------------------------------------
def _token(actor: Any) -> m.APIToken | None:
    token = getattr(actor, "token", None)
    return token if isinstance(token, m.APIToken) else None


def can_manage(actor: Any) -> bool:
    """Administrators, tokens with the `sources` scope, and the operator (None)."""
    if actor is None:
        return True
    token = _token(actor)
    if token is not None:
        return m.APIToken.Scope.SOURCES in (token.scopes or [])
    return permissions.is_admin(actor)


def require_manage(actor: Any) -> None:
    if _token(actor) is not None or actor is None:
        if not can_manage(actor):
            raise PermissionDenied(MANAGE_SOURCES)
        return
    permissions.require_admin(actor)


def _audit_actor(actor: Any, actor_label: str) -> tuple[Any, str]:
    """(actor, label) for the audit trail: a token acts as itself (its own actor kind), the
    shell by its label; only a person is a user row."""
    token = _token(actor)
    if token is not None:
        who = token.audit_actor()
        return (Actor(who.kind, actor_label[:200]) if actor_label else who), ""
    if actor is None:
        return None, actor_label or "command"
    return actor, actor_label


# ---------------------------------------------------------------------------
# Kinds, settings and secrets
# ---------------------------------------------------------------------------
def connector_class(kind: str) -> type[SourceKind]:
    if kind not in CONNECTORS:
        raise ValidationError(
            {
                "kind": UNKNOWN_KIND.format(
                    kind=kind, choices=", ".join(sorted(CONNECTORS))
                )
            }
        )
    return runner.connector_class(kind)


def kind_choices() -> list[tuple[str, str]]:
    """(kind, label) of every connector that can be imported, in label order."""
    out = []
    for kind in CONNECTORS:
        try:
            cls = runner.connector_class(kind)
        except ImportError:
            continue  # a connector whose module is not installed is not offered
        out.append((kind, str(cls.label)))
    return sorted(out, key=lambda pair: pair[1].lower())


def _secrets_of(cls: type[SourceKind]) -> dict[str, Setting]:
    return cls.schema.secrets


def clean_settings(cls: type[SourceKind], raw: dict[str, Any]) -> dict[str, Any]:
    """Settings checked against the kind's schema (`sources.sync.schema.Schema.clean`).

    Errors are keyed "config.<setting>" so a form or the API can put each beside its field.
    """
    return cls.schema.clean(raw)


def merge_secrets(
    cls: type[SourceKind],
    stored: dict[str, str],
    given: dict[str, Any] | None,
    clear: Iterable[str] = (),
) -> dict[str, str]:
    """The secrets to store: a blank given value keeps the stored one; `clear` removes.

    A value may be `env:NAME`, read from the environment when the sync runs.
    """
    spec = _secrets_of(cls)
    errors: dict[str, list[str]] = {}
    out = {k: v for k, v in stored.items() if k in spec}
    for name in clear:
        if name not in spec:
            errors[f"secrets.{name}"] = [UNKNOWN_SECRET]
        out.pop(name, None)
    for name, value in (given or {}).items():
        if name not in spec:
            errors[f"secrets.{name}"] = [UNKNOWN_SECRET]
            continue
        if value is None or (isinstance(value, str) and value == ""):
            continue
        if not isinstance(value, str):
            errors[f"secrets.{name}"] = [NOT_TEXT]
            continue
        if len(value) > MAX_SETTING_CHARS:
            errors[f"secrets.{name}"] = [TOO_LONG.format(limit=MAX_SETTING_CHARS)]
            continue
        if value.startswith(secrets.ENV_PREFIX):
            var = value[len(secrets.ENV_PREFIX) :].strip()
            if not ENV_NAME.match(var):
                errors[f"secrets.{name}"] = [BAD_ENV_NAME]
                continue
            value = secrets.ENV_PREFIX + var
        out[name] = value
    for name, setting in spec.items():
        if setting.required and not out.get(name) and f"secrets.{name}" not in errors:
            errors[f"secrets.{name}"] = [SECRET_REQUIRED]
    if errors:
        raise ValidationError(errors)
    return out


def stored_secrets(source: sm.DataSource) -> dict[str, str]:
    """The source's stored secrets; ones that no longer decrypt (key changed) count as unset."""
    try:
        return secrets.decrypt(source.secrets_encrypted)
    except secrets.SecretError:
        return {}


def describe_secrets(source: sm.DataSource) -> dict[str, str]:
    """What may be shown back: {"name": "set" | "env:VAR"}."""
    return secrets.describe(stored_secrets(source))


def _secrets_note(
    before: dict[str, str], after: dict[str, str]
) -> dict[str, list[str]]:
    """The audit trail's view of secrets: names only, never values."""
    return {
        "secrets_set": sorted(after),
        "secrets_changed": sorted(
            name
            for name in set(before) | set(after)
            if before.get(name) != after.get(name)
        ),
    }


def _check_fields(
    *, name: str, schedule_minutes: int, errors: dict[str, list[str]]
) -> None:
    if blank(name):
        errors["name"] = [NAME_REQUIRED]
    if not 0 <= schedule_minutes <= MAX_SCHEDULE_MINUTES:
        errors["schedule_minutes"] = [SCHEDULE_RANGE]


def default_schedule(cls: type[SourceKind]) -> int:
    """Pull sources sync hourly by default; push and upload-only sources never on a schedule."""
    return 60 if cls.pull and cls.upload != "required" else 0


def source_check(
    *,
    kind: str,
    name: str,
    config: dict[str, Any],
    secrets_given: dict[str, Any] | None,
    clear: Iterable[str] = (),
    schedule_minutes: int,
    source: sm.DataSource | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Validate without writing: (clean settings, secrets to store). Forms call it in clean()."""
    cls = connector_class(kind)
    errors: dict[str, list[str]] = {}
    _check_fields(name=name, schedule_minutes=schedule_minutes, errors=errors)
    clash = sm.DataSource.objects.filter(name=name.strip())
    if source is not None:
        clash = clash.exclude(pk=source.pk)
    if name and clash.exists():
        errors["name"] = [NAME_TAKEN]
    clean, to_store = {}, {}
    try:
        clean = clean_settings(cls, config)
    except ValidationError as exc:
        for key, errs in exc.message_dict.items():
            errors.setdefault(key, []).extend(errs)
    try:
        to_store = merge_secrets(
            cls, stored_secrets(source) if source else {}, secrets_given, clear
        )
    except ValidationError as exc:
        for key, errs in exc.message_dict.items():
            errors.setdefault(key, []).extend(errs)
    if errors:
        raise ValidationError(errors)
    return clean, to_store


def _audit_picture(source: sm.DataSource, stored: dict[str, str]) -> dict[str, Any]:
    return {**snapshot(source), "secrets_set": sorted(stored)}


# ---------------------------------------------------------------------------
# Create, change, delete
# ---------------------------------------------------------------------------
@transaction.atomic
def source_create(
    *,
    actor: User | Any | None,
    name: str,
    kind: str,
    config: dict[str, Any] | None = None,
    secrets_given: dict[str, Any] | None = None,
    schedule_minutes: int | None = None,
    team: m.Team | None = None,
    enabled: bool = True,
    actor_label: str = "",
) -> sm.DataSource:
    require_manage(actor)
    cls = connector_class(kind)
    if schedule_minutes is None:
        schedule_minutes = default_schedule(cls)
    clean, to_store = source_check(
        kind=kind,
        name=name,
        config=config or {},
        secrets_given=secrets_given,
        schedule_minutes=schedule_minutes,
    )
    user, label = _audit_actor(actor, actor_label)
    source = sm.DataSource(
        name=name.strip(),
        kind=kind,
        enabled=enabled,
        config=clean,
        secrets_encrypted=secrets.encrypt(to_store),
        schedule_minutes=schedule_minutes,
        team=team,
        created_by=None if isinstance(user, Actor) else user,
    )
    # kind is checked against the registered connectors above, not the model's choices
    # (tests register connectors of their own).
    source.full_clean(exclude=["kind"])
    source.save()
    change_record(
        actor=user,
        actor_label=label,
        action="datasource.create",
        target=source,
        before=None,
        after={**_audit_picture(source, to_store), **_secrets_note({}, to_store)},
    )
    return source


_UNSET: Any = object()


@transaction.atomic
def source_update(
    *,
    actor: User | Any | None,
    source: sm.DataSource,
    name: str = _UNSET,
    kind: str = _UNSET,
    config: dict[str, Any] | None = None,
    replace_config: bool = False,
    secrets_given: dict[str, Any] | None = None,
    clear_secrets: Iterable[str] = (),
    schedule_minutes: int = _UNSET,
    team: m.Team | None = _UNSET,
    enabled: bool = _UNSET,
    actor_label: str = "",
) -> sm.DataSource:
    """Change a source. `config` is merged over the stored settings (None removes a key),
    or replaces them with `replace_config`; a blank secret keeps the stored one."""
    require_manage(actor)
    stored_row = sm.DataSource.objects.select_for_update().get(pk=source.pk)
    if kind is not _UNSET and kind != stored_row.kind:
        raise ValidationError({"kind": KIND_FIXED})
    stored = stored_secrets(stored_row)
    before = {**_audit_picture(stored_row, stored)}
    new_config = {} if replace_config else dict(stored_row.config)
    for key, value in (config or {}).items():
        if value is None:
            new_config.pop(key, None)
        else:
            new_config[key] = value
    new_name = stored_row.name if name is _UNSET else name
    new_schedule = (
        stored_row.schedule_minutes if schedule_minutes is _UNSET else schedule_minutes
    )
    clean, to_store = source_check(
        kind=stored_row.kind,
        name=new_name,
        config=new_config,
        secrets_given=secrets_given,
        clear=clear_secrets,
        schedule_minutes=new_schedule,
        source=stored_row,
    )
    source.name = new_name.strip()
    source.kind = stored_row.kind
    source.config = clean
    source.schedule_minutes = new_schedule
    if team is not _UNSET:
        source.team = team
    if enabled is not _UNSET:
        source.enabled = enabled
    if to_store != stored:
        source.secrets_encrypted = secrets.encrypt(to_store)
    else:
        source.secrets_encrypted = stored_row.secrets_encrypted
    source.full_clean(exclude=["kind"])
    source.save(
        update_fields=[
            "name",
            "config",
            "schedule_minutes",
            "team",
            "enabled",
            "secrets_encrypted",
            "updated_at",
        ]
    )
    after = _audit_picture(source, to_store)
    note = _secrets_note(stored, to_store)
    if after != before or note["secrets_changed"]:
        user, label = _audit_actor(actor, actor_label)
        change_record(
            actor=user,
            actor_label=label,
            action="datasource.update",
            target=source,
            before=before,
            after={**after, **note},
        )
    return source


@transaction.atomic
def source_delete(
    *, actor: User | Any | None, source: sm.DataSource, actor_label: str = ""
) -> None:
    """Delete a source and its run history. Rows it brought in stay, with their source label."""
    require_manage(actor)
    if sm.SyncRun.objects.filter(source=source, status__in=sm.SyncRun.ACTIVE).exists():
        raise ValidationError(RUN_ACTIVE)
    user, label = _audit_actor(actor, actor_label)
    change_record(
        actor=user,
        actor_label=label,
        action="datasource.delete",
        target=source,
        before=_audit_picture(source, stored_secrets(source)),
        after=None,
    )
    source.delete()


# ---------------------------------------------------------------------------
# Asking for a sync
# ---------------------------------------------------------------------------
def upload_too_big(upload: Any) -> str | None:
    """The error for a file over SOURCE_UPLOAD_MAX_BYTES, or None."""
    limit = django_settings.SOURCE_UPLOAD_MAX_BYTES
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        return UPLOAD_TOO_BIG.format(
            size=filesizeformat(size), limit=filesizeformat(limit)
        )
    return None


def upload_sha256(upload: Any) -> str:
    """The SHA-256 of an uploaded file, read in chunks; the file is rewound after."""
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    return digest.hexdigest()


def upload_duplicate(*, source: sm.DataSource, sha256: str) -> str | None:
    """The refusal for a file whose content the source's last kept run already synced.

    The last run that counts is the latest non-dry run that did not fail or get
    cancelled: after a failed run the same file may be sent again, and after another file
    (or a pull) it is a change back. One query on the (source, requested_at) index.
    """
    last = (
        sm.SyncRun.objects.filter(source=source, dry_run=False)
        .exclude(status__in=[sm.SyncRun.Status.FAILED, sm.SyncRun.Status.CANCELLED])
        .order_by("-requested_at", "-id")
        .only("pk", "upload_sha256", "requested_at")
        .first()
    )
    if last is None or last.upload_sha256 != sha256:
        return None
    return UPLOAD_DUPLICATE.format(
        run=last.pk, when=last.requested_at.strftime("%Y-%m-%d %H:%M")
    )


def sync_request(
    *,
    actor: User | Any | None,
    source: sm.DataSource,
    dry_run: bool = False,
    upload: Any = None,
    trigger: str | None = None,
    actor_label: str = "",
) -> tuple[sm.SyncRun, bool]:
    """Ask for a run of `source`; return (run, created). An active run is returned as is.

    Administrators, tokens with the `sources` scope and the shell may ask; the runner
    refuses what the source cannot do (push kinds, a missing or unwanted file).
    """
    require_manage(actor)
    if upload is not None:
        too_big = upload_too_big(upload)
        if too_big:
            raise ValidationError({"file": too_big})
    sha256 = upload_sha256(upload) if upload is not None else ""
    if sha256 and not dry_run:
        # Refused before any run exists: no failed run, and the source's health stays.
        duplicate = upload_duplicate(source=source, sha256=sha256)
        if duplicate:
            raise ValidationError({"file": duplicate})
    token = _token(actor)
    if trigger is None:
        if upload is not None:
            trigger = sm.SyncRun.Trigger.UPLOAD
        elif token is not None:
            trigger = sm.SyncRun.Trigger.API
        elif actor is None:
            trigger = sm.SyncRun.Trigger.COMMAND
        else:
            trigger = sm.SyncRun.Trigger.MANUAL
    user, label = _audit_actor(actor, actor_label)
    with transaction.atomic():
        run, created = runner.request_sync(
            source=source,
            trigger=trigger,
            actor=user,
            dry_run=dry_run,
            upload=upload,
            actor_label=label,
        )
        if created and sha256:
            # In the same transaction as the run (the worker is sent it on commit).
            sm.SyncRun.objects.filter(pk=run.pk).update(upload_sha256=sha256)
            run.upload_sha256 = sha256
    return run, created
