"""One list view for every keyset list: filter, sort, keyset page, HTMX fragment, CSV.

Inventory, sources (sources, runs, events) and the audit log describe their list with a
`ListPage` and call `keyset_list` with the selector's queryset; every list renders
`templates/_list_page.html`. Lists to come do the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import engines
from django.utils.choices import CallableChoiceIterator
from django.utils.functional import SimpleLazyObject
from django.utils.safestring import SafeString, mark_safe

from inventory import source_names
from inventory.csv_export import csv_response
from inventory.pagination import (
    COUNT_CAP,
    _nullable,
    keyset_paginate,
    order_value,
    parse_sort,
)
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
    # Say how many rows match (capped, in the page's own query; see pagination.py).
    count: bool = True
    # Sort aliases of nullable fields whose NULLs sort last going up (pagination.py).
    nulls_last: frozenset[str] = frozenset()

    @property
    def nouns(self) -> str:
        return self.noun_plural or f"{self.noun}s"


# Filters whose rule no index answers cost what the count reads: each matching row is
# probed (bound to a retired model: its bindings; drift: its model's baseline), so
# counting 10,000 of them took 613 ms and 51 ms of SQL at 250,000 identities / 50,000
# deployments against 15 and 10 ms for 100 (bench database, 2026-12-02). Their lists count
# to this smaller cap ("100+"); the dashboard's headline has the exact figure.
COSTLY_COUNT_CAPS: dict[tuple[str, str], int] = {
    ("risk", "retired_model"): 100,
    ("risk", "drift"): 100,
}


def count_cap(params: Any) -> int:
    """The count's cap for these query parameters: COUNT_CAP, or less for a costly filter."""
    caps = [
        cap
        for (name, value), cap in COSTLY_COUNT_CAPS.items()
        if value in params.getlist(name)
    ]
    return min(caps, default=COUNT_CAP)


def ordered(
    queryset: QuerySet, field: str, descending: bool, *, nulls_last: bool = False
) -> QuerySet:
    """The export's order: the page's (NULL the smallest value unless `nulls_last`),
    ties broken by id."""
    nullable = _nullable(queryset.model, field)
    return queryset.order_by(
        order_value(field, descending, nullable=nullable, nulls_last=nulls_last),
        "-pk" if descending else "pk",
    )


# The filter form's fields as markup, per process: the same filters with the same values
# and choices render the same HTML, so a list renders its form once, not per request
# (it was 2 to 3 ms of a list page's CPU, bench). Bounded: cleared when full.
_FIELDS_TEMPLATE = (
    "{% for field in form %}{% if field.is_hidden %}{{ field }}{% else %}\n"
    '    <div class="col-6 col-md-3 col-xl-2">\n'
    '      <label class="form-label small mb-0" for="{{ field.id_for_label }}">'
    "{{ field.label }}</label>\n"
    "      {{ field }}\n"
    "    </div>\n"
    "    {% endif %}{% endfor %}"
)
_FIELDS_CACHE: dict[tuple, SafeString] = {}
_FIELDS_CACHE_SIZE = 512
_FIELDS_LOCK = threading.Lock()
_fields_template = None
UNFILTERED = "unfiltered"


def _cacheable(form: Any) -> bool:
    """Whether the key below holds all the form's markup depends on: not when a field's
    options come from the database (a <select> of objects, a callable's choices), other
    than the source names, which the key holds."""
    for name, field in form.fields.items():
        if getattr(field.widget, "current_label", None) is not None:
            continue  # a type-ahead: its one label is in the key
        if isinstance(field, forms.ModelChoiceField):
            return False
        choices = getattr(field.widget, "choices", None)
        if isinstance(choices, CallableChoiceIterator) and name != "source":
            return False
    return True


def _render_fields(form: Any, cache_key: tuple) -> SafeString:
    global _fields_template
    if _fields_template is None:
        _fields_template = engines["django"].from_string(_FIELDS_TEMPLATE)
    html = mark_safe(_fields_template.render({"form": form}))  # noqa: S308 - a template's output
    if _cacheable(form):
        with _FIELDS_LOCK:
            if len(_FIELDS_CACHE) >= _FIELDS_CACHE_SIZE:
                _FIELDS_CACHE.clear()
            _FIELDS_CACHE[cache_key] = html
    return html


def _names_key(filter_class: type, names: Callable[[], dict[str, str]] | None) -> tuple:
    # Only a sourced filter's "source" choices are the source names (sources' run list
    # has a <select> of sources instead, which _cacheable declines).
    sourced = hasattr(filter_class, "source_names")
    if names is None or not sourced or "source" not in filter_class.base_filters:
        return ()
    return tuple(names().items())


