from __future__ import annotations

from django.urls import path

from governance import views, views_approved_state, views_findings

app_name = "governance"
urlpatterns = [
    path("audit/", views.audit_list, name="audit_list"),
    path("audit/<int:seq>/", views.audit_detail, name="audit_detail"),
    path(
        "versions/<int:pk>/approval/",
        views.version_approval,
        name="version_approval",
    ),
    path(
        "models/<int:pk>/lifecycle/", views.aimodel_lifecycle, name="aimodel_lifecycle"
    ),
    path("models/<int:pk>/baseline/", views.aimodel_baseline, name="aimodel_baseline"),
    path(
        "deployments/<int:pk>/status/",
        views.deployment_status,
        name="deployment_status",
    ),
    path("deployments/<int:pk>/pin/", views.deployment_pin, name="deployment_pin"),
    path(
        "deployments/<int:pk>/approved-state/",
        views_approved_state.deployment_approved_state,
        name="deployment_approved_state",
    ),
    path(
        "decisions/<str:kind>/<int:pk>/last/",
        views.last_decision,
        name="last_decision",
    ),
    path("policy/", views.policy, name="policy"),
    path("findings/<int:pk>/", views_findings.finding_detail, name="finding_detail"),
]
