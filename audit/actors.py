"""Who did it: one actor type for a person, an API token, a source and the system.

Services pass whatever acted (a user, an `Actor`, or an object with an `audit_actor()`
method such as an API token or a data source); `as_actor` turns it into an `Actor`, so the
audit trail needs to know no other app's models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class ActorKind:
    PERSON = "person"
    TOKEN = "token"
    SOURCE = "source"
    SYSTEM = "system"

    ALL = (PERSON, TOKEN, SOURCE, SYSTEM)


@dataclass(frozen=True)
class Actor:
    kind: str
    label: str
    id: int | None = (
        None  # a person's user id; tokens and sources are named in the label
    )

    @classmethod
    def person(cls, user: Any) -> Actor:
        return cls(ActorKind.PERSON, user.get_username()[:200], user.pk)

    @classmethod
    def token(cls, prefix: str) -> Actor:
        return cls(ActorKind.TOKEN, f"token:{prefix}"[:200])

    @classmethod
    def source(cls, label: str) -> Actor:
        return cls(ActorKind.SOURCE, label[:200])

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(ActorKind.SYSTEM, (label or "system")[:200])

    @property
    def user_id(self) -> int | None:
        return self.id if self.kind == ActorKind.PERSON else None


SYSTEM = Actor.system()


def as_actor(actor: Any, label: str = "") -> Actor:
    """The `Actor` for what a caller passed. `label` names a system actor (a command, the
    schedule, a webhook delivery) when there is no person, token or source."""
    if isinstance(actor, Actor):
        return actor
    if actor is not None and hasattr(actor, "audit_actor"):
        return actor.audit_actor()
    if actor is not None and getattr(actor, "is_authenticated", False):
        if label:  # a person acting through a labelled path keeps the path's name
            return Actor(ActorKind.PERSON, label[:200], actor.pk)
        return Actor.person(actor)
    return Actor.system(label)
