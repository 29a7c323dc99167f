from __future__ import annotations

from django.urls import path

from governance import views, views_findings, views_tiers

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
        "decisions/<str:kind>/<int:pk>/last/",
        views.last_decision,
        name="last_decision",
    ),
    path("policy/", views.policy, name="policy"),
    path("findings/<int:pk>/", views_findings.finding_detail, name="finding_detail"),
    # Risk tiers (governance.tiers): the policy, a deployment's panel and its override.
    path("tiers/", views_tiers.tier_policy, name="tier_policy"),
    path(
        "deployments/<int:pk>/tier/",
        views_tiers.deployment_tier,
        name="deployment_tier",
    ),
    path(
        "deployments/<int:pk>/tier/override/",
        views_tiers.deployment_tier_override,
        name="deployment_tier_override",
    ),
    path(
        "deployments/<int:pk>/tier/end/",
        views_tiers.deployment_tier_end,
        name="deployment_tier_end",
    ),
]
