"""/api/v1/: the inventory (read-only), sources and sync runs, CI/CD deployment events,
and the OpenAPI document."""

from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.views import SpectacularJSONAPIView
from rest_framework.permissions import AllowAny
from rest_framework.routers import SimpleRouter

from governance import api as governance_api
from governance import api_gate, api_proof
from inventory.api import views
from sources.api import views as views_sources
from sources.api import views_events

app_name = "api"

router = SimpleRouter()
router.register("models", views.AIModelViewSet, basename="aimodel")
router.register("versions", views.ModelVersionViewSet, basename="modelversion")
router.register("systems", views.SystemViewSet, basename="system")
router.register("deployments", views.DeploymentViewSet, basename="deployment")
router.register("identities", views.IdentityViewSet, basename="identity")
router.register("teams", views.TeamViewSet, basename="team")
router.register("sources", views_sources.SourceViewSet, basename="source")
router.register("sync-runs", views_sources.SyncRunViewSet, basename="syncrun")
router.register("findings", governance_api.FindingViewSet, basename="finding")

urlpatterns = [
    # Public: the schema describes the API, it reveals no inventory data.
    path(
        "openapi.json",
        SpectacularJSONAPIView.as_view(
            authentication_classes=[], permission_classes=[AllowAny]
        ),
        name="openapi",
    ),
    # The proof card (issue 10), before the router's deployments/models routes.
    path(
        "deployments/<int:pk>/proof",
        api_proof.DeploymentProofView.as_view(),
        name="deployment-proof",
    ),
    path(
        "models/<int:pk>/proof", api_proof.ModelProofView.as_view(), name="model-proof"
    ),
    *router.urls,
    # With or without the slash: a POST that CommonMiddleware redirected would lose its body.
    re_path(
        r"^deployment-events/?$",
        views_events.DeploymentEventView.as_view(),
        name="deployment-events",
    ),
    re_path(r"^gate/?$", api_gate.GateView.as_view(), name="gate"),
    # Anything else under /api/v1/ answers in JSON too, never the site's HTML 404 page.
    re_path(r"^", views.not_found, name="not-found"),  # any rest, newlines included
]
