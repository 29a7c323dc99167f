"""Who may read and change what. Every view, API endpoint, export and service asks here.

Rules (documented in the README, "Roles"):
- Administrators read and change everything, and alone delete objects, edit teams and
  issue API tokens.
- Risk committee members, compliance officers and auditors read everything; the risk
  committee alone (with administrators) sets a model version's approval.
- Model owners read and change only what they own or their teams own; another team's
  object does not exist for them (404, never its data).
- Auditors change nothing.
- API tokens (machines) with the `read` scope read everything and change nothing here;
  the endpoints that write (telemetry, deployment events) check their own scopes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db.models import CharField, F, Model, Q, QuerySet, Value
from django.db.models.functions import Cast
from django.http import Http404

from inventory import models as m
from inventory.querysets import AnyOf
from inventory.roles import READ_ALL_ROLES, Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    User = AbstractBaseUser | AnonymousUser

NOT_YOURS = "You can only change what you or your teams own."
ADMIN_ONLY = "Only an administrator can do this."
APPROVAL_RISK_ONLY = "Only the risk committee can change a version's approval."
TEAM_REQUIRED = "Choose one of your teams."

# For each governed model: the path to its owning team and to its accountable person.
OWNERSHIP: dict[type[Model], tuple[str, str | None]] = {
    m.Team: ("id", None),
    m.AIModel: ("team_id", "owner_id"),
    m.ModelVersion: ("model__team_id", "model__owner_id"),
    m.System: ("team_id", "owner_id"),
    m.Deployment: ("team_id", "owner_id"),
    m.NonHumanIdentity: ("team_id", "owner_id"),
    m.Dependency: ("downstream__team_id", "downstream__owner_id"),
}
# Who else reads an object with no accountable person of its own: a deployment nobody owns
# (one discovered from traces) is its model's owner's to see, shown as inherited. It stays
# ownerless (querysets.ownerless_q); seeing it does not make it theirs to change.
INHERITED_READER: dict[type[Model], tuple[str, str]] = {
    m.Deployment: ("owner", "model__owner_id"),
}
# The foreign key to that model, whose rows the reader owns (`owned_model_ids`): a scope
# compares it with their ids rather than joining every row to its model, which hid from
# PostgreSQL how few rows an owner sees (an owner's deployments sorted by team walked all
# 50,000 through an index, 40 ms, for their 237).
INHERITED_VIA: dict[type[Model], str] = {m.Deployment: "model_id"}


def _api_token(user: User) -> m.APIToken | None:
    """The token behind an API principal (see inventory.api.authentication), if any."""
    token = getattr(user, "token", None)
    return token if isinstance(token, m.APIToken) else None


def _membership(user: User, attribute: str) -> frozenset:
    """One of the sets `_load_membership` keeps on a person's user object (read once per
    request); empty for anonymous users and API tokens."""
    if not user.is_authenticated or _api_token(user) is not None:
        return frozenset()
    if getattr(user, attribute, None) is None:
        _load_membership(user)
    return getattr(user, attribute)


def roles(user: User) -> frozenset[str]:
    """The user's role names, read once per request and kept on the user object."""
    return _membership(user, "_runproof_roles")


def _load_membership(user: User) -> None:
    """The user's role names, team ids and the ids of the models they own, in one query
    (every page needs them for an owner), kept on the user object for the rest of the
    request."""
    text = CharField()
    groups = user.groups.annotate(
        entry=Value("role", output_field=text), entry_key=F("name")
    ).values_list("entry", "entry_key")
    teams = (
        m.Team.members.through.objects.filter(user_id=user.pk)
        .annotate(
            entry=Value("team", output_field=text),
            entry_key=Cast("team_id", output_field=text),
        )
        .values_list("entry", "entry_key")
    )
    models = (
        m.AIModel.objects.filter(owner_id=user.pk)
        .order_by()
        .annotate(
            entry=Value("model", output_field=text),
            entry_key=Cast("id", output_field=text),
        )
        .values_list("entry", "entry_key")
    )
    names: set[str] = set()
    ids: set[int] = set()
    owned: set[int] = set()
    for kind, key in groups.union(teams, models, all=True):
        if kind == "role":
            names.add(key)
        elif kind == "team":
            ids.add(int(key))
        else:
            owned.add(int(key))
    if user.is_superuser:
        names.add(Role.ADMIN)
    user._runproof_roles = frozenset(names)
    user._runproof_team_ids = frozenset(ids)
    user._runproof_model_ids = frozenset(owned)


