"""Template helpers for governance partials that other apps' pages include."""

from __future__ import annotations

from typing import Any

from django import template

from governance import services
from inventory import models as m
from inventory import permissions

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
    return {
        "allowed": True,
        "buttons": [
            {"value": value, "label": label, "css": css}
            for value in services.approval_targets(version.approval)
            for label, css in [APPROVAL_BUTTONS[value]]
        ],
    }
