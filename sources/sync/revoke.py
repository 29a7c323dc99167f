"""Withdrawing a credential or a version at the source that reported it.

`revoke_at_source()` finds the data source that owns the object (its `source` column is
"<kind>:<source id>"), asks that source's connector to revoke it (deactivate an IAM key,
revoke a Vault token, drop a registry alias, whatever the connector can do) and, only when
the source did it, records the result and the audit event in one transaction. A refusal
raises RevokeError with a message for the user; it is logged, not audited, because nothing
changed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Model

from audit.actors import as_actor
from inventory import history, permissions
from inventory import models as m
from inventory.services import change_record
from inventory.snapshots import snapshot
from sources import models as sm
from sources.sync import runner, secrets
from sources.sync.base import RevokeError, SyncFailure

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    User = AbstractBaseUser

log = logging.getLogger(__name__)

NOT_FROM_SOURCE = (
    "{obj} cannot be revoked at its source: it was not brought in by a data source."
)
SOURCE_GONE = "{obj} cannot be revoked at its source: its data source no longer exists."
NOT_REVOCABLE = (
    "{obj} cannot be revoked at its source: {label} sources cannot revoke it."
)
ALREADY_REVOKED = "{obj} is already revoked."
SOURCE_REFUSED = "{label} did not revoke {obj}: {error}"
SOURCE_BROKE = (
    "{label} did not revoke {obj}: unexpected error ({error}). The attempt is in the "
    "server log."
)


def owning_source(obj: Model) -> sm.DataSource | None:
    """The data source whose label is in obj.source, or None for hand-entered rows."""
    kind, _, pk = str(getattr(obj, "source", "") or "").partition(":")
    if not pk.isdigit():
        return None
    return sm.DataSource.objects.filter(pk=int(pk), kind=kind).first()


def revoke_at_source(*, actor: User | None, obj: Model, actor_label: str = "") -> str:
    """Revoke `obj` at its source and record it; return what the source did, in words.

    `actor` None is for the system (a command, an automated response), which says who it
    is in `actor_label` ("system" when it does not). Raises PermissionDenied for non-administrators and
    RevokeError (shown to the user) when the source cannot or will not revoke.
    """
    if actor is not None:
        permissions.require_admin(actor)
    elif not actor_label:
        actor_label = "system"
    if not getattr(obj, "source", "") or ":" not in obj.source:
        raise RevokeError(NOT_FROM_SOURCE.format(obj=obj))
    source = owning_source(obj)
    if source is None:
        raise RevokeError(SOURCE_GONE.format(obj=obj))
    connector = runner.connector_for(source)
    if not connector.revocable or not isinstance(obj, connector.revocable):
        raise RevokeError(NOT_REVOCABLE.format(obj=obj, label=connector.label))
    if (
        isinstance(obj, m.NonHumanIdentity)
        and obj.status == m.NonHumanIdentity.Status.REVOKED
    ):
        raise RevokeError(ALREADY_REVOKED.format(obj=obj))

    who = getattr(actor, "username", None) or actor_label
    try:
        message = connector.revoke(obj, runner.fetch_context(source))
    except RevokeError as exc:
        log.warning(
            "revoke of %s %s at source %s by %s refused: %s",
            obj._meta.model_name,
            obj.pk,
            source.pk,
            who,
            exc,
        )
        raise
    except (SyncFailure, secrets.SecretError) as exc:
        log.warning(
            "revoke of %s %s at source %s by %s failed: %s",
            obj._meta.model_name,
            obj.pk,
            source.pk,
            who,
            exc,
        )
        raise RevokeError(
            SOURCE_REFUSED.format(label=source.name, obj=obj, error=exc)
        ) from exc
    except Exception as exc:
        log.exception(
            "revoke of %s %s at source %s by %s broke",
            obj._meta.model_name,
            obj.pk,
            source.pk,
            who,
        )
        raise RevokeError(
            SOURCE_BROKE.format(label=source.name, obj=obj, error=type(exc).__name__)
        ) from exc

    _record(
        actor=actor,
        actor_label=actor_label,
        obj=obj,
        connector=connector,
        source=source,
        message=message,
    )
    return message


@transaction.atomic
def _record(
    *,
    actor: User | None,
    actor_label: str,
    obj: Model,
    connector: Any,
    source: sm.DataSource,
    message: str,
) -> None:
    """The object's new state and the audit event, together or not at all.

    An identity takes the status its connector gives revoked credentials (an IAM key is
    "disabled", since it can be re-activated; a token is "revoked"). A model version is
    left as it is: its approval follows the registry, which the next sync reads.
    """
    current = type(obj)._default_manager.select_for_update().get(pk=obj.pk)
    before = snapshot(current)
    if isinstance(current, m.NonHumanIdentity):
        current.status = getattr(
            connector, "revoked_status", m.NonHumanIdentity.Status.REVOKED
        )
        current.save(update_fields=["status", "updated_at"])
        obj.status = current.status
    after = snapshot(current)
    deltas = history.diff_snapshots(current, before, after)
    history.record_changes(
        deltas=deltas, actor=as_actor(actor, actor_label), source=source.source_label
    )
    history.announce(
        objects=[(current._meta.label_lower, current.pk)], source=source.source_label
    )
    after["revoked_at_source"] = {"source": source.pk, "result": message}
    change_record(
        actor=actor,
        actor_label=actor_label,
        action=f"{current._meta.model_name}.revoke_at_source",
        target=current,
        before=before,
        after=after,
    )
