"""Template helpers for governance partials that other apps' pages include."""

from __future__ import annotations

from typing import Any

from django import template

from governance import services
from inventory import models as m
from inventory import permissions
from inventory import services as inventory_services

register = template.Library()

# Button style per target state.
APPROVAL_BUTTONS = {
    m.ModelVersion.Approval.APPROVED: ("Approve", "btn-success"),
    m.ModelVersion.Approval.REJECTED: ("Reject", "btn-outline-danger"),
    m.ModelVersion.Approval.DEPRECATED: ("Deprecate", "btn-outline-warning"),
    m.ModelVersion.Approval.RETIRED: ("Retire", "btn-outline-secondary"),
    m.ModelVersion.Approval.PENDING: ("Reopen for review", "btn-outline-primary"),
}


@register.simple_tag(takes_context=True)
def approval_actions(
    context: template.Context, version: m.ModelVersion
) -> dict[str, Any]:
    """What the approval form offers this user for this version (no database query)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not permissions.can_approve_versions(user):
        return {"allowed": False, "buttons": []}
    targets = services.approval_targets(version.approval)
    return {
        "allowed": True,
        "values": targets,
        "buttons": [
            {"value": value, "label": label, "css": css}
            for value in targets
            for label, css in [APPROVAL_BUTTONS[value]]
        ],
    }


LIFECYCLE_LABELS = dict(m.AIModel.Lifecycle.choices)
STATUS_BUTTONS = {
    m.Deployment.Status.ACTIVE: ("Reactivate", "btn-outline-success"),
    m.Deployment.Status.QUARANTINED: ("Quarantine", "btn-outline-warning"),
    m.Deployment.Status.WITHDRAWN: ("Withdraw", "btn-outline-danger"),
}
BASELINE_CHOICES_LIMIT = 50


def _approved_versions(model_id: int) -> list[m.ModelVersion]:
    return list(
        m.ModelVersion.objects.filter(
            model_id=model_id, approval=m.ModelVersion.Approval.APPROVED
        ).order_by("-created_at", "-id")[:BASELINE_CHOICES_LIMIT]
    )


@register.simple_tag(takes_context=True)
def governed_actions(context: template.Context, obj: Any) -> dict[str, Any]:
    """What the committee may do on a model's or deployment's page (one query, for the
    approved versions a baseline may be; none for other roles)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not permissions.can_approve_versions(user):
        return {"allowed": False}
    if isinstance(obj, m.AIModel):
        return {
            "allowed": True,
            "lifecycle": [
                {"value": value, "label": LIFECYCLE_LABELS[value]}
                for value in inventory_services.lifecycle_targets(obj.lifecycle)
            ],
            "versions": _approved_versions(obj.pk),
        }
    return {
        "allowed": True,
        "status": [
            {"value": value, "label": label, "css": css}
            for value in inventory_services.deployment_status_targets(obj.status)
            for label, css in [STATUS_BUTTONS[value]]
        ],
        "versions": _approved_versions(obj.model_id),
    }
