"""JSON that hostile input cannot turn into a 500 or a row the audit cannot hash.

`json.loads` takes `NaN`, `Infinity` and `1e999` (stored as floats that are not JSON),
recurses on deep nesting (RecursionError), and gives lone surrogates (`"\\ud800"`, which the
audit chain's UTF-8 canonical form cannot encode) and NUL characters (which PostgreSQL's
jsonb refuses). `loads()` refuses each of them with a message; `check()` does the same for
a value that was already parsed. Forms, the API's parser and the receivers use these.
"""

from __future__ import annotations

import json
import math
import re
from itertools import accumulate
from typing import Any

# Deep enough for any honest settings, bounds or event body; far below the recursion limit.
MAX_DEPTH = 32

JSON_INVALID = "This is not valid JSON."
JSON_TOO_DEEP = "The JSON nests deeper than {limit} levels."
JSON_NOT_FINITE = (
    "The JSON holds a number that is not finite (NaN, Infinity or one too large)."
)
JSON_BAD_TEXT = (
    "The JSON holds text that cannot be stored (a NUL character or a lone surrogate)."
)

_STRING = re.compile(r'"(?:[^"\\]++|\\(?:.|\Z))*+(?:"|\Z)|\\(?:.|\Z)', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class UnsafeJSON(ValueError):
    """The text is not JSON Runproof stores; the message says why."""


def text_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text, without parsing it."""
    steps = [_STEP[c] for c in _BRACKETS.findall(_STRING.sub("", text))]
    return max(accumulate(steps, initial=0))


def _reject_constant(name: str) -> Any:
    raise UnsafeJSON(JSON_NOT_FINITE)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsafeJSON(JSON_NOT_FINITE)
    return value


def loads(
    raw: str | bytes, *, max_depth: int = MAX_DEPTH, check_values: bool = True
) -> Any:
    """Parse JSON text, refusing what `check()` refuses. Raises UnsafeJSON.

    With `check_values=False` only what parsing itself must refuse is (bad text, NaN and
    infinities, deep nesting); the caller checks the values, to name where they are.
    """
    if isinstance(raw, bytes | bytearray):
        try:
            raw = bytes(raw).decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UnsafeJSON(JSON_INVALID) from None
    if text_depth(raw) > max_depth:
        raise UnsafeJSON(JSON_TOO_DEEP.format(limit=max_depth))
    try:
        value = json.loads(
            raw, parse_constant=_reject_constant, parse_float=_finite_float
        )
    except UnsafeJSON:
        raise
    except RecursionError:
        raise UnsafeJSON(JSON_TOO_DEEP.format(limit=max_depth)) from None
    except ValueError:  # JSONDecodeError, and ints past Python's digit limit
        raise UnsafeJSON(JSON_INVALID) from None
    if check_values:
        check(value, max_depth=max_depth)
    return value


def check(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse a parsed value Runproof cannot store or hash. Raises UnsafeJSON."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                raise UnsafeJSON(JSON_TOO_DEEP.format(limit=max_depth))
            if isinstance(item, dict):
                for key, inner in item.items():
                    if isinstance(key, str) and _BAD_TEXT.search(key):
                        raise UnsafeJSON(JSON_BAD_TEXT)
                    stack.append((inner, depth + 1))
            else:
                stack.extend((inner, depth + 1) for inner in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise UnsafeJSON(JSON_NOT_FINITE)
        elif isinstance(item, str) and _BAD_TEXT.search(item):
            raise UnsafeJSON(JSON_BAD_TEXT)


def bad_text(text: str) -> bool:
    """Whether `text` holds a NUL or a lone surrogate (neither can be stored)."""
    return bool(_BAD_TEXT.search(text))
