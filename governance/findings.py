"""Reading findings: who may see which (selectors for the pages, the API and exports)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from governance.models import Finding
from inventory import permissions
from inventory.roles import Role


def finding_scope(
    queryset: QuerySet[Finding], user: AbstractBaseUser
) -> QuerySet[Finding]:
    """The findings a user may read: everything for the roles that read every team's
    objects; an owner, those of their teams, of subjects they own, and those assigned to
    them."""
    if not user.is_authenticated:
        return queryset.none()
    if permissions.reads_all(user):
        return queryset
    if not permissions.has_role(user, Role.OWNER):
        return queryset.none()
    return queryset.filter(
        Q(team_id__in=permissions.team_ids(user)) | Q(owner=user) | Q(assignee=user)
    )
