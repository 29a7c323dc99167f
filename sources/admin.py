"""/admin/ pages of the sources app. Saves go through sources.sync.services, so secrets are
encrypted and every change is audited as in the UI."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest

from inventory import permissions
from inventory.admin import ReadOnlyAdmin
from sources import models as sm
from sources.sync import services as source_services

# ---------------------------------------------------------------------------
# Data sources and what syncs record. Sources are written through
# sources.sync.services, so secrets are encrypted and every change is audited as in the UI.
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
        model = sm.DataSource
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


@admin.register(sm.DataSource)
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
    def stored_secrets(self, obj: sm.DataSource) -> str:
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
        self, request: HttpRequest, obj: sm.DataSource, form: Any, change: bool
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
        for field in sm.DataSource._meta.concrete_fields:
            setattr(obj, field.attname, getattr(created, field.attname))

    def delete_model(self, request: HttpRequest, obj: sm.DataSource) -> None:
        source_services.source_delete(actor=request.user, source=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            source_services.source_delete(actor=request.user, source=obj)


class SyncErrorInline(admin.TabularInline):
    model = sm.SyncError
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


@admin.register(sm.SyncRun)
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


@admin.register(sm.DeploymentEvent)
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
