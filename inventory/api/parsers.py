"""The API's JSON parser: hostile bodies answer 400, never 500.

DRF's JSONParser takes NaN and Infinity, recurses on deep nesting (RecursionError, a 500)
and lets lone surrogates through, which then fail the UTF-8 encoding of an error message or
an audit event. This one parses with `inventory.jsonsafe`.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError, ValidationError
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
            data = jsonsafe.loads(raw, check_values=False)
        except jsonsafe.UnsafeJSON as exc:
            raise ParseError(f"JSON parse error: {exc}") from None
        # Text that cannot be stored (NUL, a lone surrogate) is named by its field, as a
        # serializer would name it; never echoed back.
        if isinstance(data, dict):
            errors: dict[str, list[str]] = {}
            for key, value in data.items():
                try:
                    jsonsafe.check({key: value})
                except jsonsafe.UnsafeJSON as exc:
                    name = key if not jsonsafe.bad_text(key) else "non_field_errors"
                    errors.setdefault(name, []).append(str(exc))
            if errors:
                raise ValidationError(errors)
            return data
        try:
            jsonsafe.check(data)
        except jsonsafe.UnsafeJSON as exc:
            raise ParseError(f"JSON parse error: {exc}") from None
        return data
