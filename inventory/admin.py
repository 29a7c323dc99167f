"""/admin/ for administrators. Every save and delete here is audited like the UI's."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from inventory import history, permissions, services
from inventory import models as m
from inventory.snapshots import snapshot


class AuditedAdmin(admin.ModelAdmin):
    """Writes one audit event per create, change and delete, in the admin's own transaction.

    The "after" picture is taken once related objects (many-to-many) are saved, so it shows
    what was really stored.
    """

    list_per_page = 50
    show_full_result_count = False  # no COUNT(*) over the big tables

    # Runproof's roles, not Django's per-model permissions, decide what /admin/ allows.
    def has_module_permission(self, request: HttpRequest) -> bool:
        return permissions.is_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.is_admin(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return permissions.is_admin(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.is_admin(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.is_admin(request.user)

    def save_model(
        self, request: HttpRequest, obj: Model, form: Any, change: bool
    ) -> None:
        if not permissions.is_admin(request.user):
            raise PermissionDenied(permissions.ADMIN_ONLY)
        stored = type(obj)._default_manager.get(pk=obj.pk) if change else None
        changed = services.governed_changes(stored, obj) if stored is not None else []
        if changed:
            # The governed fields are read-only here; this guards a custom form too.
            raise PermissionDenied(
                services.GOVERNED_STATE_VIA_SERVICE.format(
                    fields=", ".join(changed).capitalize()
                )
            )
        request._audit_before = snapshot(stored) if stored is not None else None
        super().save_model(request, obj, form, change)

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        obj = form.instance
        before = getattr(request, "_audit_before", None)
        after = snapshot(obj)
        if before != after:
            services.change_record(
                actor=request.user,
                action=f"{obj._meta.model_name}.{'update' if change else 'create'}",
                target=obj,
                before=before,
                after=after,
            )
            services.hand_history(
                actor=request.user, deltas=history.diff_snapshots(obj, before, after)
            )

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        services.object_delete(actor=request.user, instance=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            services.object_delete(actor=request.user, instance=obj)


@admin.register(m.Team)
class TeamAdmin(AuditedAdmin):
    list_display = ["name", "slug"]
    search_fields = ["name"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["members"]


@admin.register(m.AIModel)
class AIModelAdmin(AuditedAdmin):
    list_display = ["name", "kind", "provider", "lifecycle", "team", "owner", "source"]
    list_filter = ["lifecycle", "kind", "source"]
    search_fields = ["name", "external_id"]
    raw_id_fields = ["team", "owner"]
    # Governed state: changed only through inventory.services (the model's page).
    readonly_fields = ["lifecycle", "baseline_version"]


@admin.register(m.ModelVersion)
class ModelVersionAdmin(AuditedAdmin):
    list_display = ["model", "version", "approval", "approved_at", "source"]
    list_filter = ["approval", "source"]
    search_fields = ["version", "model__name"]
    raw_id_fields = ["model"]
    list_select_related = ["model"]
    # Governed state: changed only through services.model_version_set_approval.
    readonly_fields = ["approval", "approved_by", "approved_at"]


@admin.register(m.System)
class SystemAdmin(AuditedAdmin):
    list_display = ["name", "kind", "team", "owner"]
    list_filter = ["kind"]
    search_fields = ["name"]
    raw_id_fields = ["team", "owner"]
    list_select_related = ["team", "owner"]


@admin.register(m.Deployment)
class DeploymentAdmin(AuditedAdmin):
    list_display = [
        "name",
        "model",
        "environment",
        "exposure",
        "status",
        "team",
        "owner",
        "last_seen_at",
    ]
    list_filter = [
        "environment",
        "exposure",
        "status",
        "write_access",
        "decision_making",
    ]
    search_fields = ["name", "endpoint", "external_id"]
    raw_id_fields = ["model", "observed_version", "system", "team", "owner"]
    list_select_related = ["model", "team", "owner"]
    # Governed state: changed only through inventory.services (the deployment's page).
    readonly_fields = ["status", "approved_version"]


@admin.register(m.Dependency)
class DependencyAdmin(AuditedAdmin):
    list_display = ["upstream", "downstream", "kind"]
    raw_id_fields = ["upstream", "downstream"]
    list_select_related = ["upstream", "downstream"]


@admin.register(m.NonHumanIdentity)
class NonHumanIdentityAdmin(AuditedAdmin):
    list_display = [
        "name",
        "kind",
        "provider",
        "status",
        "team",
        "owner",
        "last_used_at",
        "expires_at",
    ]
    list_filter = ["kind", "provider", "status"]
    search_fields = ["name", "external_id"]
    raw_id_fields = ["team", "owner", "deployments"]
    list_select_related = ["team", "owner"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records that are written only through their own services (tokens, audit events)."""

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


@admin.register(m.APIToken)
class APITokenAdmin(ReadOnlyAdmin):
    """Read-only here: tokens are issued and revoked on the API tokens page, which shows the
    secret once and records both actions."""

    list_display = [
        "name",
        "prefix",
        "scopes",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    readonly_fields = [
        f.name for f in m.APIToken._meta.fields if f.name != "token_hash"
    ]
    exclude = ["token_hash"]


# People and their roles: role changes are governance actions, so they are audited too.
User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class RunproofUserAdmin(AuditedAdmin, DjangoUserAdmin):
    """Django's user admin, following Runproof's roles and writing audit events; the
    snapshot records group (role) membership and never the password hash."""

    list_display = [
        "username",
        "email",
        "first_name",
        "last_name",
        "is_active",
        "is_staff",
    ]
    list_filter = ["is_active", "is_staff", "groups"]


@admin.register(m.UsageHour)
class UsageHourAdmin(ReadOnlyAdmin):
    list_display = [
        "deployment",
        "hour",
        "caller_service",
        "caller_user",
        "operation",
        "calls",
        "errors",
    ]
    list_select_related = ["deployment"]
    search_fields = ["caller_service", "caller_user", "deployment__name"]
