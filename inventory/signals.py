"""Signals inventory sends so that governance can act without inventory importing it.

`governed_change` is sent inside the writing transaction, so its receivers (the audit
trail) commit or roll back with the change itself.
"""

from __future__ import annotations

from django.dispatch import Signal

# kwargs: actor (User | None), actor_label (str), action (str), target (Model),
#         before (dict | None), after (dict | None), team_id (int | None)
governed_change = Signal()
