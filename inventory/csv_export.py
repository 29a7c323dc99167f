"""CSV for auditors' spreadsheets: streamed, and safe against formula injection."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

# A cell starting with one of these is read as a formula by spreadsheet programs
# (OWASP ASVS 5.0 1.2.10; https://owasp.org/www-community/attacks/CSV_Injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="seconds")
    if isinstance(value, list | tuple):
        value = ";".join(str(v) for v in value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    text = str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_stream(header: list[str], rows: Iterable[Iterable[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff"  # BOM, so Excel reads UTF-8
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([cell(v) for v in row])


def column_value(obj: Any, accessor: str | Callable[[Any], Any]) -> Any:
    """A column's value: a dotted attribute path (None past a missing link), or a function."""
    if callable(accessor):
        return accessor(obj)
    for part in accessor.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def csv_response(
    queryset: QuerySet,
    columns: Sequence[tuple[str, str | Callable[[Any], Any]]],
    name: str,
    *,
    chunk_size: int = 2000,
) -> StreamingHttpResponse:
    """Every row of `queryset` as a CSV download, streamed in chunks (never all in memory)."""

    def rows() -> Iterator[list[Any]]:
        for obj in queryset.iterator(chunk_size=chunk_size):
            yield [column_value(obj, accessor) for _, accessor in columns]

    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(
        csv_stream([column for column, _ in columns], rows()),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = (
        f'attachment; filename="runproof-{name}-{stamp}.csv"'
    )
    return response


# ---------------------------------------------------------------------------
# What the deployment and identity exports add to their rows: the same words as the pages
# (the running version label, the baseline, the model's lifecycle, silent, who is bound),
# read in a constant number of queries per chunk whatever the number of rows.
# ---------------------------------------------------------------------------
def deployment_export_queryset(queryset: QuerySet, user: Any) -> QuerySet:
    from inventory import models as m
    from inventory import selectors

    return queryset.prefetch_related(
        selectors.visible_prefetch("identities", m.NonHumanIdentity, user, "name", "id")
    )


def identity_export_queryset(queryset: QuerySet, user: Any) -> QuerySet:
    from inventory import models as m
    from inventory import selectors

    return queryset.prefetch_related(
        selectors.visible_prefetch("deployments", m.Deployment, user, "name", "id")
    )


def names_of(relation: str) -> Callable[[Any], list[str]]:
    """A column of the names of a prefetched relation (one cell, ";"-separated)."""

    def names(obj: Any) -> list[str]:
        return [related.name for related in getattr(obj, relation).all()]

    return names


def username_of(path: str) -> Callable[[Any], str | None]:
    def username(obj: Any) -> str | None:
        person = column_value(obj, path)
        return person.get_username() if person is not None else None

    return username
