"""Playwright + Debian's Chromium against pytest-django's live_server.

Every page records console errors, uncaught exceptions and CSP violations; a test that
leaves any behind fails at teardown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from tests.browser.pages import settle

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-gpu",
]
TIMEOUT_MS = 10_000

# A CSP violation also reaches the console, but only if Chromium logs it; this listener
# reports every one, whatever the directive.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the browser tests, and run them last: while Playwright runs, its event loop makes
    Django refuse ORM calls unless DJANGO_ALLOW_ASYNC_UNSAFE is set, and that variable must
    not reach the rest of the suite (it fails `check --deploy` in a subprocess, for one)."""
    here = os.path.dirname(__file__)
    browser, others = [], []
    for item in items:
        (browser if str(item.fspath).startswith(here) else others).append(item)
    for item in browser:
        item.add_marker(pytest.mark.browser)
    items[:] = others + browser


@dataclass
class PageProblems:
    errors: list[str] = field(default_factory=list)
    # Expected failed loads, e.g. the 422 of a form with errors, which Chromium logs.
    allowed: list[str] = field(default_factory=list)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


@pytest.fixture(scope="session")
def browser() -> Iterator:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; Django would refuse
    # ORM calls from it (microsoft/playwright-pytest#29). Set only while Playwright runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser, live_server, page_problems) -> Iterator:
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    page.on(
        "console",
        lambda msg: (
            msg.type == "error"
            and page_problems.errors.append(
                f"console: {msg.text} at {msg.location.get('url', '')}"
            )
        ),
    )
    page.on("pageerror", lambda exc: page_problems.errors.append(f"pageerror: {exc}"))
    yield page
    settle(page)
    context.close()
    assert page_problems.unexpected() == [], "the browser reported errors"


@pytest.fixture
def sign_in(page, client, live_server, settings) -> Callable:
    """Sign a user in without the login form (journey (a) covers the form): the test client's
    session cookie goes into the browser."""

    def _sign_in(user):
        client.force_login(user)
        name = settings.SESSION_COOKIE_NAME
        page.context.add_cookies(
            [
                {
                    "name": name,
                    "value": client.cookies[name].value,
                    "url": live_server.url,
                }
            ]
        )
        return page

    return _sign_in
