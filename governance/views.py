"""Governance pages: the audit log (list, detail, CSV) and a version's approval."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
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
