"""Names of the sources rows came from ("<kind>:<id>" -> name).

The sources app registers its lookup when it is ready, so inventory's lists can name a
row's source without inventory importing the app above it.
"""

from __future__ import annotations

from collections.abc import Callable

_lookup: Callable[[], dict[str, str]] | None = None


def register(lookup: Callable[[], dict[str, str]]) -> None:
    global _lookup
    _lookup = lookup


def names() -> dict[str, str]:
    """Every source's label and name, or none when no sources app is installed."""
    return _lookup() if _lookup is not None else {}
