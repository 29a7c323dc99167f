"""API pagination: keyset on id, so page 5,000 costs what page 1 costs (no COUNT, no OFFSET)."""

from __future__ import annotations

from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination

# The largest id a database column holds (a signed 64-bit integer).
MAX_ID = 2**63 - 1


class IdCursorPagination(CursorPagination):
    """Keyset on id. A cursor is a client's to forge: its position must be an id.

    DRF's CursorPagination decodes the position as a string and filters with it, so
    `p=abc`, `p=1.5` or `p=2024-01-01` reached the database and answered 500.
    """

    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def decode_cursor(self, request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if cursor is None or cursor.position is None:
            return cursor
        position = str(cursor.position)
        digits = position[1:] if position.startswith("-") else position
        if not (digits.isascii() and digits.isdigit()) or abs(int(position)) > MAX_ID:
            raise NotFound(self.invalid_cursor_message)
        return Cursor(offset=cursor.offset, reverse=cursor.reverse, position=position)


class NewestFirstPagination(IdCursorPagination):
    ordering = "-id"
    page_size = 50
    max_page_size = 500
