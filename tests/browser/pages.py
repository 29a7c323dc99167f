"""Helpers the browser tests share (the fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib

from playwright.sync_api import Error as PlaywrightError


def settle(page, timeout_ms: int = 5000) -> None:
    """Wait until the page has had no request in flight for half a second (or a few
    seconds have passed: a page that polls is never idle). On SQLite the live server's
    threads share the test's in-memory connection: a write from the test, or the flush
    after it, while the server still answers the page's last requests fails with
    "database table is locked"."""
    with contextlib.suppress(PlaywrightError):
        page.wait_for_load_state("networkidle", timeout=timeout_ms)
