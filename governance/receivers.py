"""Governance listens to inventory here, so inventory never imports governance."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from governance.audit import audit_event_record
from inventory.signals import governed_change


@receiver(governed_change, dispatch_uid="governance.audit_governed_change")
def audit_governed_change(sender: type, **kwargs: Any) -> None:
    audit_event_record(
        actor=kwargs["actor"],
        actor_label=kwargs.get("actor_label", ""),
        action=kwargs["action"],
        target=kwargs["target"],
        before=kwargs.get("before"),
        after=kwargs.get("after"),
        team_id=kwargs.get("team_id"),
    )
