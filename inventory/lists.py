"""One list view for every keyset list: filter, sort, keyset page, HTMX fragment, CSV.

Inventory, sources (sources, runs, events) and the audit log describe their list with a
`ListPage` and call `keyset_list` with the selector's queryset; every list renders
`templates/_list_page.html`. Lists to come do the same.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from inventory.csv_export import csv_response
from inventory.pagination import keyset_paginate, parse_sort
from inventory.tables import KeysetTable

LIST_TEMPLATE = "_list_page.html"

Accessor = str | Callable[[Any], Any]


@dataclass(frozen=True)
class Action:
    """A button beside the list's title."""

    label: str
    url: str
    testid: str = ""
    primary: bool = False


@dataclass(frozen=True)
class ListPage:
    title: str
    description: str
    filterset: type
    table: type[KeysetTable]
    # Sort parameter alias -> field path; only indexed, non-null fields (keyset order).
    sorts: dict[str, str]
    default_sort: str
    export_columns: Sequence[tuple[str, Accessor]]
    export_name: str
    noun: str = "row"
    noun_plural: str = ""
    # The event (sent by a POST elsewhere on the page) that refreshes the results in place.
    refresh_event: str = ""
    # Joins the CSV needs beyond the list's own (the list keeps its joins few).
    export_related: tuple[str, ...] = ()
    # What else the CSV reads (annotations, prefetches scoped to the user), applied once.
    export_queryset: Callable[[QuerySet, Any], QuerySet] | None = None
    export_chunk_size: int = 2000
    # (label, URL name) links above the title; the page's own title ends the trail.
    breadcrumbs: tuple[tuple[str, str], ...] = ()
    # Extra markup beside the title and inside the filter form (a status, a datalist).
    header_template: str = ""
    filters_template: str = ""

    @property
    def nouns(self) -> str:
        return self.noun_plural or f"{self.noun}s"


def ordered(queryset: QuerySet, field: str, descending: bool) -> QuerySet:
    """The export's order: the page's, ties broken by id as keyset pages break them."""
    return queryset.order_by(
        f"-{field}" if descending else field, "-pk" if descending else "pk"
    )


# Joined rows on a list show a name; their text, JSON and timestamps are not read, and
# decoding them was a third of a page's SQL-side CPU (bench, deployment list).
_UNREAD_ON_JOINS = (models.TextField, models.JSONField, models.DateTimeField)


def lean(queryset: QuerySet) -> QuerySet:
    """`queryset` with the joined rows' text, JSON, timestamps and passwords deferred.

    A table cell that does read one costs a query per row, which the query-count tests
    (3 rows against 30) catch.
    """
    tree = queryset.query.select_related
    if not isinstance(tree, dict):
        return queryset
    deferred: list[str] = []

    def walk(model: type[models.Model], branch: dict, prefix: str) -> None:
        for name, sub in branch.items():
            related = model._meta.get_field(name).related_model
            for f in related._meta.concrete_fields:
                if isinstance(f, _UNREAD_ON_JOINS) or f.name == "password":
                    deferred.append(f"{prefix}{name}__{f.name}")
            walk(related, sub, f"{prefix}{name}__")

    walk(queryset.model, tree, "")
    return queryset.defer(*deferred) if deferred else queryset


def keyset_list(
    request: HttpRequest,
    *,
    page: ListPage,
    base: QuerySet,
    actions: Sequence[Action] = (),
    context: dict[str, Any] | None = None,
) -> HttpResponse:
    """A filtered list paged by keyset, refreshed in place by HTMX, or its CSV export.

    Callers decorate their view with `vary_on_headers("HX-Request")` (the fragment and the
    page share a URL) and pass the selector's queryset, already scoped to the user.
    """
    filterset = page.filterset(request.GET or None, queryset=base, user=request.user)
    queryset = filterset.qs if filterset.is_bound and filterset.is_valid() else base
    alias, field, descending = parse_sort(
        request.GET.get("sort"), page.sorts, page.default_sort
    )
    if request.GET.get("export") == "csv":
        exported = queryset.select_related(*page.export_related)
        if page.export_queryset is not None:
            exported = page.export_queryset(exported, request.user)
        return csv_response(
            ordered(exported, field, descending),
            page.export_columns,
            page.export_name,
            chunk_size=page.export_chunk_size,
        )
    rows = keyset_paginate(
        lean(queryset),
        field=field,
        descending=descending,
        after=request.GET.get("after"),
        before=request.GET.get("before"),
    )
    table = page.table(
        rows.rows,
        page=rows,
        order_by=("-" if descending else "") + alias,
        # The filter's source choices and the table's source column read one query.
        source_names=getattr(filterset, "source_names", None),
    )
    template_name = LIST_TEMPLATE
    if request.htmx and not request.htmx.history_restore_request:
        template_name += "#results"
    return render(
        request,
        template_name,
        {
            "list": page,
            "filter": filterset,
            "table": table,
            "page": rows,
            "actions": actions,
            **(context or {}),
        },
    )
