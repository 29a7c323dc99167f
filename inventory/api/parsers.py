"""The API's JSON parser: hostile bodies answer 400, never 500.

DRF's JSONParser takes NaN and Infinity, recurses on deep nesting (RecursionError, a 500)
and lets lone surrogates through, which then fail the UTF-8 encoding of an error message or
an audit event. This one parses with `inventory.jsonsafe`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from inventory import jsonsafe

BODY_TOO_LARGE = "The request body is too large."


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
        raw = stream.read(limit + 1) if limit else stream.read()
        if limit and len(raw) > limit:
            raise ParseError(BODY_TOO_LARGE)
        try:
            return jsonsafe.loads(raw)
        except jsonsafe.UnsafeJSON as exc:
            raise ParseError(f"JSON parse error: {exc}") from None
