"""API pagination: keyset on id, so page 5,000 costs what page 1 costs (no COUNT, no OFFSET)."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class IdCursorPagination(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
