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
