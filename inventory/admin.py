"""/admin/ for administrators. Every save and delete here is audited like the UI's."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from inventory import models as m
from inventory import permissions, services
from inventory.snapshots import snapshot
from inventory.sync import services as source_services


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
        request._audit_before = (
            snapshot(type(obj)._default_manager.get(pk=obj.pk)) if change else None
        )
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


@admin.register(m.ModelVersion)
class ModelVersionAdmin(AuditedAdmin):
    list_display = ["model", "version", "approval", "approved_at", "source"]
    list_filter = ["approval", "source"]
    search_fields = ["version", "model__name"]
    raw_id_fields = ["model", "approved_by"]
    list_select_related = ["model"]


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
    raw_id_fields = [
        "model",
        "observed_version",
        "approved_version",
        "system",
        "team",
        "owner",
    ]
    list_select_related = ["model", "team", "owner"]


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


# ---------------------------------------------------------------------------
# Data sources and what syncs record. Sources are written through
# inventory.sync.services, so secrets are encrypted and every change is audited as in the UI.
# ---------------------------------------------------------------------------
SECRETS_HELP = (
    "One name=value a line; name=env:VARIABLE reads it from the environment when "
    "syncing. Leave a secret out to keep what is stored. Values are never shown again."
)


class DataSourceAdminForm(forms.ModelForm):
    secrets_input = forms.CharField(
        label="Secrets",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
        help_text=SECRETS_HELP,
    )
    clear_secrets = forms.CharField(
        required=False,
        help_text="Names of stored secrets to remove, separated by commas.",
    )

    class Meta:
        model = m.DataSource
        fields = ["name", "kind", "enabled", "schedule_minutes", "team", "config"]

    def secret_values(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for line in (self.cleaned_data.get("secrets_input") or "").splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise ValidationError(
                    {"secrets_input": "Write each secret as name=value."}
                )
            values[name.strip()] = value
        return values

    def cleared(self) -> list[str]:
        text = self.cleaned_data.get("clear_secrets") or ""
        return [name.strip() for name in text.split(",") if name.strip()]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        config = data.get("config")
        if config is not None and not isinstance(config, dict):
            self.add_error("config", 'Enter a JSON object, e.g. {"url": "https://…"}.')
            return data
        if self.errors:
            return data
        source = self.instance if self.instance.pk else None
        try:
            source_services.source_check(
                kind=source.kind if source else data.get("kind", ""),
                name=data.get("name") or "",
                config=config or {},
                secrets_given=self.secret_values(),
                clear=self.cleared(),
                schedule_minutes=data.get("schedule_minutes") or 0,
                source=source,
            )
        except ValidationError as exc:
            for key, messages in exc.message_dict.items():
                field = {"config": "config", "secrets": "secrets_input"}.get(
                    key.split(".", 1)[0], key
                )
                if field not in self.fields or key == NON_FIELD_ERRORS:
                    field = None
                prefix = f"{key.split('.', 1)[1]}: " if "." in key else ""
                for message in messages:
                    self.add_error(field, prefix + message)
        return data


@admin.register(m.DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    form = DataSourceAdminForm
    list_display = [
        "name",
        "kind",
        "health",
        "enabled",
        "schedule_minutes",
        "last_success_at",
        "last_error_at",
    ]
    list_filter = ["kind", "health", "enabled"]
    search_fields = ["name"]
    raw_id_fields = ["team"]
    list_select_related = ["team"]
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fixed = [
            "stored_secrets",
            "health",
            "last_run_at",
            "last_success_at",
            "last_error_at",
            "last_error",
            "created_by",
            "created_at",
        ]
        return ["kind", *fixed] if obj is not None else fixed

    @admin.display(description="Stored secrets")
    def stored_secrets(self, obj: m.DataSource) -> str:
        described = source_services.describe_secrets(obj)
        return ", ".join(f"{k}: {v}" for k, v in sorted(described.items())) or "none"

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
        self, request: HttpRequest, obj: m.DataSource, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        common = {
            "actor": request.user,
            "name": data["name"],
            "config": data.get("config") or {},
            "secrets_given": form.secret_values(),
            "schedule_minutes": data["schedule_minutes"],
            "team": data.get("team"),
            "enabled": data.get("enabled", False),
        }
        if change:
            source_services.source_update(
                source=obj,
                replace_config=True,
                clear_secrets=form.cleared(),
                **common,
            )
            return
        created = source_services.source_create(kind=data["kind"], **common)
        # The admin goes on with its own instance (the log entry, the redirect).
        for field in m.DataSource._meta.concrete_fields:
            setattr(obj, field.attname, getattr(created, field.attname))

    def delete_model(self, request: HttpRequest, obj: m.DataSource) -> None:
        source_services.source_delete(actor=request.user, source=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            source_services.source_delete(actor=request.user, source=obj)


class SyncErrorInline(admin.TabularInline):
    model = m.SyncError
    fields = ["external_id", "reason", "excerpt", "created_at"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return permissions.is_admin(request.user)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(m.SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    """Read-only: runs are asked for on the source's page, the API or the command."""

    list_display = [
        "id",
        "source",
        "status",
        "trigger",
        "dry_run",
        "requested_at",
        "finished_at",
        "seen",
        "created",
        "updated",
        "gone",
        "errors",
    ]
    list_filter = ["status", "trigger", "dry_run"]
    list_select_related = ["source"]
    search_fields = ["source__name"]
    inlines = [SyncErrorInline]


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


@admin.register(m.DeploymentEvent)
class DeploymentEventAdmin(ReadOnlyAdmin):
    list_display = [
        "received_at",
        "model_name",
        "version",
        "environment",
        "endpoint",
        "pipeline",
        "pipeline_run",
        "sent_by",
    ]
    list_filter = ["environment"]
    list_select_related = ["sent_by"]
    search_fields = ["model_name", "endpoint", "pipeline_run", "commit"]
