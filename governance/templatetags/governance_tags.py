"""Template helpers for governance partials that other apps' pages include."""

from __future__ import annotations

from typing import Any

from django import template

from audit.models import AuditEvent
from governance import services
from inventory import models as m
from inventory import permissions
from inventory import services as inventory_services
from inventory.widgets import LookupInput

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


def _version_input(input_id: str, model_field_id: str, current: Any) -> str:
    """A type-ahead over the model's versions (no query here, however many it has): the
    service refuses any that is not approved, with its reason."""
    widget = LookupInput(
        "modelversion",
        attrs={
            "class": "form-control form-control-sm mb-2",
            "id": input_id,
            "hx-include": f"#{model_field_id}",
            "placeholder": "Empty: none. Type a version, pick from the list",
        },
    )
    widget.current_label = current.version if current is not None else ""
    return widget.render("version", current.pk if current is not None else None)


@register.simple_tag(takes_context=True)
def governed_actions(context: template.Context, obj: Any) -> dict[str, Any]:
    """What the committee may do on a model's or deployment's page (no query: the
    versions come from a type-ahead; nothing at all for other roles)."""
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
            "version_input": _version_input(
                "model-baseline", "baseline-model", obj.baseline_version
            ),
        }
    return {
        "allowed": True,
        "status": [
            {"value": value, "label": label, "css": css}
            for value in inventory_services.deployment_status_targets(obj.status)
            for label, css in [STATUS_BUTTONS[value]]
        ],
        "version_input": _version_input(
            "deployment-pin", "pin-model", obj.approved_version
        ),
    }


# The committee's decisions on each kind: the audit action's verb, as the page says it,
# and the key its note is kept under in the event (inventory.services).
DECISION_WORDS = {
    "approve": "Approved",
    "reject": "Rejected",
    "deprecate": "Deprecated",
    "retire": "Retired",
    "reopen": "Reopened for review",
    "develop": "Moved back to development",
    "activate": "Made active",
    "reactivate": "Reactivated",
    "quarantine": "Quarantined",
    "withdraw": "Withdrawn",
}
DECISIONS: dict[type, tuple[str, tuple[str, ...], str]] = {
    m.ModelVersion: (
        "modelversion",
        tuple(inventory_services.APPROVAL_VERBS.values()),
        "approval_note",
    ),
    m.AIModel: (
        "aimodel",
        tuple(inventory_services.LIFECYCLE_VERBS.values()),
        "lifecycle_note",
    ),
    m.Deployment: (
        "deployment",
        tuple(inventory_services.DEPLOYMENT_STATUS_VERBS.values()),
        "status_note",
    ),
}


@register.simple_tag
def last_decision(obj: Any) -> dict[str, Any] | None:
    """The latest committee decision on `obj` (approval, lifecycle or status) and its note,
    from the audit trail: one query on the (object_type, object_id) index. Called only
    inside the committee's card, so other roles' pages pay nothing."""
    kind = DECISIONS.get(type(obj))
    if kind is None or obj.pk is None:
        return None
    prefix, verbs, note_key = kind
    event = (
        AuditEvent.objects.filter(
            object_type=obj._meta.label_lower,
            object_id=str(obj.pk),
            action__in=[f"{prefix}.{verb}" for verb in verbs],
        )
        .only("seq", "occurred_at", "actor_label", "action", "after")
        .order_by("-seq")
        .first()
    )
    if event is None:
        return None
    return {
        "event": event,
        "decision": DECISION_WORDS.get(event.action.partition(".")[2], event.action),
        "note": (event.after or {}).get(note_key, ""),
    }
