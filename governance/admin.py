"""The audit trail in /admin/: read-only, like the table itself."""

from __future__ import annotations

from django.contrib import admin

from audit.models import AuditCheckpoint, AuditEvent
from inventory.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "seq",
        "occurred_at",
        "actor_label",
        "action",
        "object_type",
        "object_repr",
    ]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_repr", "object_id"]


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(ReadOnlyAdmin):
    list_display = ["seq", "taken_at", "hash"]
