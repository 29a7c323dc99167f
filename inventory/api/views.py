"""Read-only API over the inventory. Thin: selectors decide what the caller may read.

Every endpoint needs a bearer token with the `read` scope (inventory.api.permissions), pages
by keyset on id (IdCursorPagination) and filters with the UI's FilterSets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.contrib.auth.decorators import login_not_required
from django.db.models import Model, Prefetch, QuerySet, prefetch_related_objects
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import viewsets

from inventory import filters, selectors
from inventory import models as m
from inventory.api import (
    schema,  # noqa: F401  (registers the bearer scheme with drf-spectacular)
    serializers,
)
from inventory.api.filters import UserFilterBackend
from inventory.api.pagination import IdCursorPagination
from inventory.api.permissions import HasReadScope


class InventoryViewSet(viewsets.ReadOnlyModelViewSet):
    """List and detail of one inventory model, through its selectors.

    Subclasses name the list selector, the detail selector and its id keyword; the selectors
    declare the joins, so a page costs a constant number of queries whatever its size.
    """

    permission_classes = [HasReadScope]
    filter_backends = [UserFilterBackend]
    pagination_class = IdCursorPagination
    lookup_value_regex = r"\d+"

    list_selector: ClassVar[Callable[..., QuerySet]]
    detail_selector: ClassVar[Callable[..., Model]]
    detail_id_kwarg: ClassVar[str]

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return self.queryset
        return self.prefetch(type(self).list_selector(user=self.request.user))

    def prefetch(self, queryset: QuerySet) -> QuerySet:
        return queryset

    def get_object(self) -> Model:
        obj = type(self).detail_selector(
            user=self.request.user, **{self.detail_id_kwarg: self.kwargs["pk"]}
        )
        self.check_object_permissions(self.request, obj)
        return obj


class TeamViewSet(InventoryViewSet):
    """Teams: the groups that own models, systems, deployments and identities."""

    queryset = m.Team.objects.none()
    serializer_class = serializers.TeamSerializer
    filterset_class = filters.TeamFilter
    list_selector = staticmethod(selectors.team_list)
    detail_selector = staticmethod(selectors.team_get_for_user)
    detail_id_kwarg = "team_id"


class AIModelViewSet(InventoryViewSet):
    """Models: what the organisation builds or buys."""

    queryset = m.AIModel.objects.none()
    serializer_class = serializers.AIModelSerializer
    filterset_class = filters.AIModelFilter
    list_selector = staticmethod(selectors.aimodel_list)
    detail_selector = staticmethod(selectors.aimodel_get_for_user)
    detail_id_kwarg = "model_id"


class ModelVersionViewSet(InventoryViewSet):
    """Model versions and their approval."""

    queryset = m.ModelVersion.objects.none()
    serializer_class = serializers.ModelVersionSerializer
    filterset_class = filters.ModelVersionFilter
    list_selector = staticmethod(selectors.modelversion_list)
    detail_selector = staticmethod(selectors.modelversion_get_for_user)
    detail_id_kwarg = "version_id"

    def prefetch(self, queryset: QuerySet) -> QuerySet:
        return queryset.select_related("approved_by")


class SystemViewSet(InventoryViewSet):
    """Systems: the applications, workflows and agents that invoke models."""

    queryset = m.System.objects.none()
    serializer_class = serializers.SystemSerializer
    filterset_class = filters.SystemFilter
    list_selector = staticmethod(selectors.system_list)
    detail_selector = staticmethod(selectors.system_get_for_user)
    detail_id_kwarg = "system_id"


class DeploymentViewSet(InventoryViewSet):
    """Deployments: running instances of a model, where they answer and who owns them."""

    queryset = m.Deployment.objects.none()
    serializer_class = serializers.DeploymentSerializer
    filterset_class = filters.DeploymentFilter
    list_selector = staticmethod(selectors.deployment_list)
    detail_selector = staticmethod(selectors.deployment_get_for_user)
    detail_id_kwarg = "deployment_id"

    def _visible_identities(self) -> Prefetch:
        return selectors.visible_prefetch(
            "identities", m.NonHumanIdentity, self.request.user, "id"
        )

    def prefetch(self, queryset: QuerySet) -> QuerySet:
        # The serializer shows these too; the pages' list does not need them.
        return queryset.select_related(
            "approved_version", "model__baseline_version", "model__owner", "system"
        ).prefetch_related(self._visible_identities())

    def get_object(self) -> Any:
        # The detail selector already joins what the serializer reads; add the list's rest.
        obj = super().get_object()
        prefetch_related_objects([obj], self._visible_identities())
        return obj


class IdentityViewSet(InventoryViewSet):
    """Non-human identities: the credentials machines hold, and what they can invoke."""

    queryset = m.NonHumanIdentity.objects.none()
    serializer_class = serializers.IdentitySerializer
    filterset_class = filters.IdentityFilter
    list_selector = staticmethod(selectors.identity_list)
    detail_selector = staticmethod(selectors.identity_get_for_user)
    detail_id_kwarg = "identity_id"

    def _visible_deployments(self) -> Prefetch:
        return selectors.visible_prefetch(
            "deployments", m.Deployment, self.request.user, "id"
        )

    def prefetch(self, queryset: QuerySet) -> QuerySet:
        return queryset.select_related("model").prefetch_related(
            self._visible_deployments()
        )

    def get_object(self) -> Any:
        obj = super().get_object()
        prefetch_related_objects([obj], self._visible_deployments())
        return obj


@csrf_exempt  # it changes nothing; a DELETE to an unknown path is a 404, not a CSRF 403
@login_not_required
def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """JSON 404 for unknown API paths; a missing trailing slash still redirects, as
    CommonMiddleware would have done without this catch-all."""
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.url_name != "not-found":
            query = request.META.get("QUERY_STRING", "")
            return HttpResponsePermanentRedirect(
                request.path + "/" + (f"?{query}" if query else "")
            )
    return JsonResponse({"detail": "Not found."}, status=404)
