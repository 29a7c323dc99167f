"""CSV for auditors' spreadsheets: streamed, and safe against formula injection."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Iterable, Iterator
from typing import Any

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
