"""Keyset ("cursor") pagination: a deep page costs what the first page costs.

No COUNT(*) and no OFFSET: the page after row R is "rows ordered after (R.sort_value, R.id)",
answered from a (sort_field, id) index. Cursors are opaque, URL-safe strings.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import F, Model, Q, QuerySet

DEFAULT_PER_PAGE = 50


@dataclass
class KeysetPage:
    rows: list[Model]
    next_cursor: str | None
    prev_cursor: str | None
    per_page: int

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None

    @property
    def has_previous(self) -> bool:
        return self.prev_cursor is not None


def encode_cursor(values: list[Any]) -> str:
    """A cursor for (sort value, id), as the pages' links carry it."""
    return (
        base64.urlsafe_b64encode(json.dumps(values, default=str).encode())
        .decode()
        .rstrip("=")
    )


def _decode(cursor: str) -> list[Any] | None:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return values if isinstance(values, list) and len(values) == 2 else None


def parse_sort(
    sort: str | None, allowed: dict[str, str], default: str
) -> tuple[str, str, bool]:
    """Return (alias, field path, descending) for a `sort` parameter such as "-name"."""
    sort = sort or default
    descending = sort.startswith("-")
    alias = sort.lstrip("-")
    if alias not in allowed:
        alias = default.lstrip("-")
        descending = default.startswith("-")
    return alias, allowed[alias], descending


def keyset_paginate(
    queryset: QuerySet,
    *,
    field: str,
    descending: bool,
    after: str | None = None,
    before: str | None = None,
    per_page: int = DEFAULT_PER_PAGE,
) -> KeysetPage:
    """One page of `queryset` ordered by (field, id), after or before a cursor.

    `field` must be non-null, or rows with NULL would fall out of the ordering.
    """
    model_field = _resolve_field(queryset.model, field)
    cursor = _decode(before) if before else _decode(after) if after else None
    if cursor is not None:
        # A cursor is user input: one that does not fit the field (forged, or from another
        # sort) starts from the first page rather than failing.
        cursor = _fit(model_field, cursor)
    backwards = bool(before and cursor)

    # Walking backwards reads the reversed order and flips the rows afterwards.
    walk_desc = descending != backwards
    order = [
        F(field).desc() if walk_desc else F(field).asc(),
        "-pk" if walk_desc else "pk",
    ]
    qs = queryset.order_by(*order)
    if cursor is not None:
        value, pk = cursor
        op = "lt" if walk_desc else "gt"
        # The first, redundant bound (>= / <=) is what lets the (field, id) index start at
        # the cursor; the OR alone makes PostgreSQL scan from the beginning of the index.
        qs = qs.filter(**{f"{field}__{op}e": value}).filter(
            Q(**{f"{field}__{op}": value}) | Q(**{field: value, f"pk__{op}": pk})
        )
    rows = list(qs[: per_page + 1])
    more = len(rows) > per_page
    rows = rows[:per_page]
    if backwards:
        rows.reverse()

    def key(row: Model) -> str:
        value = row
        for part in field.split("__"):
            value = getattr(value, part)
        return encode_cursor(
            [
                model_field.get_prep_value(value)
                if not hasattr(value, "isoformat")
                else value.isoformat(),
                row.pk,
            ]
        )

    has_next = more if not backwards else True
    has_prev = (more if backwards else cursor is not None) and bool(rows)
    return KeysetPage(
        rows=rows,
        next_cursor=key(rows[-1]) if rows and has_next else None,
        prev_cursor=key(rows[0]) if rows and has_prev else None,
        per_page=per_page,
    )


# The database's id range: an id past it cannot be a row (and overflows SQLite's integers).
MAX_PK = 2**63 - 1


def _fit(model_field: Any, cursor: list[Any]) -> list[Any] | None:
    """(sort value, id) as the field's Python types, or None for a cursor no page made.

    Pages only write scalars: a null, a list or an object in a cursor is forged, and so are
    text the database cannot hold (NUL, lone surrogates) and numbers past its range.
    """
    raw, raw_pk = cursor
    if raw is None or isinstance(raw, bool | list | dict):
        return None
    if isinstance(raw_pk, bool) or not isinstance(raw_pk, int | str):
        return None
    if isinstance(raw, str) and ("\x00" in raw or not _encodable(raw)):
        return None
    try:
        value = model_field.to_python(raw)
        pk = int(raw_pk)
    except (ValidationError, TypeError, ValueError, OverflowError):
        return None
    if value is None or not -MAX_PK <= pk <= MAX_PK:
        return None
    if isinstance(value, int | float) and not -MAX_PK <= value <= MAX_PK:
        return None
    return [value, pk]


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _resolve_field(model: type[Model], path: str):
    field = None
    for part in path.split("__"):
        field = model._meta.get_field(part)
        if field.is_relation:
            model = field.related_model
    return field
