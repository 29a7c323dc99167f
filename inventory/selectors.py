"""Reads of the inventory, already narrowed to what the user may see, with their joins declared."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet
from django.http import Http404

from inventory import models as m
from inventory import permissions

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    User = AbstractBaseUser


def policy_current() -> m.Policy:
    """The policy row (one query); its defaults if no row was stored yet."""
    return m.Policy.objects.filter(pk=m.Policy.SINGLETON_ID).first() or m.Policy()


def team_list(*, user: User) -> QuerySet[m.Team]:
    return permissions.scope(m.Team.objects.all(), user)


def aimodel_list(*, user: User) -> QuerySet[m.AIModel]:
    return permissions.scope(m.AIModel.objects.select_related("team", "owner"), user)


def modelversion_list(*, user: User) -> QuerySet[m.ModelVersion]:
    return permissions.scope(m.ModelVersion.objects.select_related("model"), user)


def system_list(*, user: User) -> QuerySet[m.System]:
    return permissions.scope(m.System.objects.select_related("team", "owner"), user)


def deployment_list(*, user: User) -> QuerySet[m.Deployment]:
    return permissions.scope(
        # Only what the list shows: each extra join here cost ~7 ms of PostgreSQL planning
        # per page at the bench scale (16 ms with six joins, 1.8 ms with these four).
        m.Deployment.objects.select_related(
            "model", "observed_version", "team", "owner"
        ).with_silent_hours(),
        user,
    )


def identity_list(*, user: User) -> QuerySet[m.NonHumanIdentity]:
    return permissions.scope(
        m.NonHumanIdentity.objects.select_related("team", "owner").with_silent_hours(),
        user,
    )


def team_get_for_user(*, user: User, team_id: int) -> m.Team:
    return permissions.get_for_user(m.Team.objects.all(), user, team_id)


def aimodel_get_for_user(*, user: User, model_id: int) -> m.AIModel:
    return permissions.get_for_user(
        m.AIModel.objects.select_related("team", "owner", "baseline_version"),
        user,
        model_id,
    )


def modelversion_get_for_user(*, user: User, version_id: int) -> m.ModelVersion:
    return permissions.get_for_user(
        m.ModelVersion.objects.select_related(
            "model__team", "model__owner", "approved_by"
        ),
        user,
        version_id,
    )


def system_get_for_user(*, user: User, system_id: int) -> m.System:
    return permissions.get_for_user(
        m.System.objects.select_related("team", "owner"), user, system_id
    )


def deployment_get_for_user(*, user: User, deployment_id: int) -> m.Deployment:
    return permissions.get_for_user(
        # Every relation the page shows, so the query count never depends on which are set.
        # (Planning this join for one id costs ~1 ms; the list keeps fewer joins: see above.)
        m.Deployment.objects.select_related(
            "model__baseline_version",
            "observed_version",
            "approved_version",
            "model__owner",
            "system",
            "team",
            "owner",
        ).with_silent_hours(),
        user,
        deployment_id,
    )


def identity_get_for_user(*, user: User, identity_id: int) -> m.NonHumanIdentity:
    return permissions.get_for_user(
        m.NonHumanIdentity.objects.select_related(
            "team", "owner", "model"
        ).with_silent_hours(),
        user,
        identity_id,
    )


# Related lists on detail pages are bounded: a detail page shows the first RELATED_LIMIT
# and links to the full, filtered list.
RELATED_LIMIT = 25


def deployment_identities(
    *, user: User, deployment: m.Deployment
) -> list[m.NonHumanIdentity]:
    return list(
        permissions.scope(
            deployment.identities.select_related("team", "owner"), user
        ).order_by("name")[:RELATED_LIMIT]
    )


def deployment_dependencies(
    *, user: User, deployment: m.Deployment
) -> tuple[list, list]:
    # Two plain queries: one query with a row number per direction (tried) cost twice the
    # CPU and four times the PostgreSQL time at the bench scale.
    visible = permissions.scope(m.Deployment.objects.all(), user).values("pk")
    upstream = list(
        m.Dependency.objects.filter(downstream=deployment, upstream__in=visible)
        .select_related("upstream__model")
        .order_by("upstream__name")[:RELATED_LIMIT]
    )
    downstream = list(
        m.Dependency.objects.filter(upstream=deployment, downstream__in=visible)
        .select_related("downstream__model")
        .order_by("downstream__name")[:RELATED_LIMIT]
    )
    return upstream, downstream


def identity_deployments(
    *, user: User, identity: m.NonHumanIdentity
) -> list[m.Deployment]:
    return list(
        permissions.scope(
            m.Deployment.objects.filter(identities=identity)
            .select_related("model")
            .with_silent_hours(),
            user,
        ).order_by("name")[:RELATED_LIMIT]
    )


def apitoken_list() -> QuerySet[m.APIToken]:
    """Every API token, newest first. Administrators only: callers check."""
    return m.APIToken.objects.select_related("identity", "created_by").order_by(
        "-created_at", "-id"
    )


def apitoken_get(*, token_id: int) -> m.APIToken:
    token = m.APIToken.objects.select_related("identity").filter(pk=token_id).first()
    if token is None:
        raise Http404
    return token


def person_list(*, user: User) -> QuerySet:
    """People the user may pick as an owner: everyone for read-all roles, else their teams'."""
    people = get_user_model().objects.filter(is_active=True).order_by("username")
    if permissions.reads_all(user):
        return people
    return people.filter(teams__in=permissions.team_ids(user)).distinct()


def visible_prefetch(
    relation: str,
    related: type[m.Deployment | m.NonHumanIdentity],
    user: User,
    *order: str,
) -> Prefetch:
    """`relation` prefetched with only the rows `user` may read, their id and name: one
    query for a whole page (the API's and the CSV's identities and deployments)."""
    visible = permissions.scope(related.objects.only("id", "name"), user)
    return Prefetch(relation, queryset=visible.order_by(*order))
