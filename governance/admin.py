"""The audit trail in /admin/: read-only, like the table itself."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from governance.models import AuditCheckpoint, AuditEvent
from inventory import permissions


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False

    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.is_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.is_admin(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
