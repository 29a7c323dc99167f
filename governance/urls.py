from __future__ import annotations

from django.urls import path

from governance import views, views_findings, views_pipelines, views_timeline

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
    path("timeline/<str:subject>/<int:pk>/", views_timeline.timeline, name="timeline"),
    path(
        "pipelines/deployment/<int:pk>/",
        views_pipelines.pipeline_deployment,
        name="pipeline_deployment",
    ),
    path(
        "pipelines/system/<int:pk>/",
        views_pipelines.pipeline_system,
        name="pipeline_system",
    ),
]
