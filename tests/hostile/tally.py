"""Requests sent by the hostile-input suite, and what went wrong (printed by conftest)."""

from __future__ import annotations

TALLY = {"requests": 0, "5xx": 0, "partial writes": 0}
