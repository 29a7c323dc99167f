"""Governance actions on inventory objects. Each checks permission and the from-state,
writes in one transaction and records the audit event in that same transaction."""

from __future__ import annotations

from inventory import services as inventory_services

# The approval service lives in inventory.services (the registry's sync calls it too);
# these names stay here for governance's pages and tags.
APPROVAL_TRANSITIONS = inventory_services.APPROVAL_TRANSITIONS
APPROVAL_VERBS = inventory_services.APPROVAL_VERBS
APPROVAL_NOTE_MAX = inventory_services.APPROVAL_NOTE_MAX
APPROVAL_TRANSITION_NOT_ALLOWED = inventory_services.APPROVAL_TRANSITION_NOT_ALLOWED
APPROVAL_UNKNOWN = inventory_services.APPROVAL_UNKNOWN
APPROVAL_NOTE_TOO_LONG = inventory_services.APPROVAL_NOTE_TOO_LONG
approval_targets = inventory_services.approval_targets
model_version_set_approval = inventory_services.model_version_set_approval
LABELS = dict(inventory_services.Approval.choices)
