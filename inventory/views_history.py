"""The "Reported history" page of a deployment, an identity or a model version."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from inventory import history, selectors
from inventory import models as m
from inventory.views import DETAIL_GETTERS, SPECS

HISTORY_KEYS = ("deployment", "identity", "modelversion")


def _cursor(raw: str | None) -> int | None:
    """The `before` id of a keyset page; anything else is the first page, never a 500."""
    if raw and raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)
    return None


def _names(user: Any, rows: list[m.FieldChange]) -> dict[str, dict[int, Any]]:
    """Objects the values name, one query per kind and only those the user may see."""
    versions: set[int] = set()
    deployments: set[int] = set()
    identities: set[int] = set()
    for row in rows:
        for value in (row.before, row.after):
            if row.field == "observed_version" and isinstance(value, dict):
                if isinstance(value.get("observed_version_id"), int):
                    versions.add(value["observed_version_id"])
            elif row.field in ("identities",) and isinstance(value, list):
                identities.update(v for v in value if isinstance(v, int))
            elif row.field in ("deployments", "dependencies") and isinstance(
                value, list
            ):
                deployments.update(v for v in value if isinstance(v, int))
    out: dict[str, dict[int, Any]] = {"version": {}, "deployment": {}, "identity": {}}
    if versions:
        out["version"] = selectors.modelversion_list(user=user).in_bulk(versions)
    if deployments:
        out["deployment"] = (
            selectors.deployment_list(user=user)
            .select_related(None)
            .only("pk", "name")
            .in_bulk(deployments)
        )
    if identities:
        out["identity"] = (
            selectors.identity_list(user=user)
            .select_related(None)
            .only("pk", "name")
            .in_bulk(identities)
        )
    return out


def _shown(field: str, value: Any, names: dict[str, dict[int, Any]]) -> list[dict]:
    """A value as pieces the template prints: text, and a link where one is known."""
    if value is None or value == []:
        return [{"text": "—"}]
    if field == "observed_version" and isinstance(value, dict):
        version = names["version"].get(value.get("observed_version_id"))
        if version is not None:
            return [{"text": version.version, "url": version.get_absolute_url()}]
        label = value.get("observed_version_label") or "—"
        note = " (not in the registry)" if value.get("observed_version_label") else ""
        return [{"text": f"{label}{note}"}]
    if isinstance(value, list):
        kind = "identity" if field == "identities" else "deployment"
        pieces = []
        for pk in value:
            obj = names[kind].get(pk)
            if obj is None:
                pieces.append({"text": f"#{pk}"})
            else:
                pieces.append({"text": obj.name, "url": obj.get_absolute_url()})
        return pieces
    return [{"text": str(value)}]


@require_GET
def field_history(request: HttpRequest, key: str, pk: int) -> HttpResponse:
    obj = DETAIL_GETTERS[key](request.user, pk)
    rows, next_before = history.field_history(
        obj, before_id=_cursor(request.GET.get("before"))
    )
    names = _names(request.user, rows)
    entries = [
        {
            "row": row,
            "label": history.FIELD_LABELS.get(row.field, row.field),
            "before": _shown(row.field, row.before, names),
            "after": _shown(row.field, row.after, names),
        }
        for row in rows
    ]
    return render(
        request,
        "inventory/field_history.html",
        {
            "spec": SPECS[key],
            "object": obj,
            "entries": entries,
            "next_before": next_before,
            "paged": request.GET.get("before") is not None,
        },
    )