def team_ids(user: User) -> frozenset[int]:
    if not user.is_authenticated:
        return frozenset()
    cached = getattr(user, "_runproof_team_ids", None)
    if cached is None and _api_token(user) is None:
        _load_membership(user)
        cached = user._runproof_team_ids
    if cached is None:
        cached = frozenset(
            m.Team.objects.filter(members=user).values_list("id", flat=True)
        )
        user._runproof_team_ids = cached
    return cached


def owned_model_ids(user: User) -> frozenset[int]:
    """The ids of the models whose accountable person the user is (read with the roles,
    `_load_membership`)."""
    return _membership(user, "_runproof_model_ids")


def has_role(user: User, *wanted: Role) -> bool:
    return bool(roles(user) & set(wanted))


def is_admin(user: User) -> bool:
    return has_role(user, Role.ADMIN)


def reads_all(user: User) -> bool:
    """Machines read the whole inventory with a token that has the read scope."""
    token = _api_token(user)
    if token is not None:
        return m.APIToken.Scope.READ in (token.scopes or [])
    return bool(roles(user) & READ_ALL_ROLES)


def is_read_only(user: User) -> bool:
    """Auditors (and users with no role) change nothing, whatever else they hold."""
    return not has_role(user, Role.ADMIN, Role.OWNER, Role.RISK)


def scope(queryset: QuerySet, user: User) -> QuerySet:
    """Narrow a queryset to what the user may read."""
    if not user.is_authenticated:
        return queryset.none()
    if reads_all(user):
        return queryset
    if not has_role(user, Role.OWNER):
        return queryset.none()
    team_path, owner_path = OWNERSHIP[queryset.model]
    condition = Q(**{f"{team_path}__in": team_ids(user)})
    if owner_path:
        condition |= Q(**{owner_path: user.pk})
    if queryset.model in INHERITED_READER:
        own, _ = INHERITED_READER[queryset.model]
        owned = owned_model_ids(user)
        if owned:
            via = INHERITED_VIA[queryset.model]
            condition |= Q(**{f"{own}__isnull": True}) & Q(AnyOf(F(via), sorted(owned)))
    return queryset.filter(condition)


def get_for_user(queryset: QuerySet, user: User, pk: Any) -> Model:
    """One object the user may read, or 404 whether it is missing or not theirs."""
    try:
        return scope(queryset, user).get(pk=pk)
    except (queryset.model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404 from exc


def _owning_team_and_person(obj: Model) -> tuple[int | None, int | None]:
    if isinstance(obj, m.Team):
        return obj.pk, None
    if isinstance(obj, m.ModelVersion):
        model = obj.model
        return model.team_id, model.owner_id
    if isinstance(obj, m.Dependency):
        downstream = obj.downstream
        return downstream.team_id, downstream.owner_id
    return obj.team_id, obj.owner_id


def owns(user: User, obj: Model) -> bool:
    team_id, person_id = _owning_team_and_person(obj)
    return (team_id is not None and team_id in team_ids(user)) or (
        person_id is not None and person_id == user.pk
    )


def can_create(user: User, model_cls: type[Model]) -> bool:
    if is_admin(user):
        return True
    return model_cls is not m.Team and has_role(user, Role.OWNER)


def can_change(user: User, obj: Model) -> bool:
    if is_admin(user):
        return True
    if isinstance(obj, m.Team):
        return False
    return has_role(user, Role.OWNER) and owns(user, obj)


def can_delete(user: User, obj: Model) -> bool:
    return is_admin(user)


def can_approve_versions(user: User) -> bool:
    return has_role(user, Role.ADMIN, Role.RISK)


def require_change(user: User, obj: Model) -> None:
    if not can_change(user, obj):
        raise PermissionDenied(ADMIN_ONLY if isinstance(obj, m.Team) else NOT_YOURS)


def require_admin(user: User) -> None:
    if not is_admin(user):
        raise PermissionDenied(ADMIN_ONLY)
