"""Keyset ("cursor") pagination: a deep page costs what the first page costs.

No OFFSET: the page after row R is "rows ordered after (R.sort_value, R.id)", answered from
a (sort_field, id) index. Cursors are opaque, URL-safe strings. How many rows match is
counted up to a cap (`COUNT_CAP`, shown as "10,000+") inside the page's own query, as a
scalar subquery over `LIMIT cap + 1`: no extra query, and a count that stops at the cap.

A nullable sort field (a last call, an owner) sorts NULL as its smallest value: first going
up, last going down ("never called" is the oldest call: -last_call_at lists the latest
calls first and the never-called last). Its cursors can point into the NULLs. On
PostgreSQL its (field, id) index is built NULLS FIRST to match (models.NullsFirstIndex);
SQLite sorts NULLs first already.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Model, Q, QuerySet
from django.db.models.expressions import OrderBy, RawSQL

DEFAULT_PER_PAGE = 50
# Rows counted at most: past it a list says "10,000+" (a count costs what it reads).
COUNT_CAP = 10_000
_COUNT_ALIAS = "keyset_matching"


@dataclass
class KeysetPage:
    rows: list[Model]
    next_cursor: str | None
    prev_cursor: str | None
    per_page: int
    # Rows matching the filters, counted up to `cap` (None: not counted).
    matching: int | None = None
    cap: int = COUNT_CAP

    @property
    def capped(self) -> bool:
        return self.matching is not None and self.matching > self.cap

    @property
    def matching_label(self) -> str:
        """ "1,234", or "10,000+" past the cap; "" when not counted."""
        if self.matching is None:
            return ""
        if self.capped:
            return f"{self.cap:,}+"
        return f"{self.matching:,}"

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


def order_value(
    field: str, descending: bool, *, nullable: bool, nulls_last: bool = False
) -> OrderBy:
    """`field` in order; a nullable one with NULL as its smallest value, walking either
    way (see the module's docstring), or its largest with `nulls_last` (a model's risk
    tier: the riskiest first going up, models with no tier last). The page and its CSV
    export both order by this."""
    if nullable and nulls_last:
        return (
            F(field).desc(nulls_first=True)
            if descending
            else F(field).asc(nulls_last=True)
        )
    if nullable:
        return (
            F(field).desc(nulls_last=True)
            if descending
            else F(field).asc(nulls_first=True)
        )
    return F(field).desc() if descending else F(field).asc()


def capped_count(queryset: QuerySet, cap: int = COUNT_CAP) -> RawSQL:
    """A scalar subquery: how many rows `queryset` holds, counting at most cap + 1.

    Uncorrelated, so the database runs it once per page query (an InitPlan), not per row.
    """
    inner = queryset.order_by().values("pk")[: cap + 1]
    sql, params = inner.query.get_compiler(using=queryset.db).as_sql()
    return RawSQL(  # noqa: S611 - only Django's compiled SQL, its values as parameters
        f"SELECT COUNT(*) FROM ({sql}) AS keyset_capped",  # noqa: S608
        params,
        output_field=models.IntegerField(),
    )


def keyset_paginate(
    queryset: QuerySet,
    *,
    field: str,
    descending: bool,
    after: str | None = None,
    before: str | None = None,
    per_page: int = DEFAULT_PER_PAGE,
    count: bool = False,
    cap: int = COUNT_CAP,
    nulls_last: bool = False,
    read: Callable[[QuerySet], list[Model]] = list,
    count_of: QuerySet | None = None,
) -> KeysetPage:
    """One page of `queryset` ordered by (field, id), after or before a cursor.

    With `count`, the page also says how many rows match (up to `cap`), read in the same
    query: the rows of `count_of` when given (`queryset` narrowed to the page's candidate
    rows by the caller counts what the whole matches), else of `queryset`. A nullable
    `field` sorts NULL as its smallest value. `read` turns the page's sliced queryset into
    its rows (a table's `read_rows`: tuples, not model instances).
    """
    counted = queryset if count_of is None else count_of
    model_field = _resolve_field(queryset.model, field)
    nullable = _nullable(queryset.model, field)
    nulls_last = nulls_last and nullable
    cursor = _decode(before) if before else _decode(after) if after else None
    if cursor is not None:
        # A cursor is user input: one that does not fit the field (forged, or from another
        # sort) starts from the first page rather than failing.
        cursor = _fit(model_field, cursor, nullable=nullable)
    backwards = bool(before and cursor)

    # Walking backwards reads the reversed order and flips the rows afterwards.
    walk_desc = descending != backwards
    qs = queryset.order_by(
        order_value(field, walk_desc, nullable=nullable, nulls_last=nulls_last),
        "-pk" if walk_desc else "pk",
    )
    if cursor is not None:
        qs = qs.filter(_after(field, cursor, walk_desc, nullable, nulls_last))
    if count:
        qs = qs.annotate(**{_COUNT_ALIAS: capped_count(counted, cap)})
    rows = read(qs[: per_page + 1])
    more = len(rows) > per_page
    rows = rows[:per_page]
    if backwards:
        rows.reverse()
    matching = None
    if count:
        if rows:
            matching = getattr(rows[0], _COUNT_ALIAS)
        elif cursor is None:
            matching = 0
        else:  # a cursor past the end: the rare page that counts apart
            matching = counted.order_by().values("pk")[: cap + 1].count()

    def key(row: Model) -> str:
        value = row
        for part in field.split("__"):
            value = getattr(value, part)
            if value is None:
                break
        return encode_cursor(
            [
                None
                if value is None
                else value.isoformat()
                if hasattr(value, "isoformat")
                else model_field.get_prep_value(value),
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
        matching=matching,
        cap=cap,
    )


def _after(
    field: str,
    cursor: list[Any],
    walk_desc: bool,
    nullable: bool,
    nulls_last: bool = False,
) -> Q:
    """Rows after (value, pk) in the walk's order (NULL the smallest value, or the
    largest with `nulls_last`)."""
    value, pk = cursor
    op = "lt" if walk_desc else "gt"
    is_null = Q(**{f"{field}__isnull": True})
    # Whether the NULLs come last in this walk: walking down with NULL the smallest,
    # walking up with NULL the largest.
    nulls_at_end = walk_desc != nulls_last
    if nullable and value is None:
        # Among the NULLs: where they end the walk, only NULLs with a later id follow;
        # where they start it, the NULLs with a later id and then every value.
        later_nulls = is_null & Q(**{f"pk__{op}": pk})
        return later_nulls if nulls_at_end else later_nulls | ~is_null
    later = Q(**{f"{field}__{op}": value}) | Q(**{field: value, f"pk__{op}": pk})
    if nullable and nulls_at_end:
        return later | is_null  # the NULLs come after every value
    # The first, redundant bound (>= / <=) is what lets the (field, id) index start at the
    # cursor; the OR alone makes PostgreSQL scan from the beginning of the index.
    return Q(**{f"{field}__{op}e": value}) & later


def _nullable(model: type[Model], path: str) -> bool:
    """Whether any step of `path` can be NULL (a nullable column or a nullable join)."""
    for part in path.split("__"):
        f = model._meta.get_field(part)
        if f.null:
            return True
        if f.is_relation:
            model = f.related_model
    return False


# The database's id range: an id past it cannot be a row (and overflows SQLite's integers).
MAX_PK = 2**63 - 1


def _fit(
    model_field: Any, cursor: list[Any], *, nullable: bool = False
) -> list[Any] | None:
    """(sort value, id) as the field's Python types, or None for a cursor no page made.

    Pages only write scalars: a list or an object in a cursor is forged, so is a null for a
    field that is never NULL, and so are text the database cannot hold (NUL, lone
    surrogates) and numbers past its range.
    """
    raw, raw_pk = cursor
    if isinstance(raw_pk, bool) or not isinstance(raw_pk, int | str):
        return None
    if raw is None and nullable:
        try:
            pk = int(raw_pk)
        except (TypeError, ValueError):
            return None
        return [None, pk] if -MAX_PK <= pk <= MAX_PK else None
    if raw is None or isinstance(raw, bool | list | dict):
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
