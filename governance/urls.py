from __future__ import annotations

from django.urls import path

from governance import (
    dashboard,
    views,
    views_approved_state,
    views_findings,
    views_gate,
    views_pipelines,
    views_proof,
    views_tiers,
    views_timeline,
)

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
    path("findings/", views_findings.finding_list, name="finding_list"),
    path("findings/bulk/", views_findings.finding_bulk, name="finding_bulk"),
    path("findings/<int:pk>/", views_findings.finding_detail, name="finding_detail"),
    path(
        "findings/<int:pk>/<str:action>/",
        views_findings.finding_action,
        name="finding_action",
    ),
    path("notifications/", views_findings.notification_list, name="notification_list"),
    path(
        "notifications/read/",
        views_findings.notification_read,
        name="notification_read",
    ),
    path(
        "notifications/count/",
        views_findings.notification_count,
        name="notification_count",
    ),
    # The proof card (issue 10): the page; ?format=json and ?format=pdf download it.
    path(
        "deployments/<int:pk>/proof/",
        views_proof.deployment_proof,
        name="deployment_proof",
    ),
    path("models/<int:pk>/proof/", views_proof.aimodel_proof, name="aimodel_proof"),
    path(
        "dashboard/proof-card/",
        dashboard.dashboard_proof_card,
        name="dashboard_proof_card",
    ),
    path("gate/", views_gate.gate_decision_list, name="gate_decision_list"),
    path(
        "gate/<int:pk>/", views_gate.gate_decision_detail, name="gate_decision_detail"
    ),
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