def filter_fields_html(filterset: Any) -> SafeString:
    """The filter form's fields, rendered once per (filters, values, choices) per process.

    The key holds everything the markup depends on: the filter class, each field's raw
    value, the source names (the source filter's choices) and the type-ahead labels;
    forms whose options come from elsewhere in the database are rendered every time.
    """
    form = filterset.form
    data = form.data
    values = []
    for name, field in form.fields.items():
        key = form.add_prefix(name)
        raw = data.getlist(key) if hasattr(data, "getlist") else data.get(key)
        values.append(
            (
                name,
                tuple(raw) if isinstance(raw, list) else raw,
                getattr(field.widget, "current_label", None),
            )
        )
    names = getattr(filterset, "source_names", None)
    cache_key = (type(filterset), tuple(values), _names_key(type(filterset), names))
    html = _FIELDS_CACHE.get(cache_key)
    return html if html is not None else _render_fields(form, cache_key)


def _unfiltered_fields_html(
    page: ListPage, base: QuerySet, user: Any, names: Callable[[], dict[str, str]]
) -> SafeString:
    """The fields of the form no filter is set in, without building the filter set
    (its filters and form are copied field by field: 1 to 2 ms) once it is cached."""
    cache_key = (page.filterset, UNFILTERED, _names_key(page.filterset, names))
    html = _FIELDS_CACHE.get(cache_key)
    if html is not None:
        return html
    filterset = page.filterset(None, queryset=base, user=user)
    if hasattr(filterset, "source_names"):
        filterset.source_names = names  # the names the key and the table read
    return _render_fields(filterset.form, cache_key)


class _Once:
    """A loader called at most once (the source names a page reads in two places)."""

    def __init__(self, load: Callable[[], dict[str, str]]) -> None:
        self._load = load
        self._value: dict[str, str] | None = None

    def __call__(self) -> dict[str, str]:
        if self._value is None:
            self._value = self._load()
        return self._value


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
    narrow: Callable[[QuerySet], QuerySet] | None = None,
    prepare: Callable[[QuerySet], QuerySet] | None = None,
) -> HttpResponse:
    """A filtered list paged by keyset, refreshed in place by HTMX, or its CSV export.

    Callers decorate their view with `vary_on_headers("HX-Request")` (the fragment and the
    page share a URL) and pass the selector's queryset, already scoped to the user.
    `narrow`, given the filtered queryset, returns it narrowed to rows that hold the
    page (a cheaper read of the same page); the count still counts the filtered rows.
    `prepare` adds what the rows show and no filter reads (annotations): applied to the
    page and the export after filtering, never to the count, which a display annotation's
    joins would only slow (a deployment's baseline label joined every counted row to its
    model: 20 of the list's 22 ms of SQL at 50,000 deployments).
    """
    filter_names = page.filterset.base_filters
    csv = request.GET.get("export") == "csv"
    if csv or any(name in request.GET for name in filter_names):
        filterset = page.filterset(
            request.GET or None, queryset=base, user=request.user
        )
        queryset = filterset.qs if filterset.is_bound and filterset.is_valid() else base
        names = getattr(filterset, "source_names", None)
    else:
        # No filter set: nothing to validate, and the form's markup is cached.
        filterset, queryset = None, base
        names = _Once(source_names.names)
    alias, field, descending = parse_sort(
        request.GET.get("sort"), page.sorts, page.default_sort
    )
    counted = queryset
    if prepare is not None:
        queryset = prepare(queryset)
    if csv:
        exported = queryset.select_related(*page.export_related)
        if page.export_queryset is not None:
            exported = page.export_queryset(exported, request.user)
        return csv_response(
            ordered(exported, field, descending, nulls_last=alias in page.nulls_last),
            page.export_columns,
            page.export_name,
            chunk_size=page.export_chunk_size,
        )
    # A table that declares its fields reads its rows as tuples (no joined text to defer).
    reads_tuples = bool(page.table.row_fields)
    narrowed = queryset if narrow is None else narrow(queryset)
    rows = keyset_paginate(
        narrowed if reads_tuples else lean(narrowed),
        field=field,
        descending=descending,
        after=request.GET.get("after"),
        before=request.GET.get("before"),
        count=page.count,
        cap=count_cap(request.GET),
        nulls_last=alias in page.nulls_last,
        read=page.table.read_rows if reads_tuples else list,
        count_of=None if narrow is None and prepare is None else counted,
    )
    table = page.table(
        rows.rows,
        page=rows,
        order_by=("-" if descending else "") + alias,
        # The filter's source choices and the table's source column read one query.
        source_names=names,
    )
    # Drawn here rather than from inside the template (see KeysetTable.rows_html).
    table.rows_html()
    template_name = LIST_TEMPLATE
    fragment = bool(request.htmx and not request.htmx.history_restore_request)
    if fragment:
        template_name += "#results"
    return render(
        request,
        template_name,
        {
            "list": page,
            # Built on first use when no filter is set (the page itself does not use it).
            "filter": filterset
            if filterset is not None
            else SimpleLazyObject(
                lambda: page.filterset(None, queryset=base, user=request.user)
            ),
            "filter_errors": filterset.errors if filterset is not None else {},
            "table": table,
            "page": rows,
            "actions": actions,
            # The fragment has no form: render (or fetch) its fields only for the page.
            "filter_fields": None
            if fragment
            else filter_fields_html(filterset)
            if filterset is not None
            else _unfiltered_fields_html(
                page, base, request.user, names or _Once(source_names.names)
            ),
            **(context or {}),
        },
    )
