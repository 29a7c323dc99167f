"""Governance pages: the audit log (list, detail, CSV) and a version's approval."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from audit import chain as audit
from audit.models import AuditEvent
from governance import filters, selectors, services, tables
from governance.filters import KNOWN_ACTIONS
from inventory import permissions
from inventory import selectors as inventory_selectors
from inventory import services as inventory_services
from inventory.lists import ListPage, keyset_list
from inventory.snapshots import diff

AUDIT_SORTS = {"seq": "seq"}
AUDIT_DEFAULT_SORT = "-seq"
AUDIT_EXPORT_COLUMNS = [
    "seq",
    "occurred_at",
    "actor_id",
    "actor_label",
    "ip_address",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "team_id",
    "before",
    "after",
    "prev_hash",
    "hash",
]
# Inventory detail pages by recorded object type, for "open the object" links.
OBJECT_PAGES = {
    "inventory.team": "inventory:team_detail",
    "inventory.aimodel": "inventory:aimodel_detail",
    "inventory.modelversion": "inventory:modelversion_detail",
    "inventory.system": "inventory:system_detail",
    "inventory.deployment": "inventory:deployment_detail",
    "inventory.nonhumanidentity": "inventory:identity_detail",
    "sources.datasource": "sources:source_detail",
    "inventory.datasource": "sources:source_detail",  # events written before the move
    "governance.gatedecision": "governance:gate_decision_detail",
}


# ---------------------------------------------------------------------------
# Audit log
# ---------------------------------------------------------------------------
def _json_cell(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


AUDIT_LIST = ListPage(
    title="Audit log",
    description="Every governed change, append-only and hash-chained: who did what to "
    "which object, and when.",
    filterset=filters.AuditEventFilter,
    table=tables.AuditEventTable,
    sorts=AUDIT_SORTS,
    default_sort=AUDIT_DEFAULT_SORT,
    export_columns=[
        (name, (lambda e, n=name: _json_cell(getattr(e, n))))
        if name in {"before", "after"}
        else (name, name)
        for name in AUDIT_EXPORT_COLUMNS
    ],
    export_name="audit",
    noun="event",
    header_template="governance/_audit_list_header.html",
    filters_template="governance/_audit_list_filters.html",
)


@require_GET
@vary_on_headers("HX-Request")  # never let a cache serve the fragment as the page
def audit_list(request: HttpRequest) -> HttpResponse:
    events = selectors.audit_event_list(user=request.user)  # 403 for roles without it
    return keyset_list(
        request,
        page=AUDIT_LIST,
        base=events,
        context={
            "known_actions": KNOWN_ACTIONS,
            # Chain status is the whole trail's: shown to the roles that read all of it.
            "chain": selectors.audit_chain_status()
            if permissions.reads_all(request.user)
            else None,
        },
    )


def _object_url(event: AuditEvent) -> str:
    name = OBJECT_PAGES.get(event.object_type)
    if name is None or event.action.endswith(".delete"):
        return ""
    try:
        return reverse(name, args=[event.object_id])
    except NoReverseMatch:
        return ""


@require_GET
def audit_detail(request: HttpRequest, seq: int) -> HttpResponse:
    event = selectors.audit_event_get_for_user(user=request.user, seq=seq)
    previous_hash = selectors.audit_previous_hash(event=event)
    changes = [
        {"field": field, "before": before, "after": after}
        for field, (before, after) in diff(event.before, event.after).items()
    ]
    context = {
        "event": event,
        "changes": changes,
        # Checks of this one event only; `manage.py verify_audit` walks the whole chain.
        "hash_ok": audit.event_hash(event.prev_hash, event) == event.hash,
        "link_ok": (
            event.prev_hash == audit.GENESIS_HASH
            if event.seq == 1
            else previous_hash == event.prev_hash
        ),
        "object_url": _object_url(event),
        "history_url": reverse("governance:audit_list")
        + "?"
        + urlencode({"object_type": event.object_type, "object_id": event.object_id}),
    }
    return render(request, "governance/audit_detail.html", context)


# ---------------------------------------------------------------------------
# Model version approval
# ---------------------------------------------------------------------------
@require_POST
def version_approval(request: HttpRequest, pk: int) -> HttpResponse:
    """POST approval (and an optional note); the risk committee only (403 for others)."""
    version = inventory_selectors.modelversion_get_for_user(
        user=request.user, version_id=pk
    )
    try:
        services.model_version_set_approval(
            actor=request.user,
            version=version,
            approval=request.POST.get("approval", ""),
            note=request.POST.get("note", ""),
            make_baseline=request.POST.get("make_baseline") == "yes",
        )
    except ValidationError as exc:
        error = " ".join(exc.messages)
        if request.htmx:
            version.refresh_from_db()
            return render(
                request,
                "governance/_version_approval.html",
                {"object": version, "approval_error": error},
                status=422,
            )
        messages.error(request, error)
        return redirect(version.get_absolute_url())
    messages.success(
        request, f"Version “{version}” is now {version.get_approval_display().lower()}."
    )
    if request.htmx:
        return HttpResponseClientRedirect(version.get_absolute_url())
    return redirect(version.get_absolute_url())


# ---------------------------------------------------------------------------
# Governed state on the detail pages: lifecycle, baseline, status, pin. Each POST calls
# one inventory service (the transition check and the audit event are there); the form
# asks for an explicit confirmation, checked here so a stray POST changes nothing.
# ---------------------------------------------------------------------------
CONFIRM_REQUIRED = "Tick the confirmation box to make this change."
VERSION_NOT_FOUND = "Choose one of this model's versions."


def _confirmed(request: HttpRequest) -> None:
    if request.POST.get("confirm") != "yes":
        raise ValidationError(CONFIRM_REQUIRED)


def _chosen_version(request: HttpRequest, model_id: int) -> Any:
    raw = request.POST.get("version", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ValidationError(VERSION_NOT_FOUND)
    version = (
        inventory_selectors.modelversion_list(user=request.user)
        .filter(pk=int(raw), model_id=model_id)
        .first()
    )
    if version is None:
        raise ValidationError(VERSION_NOT_FOUND)
    return version


def _governed_post(request: HttpRequest, target: Any, action: Any, done: str):
    try:
        _confirmed(request)
        action()
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, done)
    return redirect(target.get_absolute_url())


# The objects the committee decides on, by the kind in the last-decision URL.
DECIDED_KINDS = {
    "modelversion": lambda user, pk: inventory_selectors.modelversion_get_for_user(
        user=user, version_id=pk
    ),
    "aimodel": lambda user, pk: inventory_selectors.aimodel_get_for_user(
        user=user, model_id=pk
    ),
    "deployment": lambda user, pk: inventory_selectors.deployment_get_for_user(
        user=user, deployment_id=pk
    ),
}


@require_GET
def last_decision(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """The committee card's "Last decision" line: the latest approval, lifecycle or
    status decision on the object and its note (governance_tags.last_decision).

    The card asks for it when it loads, so the object's page keeps its query budget;
    only those who may decide see it, and an object they cannot read is a 404.
    """
    if kind not in DECIDED_KINDS:
        raise Http404
    if not permissions.can_approve_versions(request.user):
        raise PermissionDenied
    obj = DECIDED_KINDS[kind](request.user, pk)
    return render(request, "governance/_last_decision.html", {"object": obj})


@require_POST
def aimodel_lifecycle(request: HttpRequest, pk: int) -> HttpResponse:
    model = inventory_selectors.aimodel_get_for_user(user=request.user, model_id=pk)
    lifecycle = request.POST.get("lifecycle", "")
    return _governed_post(
        request,
        model,
        lambda: inventory_services.aimodel_set_lifecycle(
            actor=request.user,
            model=model,
            lifecycle=lifecycle,
            note=request.POST.get("note", ""),
        ),
        f"Model “{model}”: lifecycle changed.",
    )


@require_POST
def aimodel_baseline(request: HttpRequest, pk: int) -> HttpResponse:
    model = inventory_selectors.aimodel_get_for_user(user=request.user, model_id=pk)
    return _governed_post(
        request,
        model,
        lambda: inventory_services.aimodel_set_baseline(
            actor=request.user,
            model=model,
            version=_chosen_version(request, model.pk),
        ),
        f"Model “{model}”: baseline version changed.",
    )


@require_POST
def deployment_status(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = inventory_selectors.deployment_get_for_user(
        user=request.user, deployment_id=pk
    )
    return _governed_post(
        request,
        deployment,
        lambda: inventory_services.deployment_set_status(
            actor=request.user,
            deployment=deployment,
            status=request.POST.get("status", ""),
            note=request.POST.get("note", ""),
        ),
        f"Deployment “{deployment}”: status changed.",
    )


@require_POST
def deployment_pin(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = inventory_selectors.deployment_get_for_user(
        user=request.user, deployment_id=pk
    )
    return _governed_post(
        request,
        deployment,
        lambda: inventory_services.deployment_pin_baseline(
            actor=request.user,
            deployment=deployment,
            version=_chosen_version(request, deployment.model_id),
        ),
        f"Deployment “{deployment}”: baseline pin changed.",
    )


# ---------------------------------------------------------------------------
# Policy: administrators edit it, everyone else reads it.
# ---------------------------------------------------------------------------
POLICY_NOT_A_NUMBER = "{label}: enter a whole number."


def policy(request: HttpRequest) -> HttpResponse:
    current = inventory_selectors.policy_current()
    can_edit = permissions.is_admin(request.user)
    fields = [
        {
            "name": name,
            "label": current._meta.get_field(name).verbose_name.capitalize(),
            "help": current._meta.get_field(name).help_text,
            "value": getattr(current, name),
        }
        for name in inventory_services.POLICY_FIELDS
    ]
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied(permissions.ADMIN_ONLY)
        values: dict[str, int] = {}
        errors: list[str] = []
        for field in fields:
            raw = request.POST.get(field["name"], "").strip()
            if not raw.isdigit() or len(raw) > 9:
                errors.append(POLICY_NOT_A_NUMBER.format(label=field["label"]))
            else:
                values[field["name"]] = int(raw)
                field["value"] = raw
        if not errors:
            try:
                inventory_services.policy_update(actor=request.user, **values)
            except ValidationError as exc:
                errors = exc.messages
            else:
                messages.success(request, "Policy saved.")
                return redirect("governance:policy")
        return render(
            request,
            "governance/policy.html",
            {"policy": current, "fields": fields, "can_edit": True, "errors": errors},
            status=422,
        )
    if request.method != "GET":
        return HttpResponse(status=405)
    return render(
        request,
        "governance/policy.html",
        {"policy": current, "fields": fields, "can_edit": can_edit, "errors": []},
    )
