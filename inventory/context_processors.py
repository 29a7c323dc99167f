from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from inventory import permissions
from inventory.roles import ROLE_SLUGS


def roles(request: HttpRequest) -> dict[str, Any]:
    """What the navigation needs to know about the signed-in user. Lazy: no query unless used."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    class Perms:
        @property
        def is_admin(self) -> bool:
            return permissions.is_admin(user)

        @property
        def reads_all(self) -> bool:
            return permissions.reads_all(user)

        @property
        def read_only(self) -> bool:
            return permissions.is_read_only(user)

        @property
        def role_names(self) -> list[str]:
            return sorted(r for r in permissions.roles(user) if r in ROLE_SLUGS)

    return {"rp": Perms()}
