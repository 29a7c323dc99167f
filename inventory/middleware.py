"""Cross-cutting request handling: client IP for the audit trail, idle timeout, no-store."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import SESSION_KEY, logout
from django.http import HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control

from audit.context import client_ip

LAST_SEEN_KEY = "runproof_last_seen"
LOGIN_AT_KEY = "runproof_login_at"


class RequestContextMiddleware:
    """Make the client's address available to services (for audit events)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = client_ip.set(request.META.get("REMOTE_ADDR") or None)
        try:
            return self.get_response(request)
        finally:
            client_ip.reset(token)


class SessionIdleTimeoutMiddleware:
    """Sign out a session idle for longer than SESSION_IDLE_TIMEOUT seconds (ASVS 7.3.1),
    or older than SESSION_COOKIE_AGE seconds since its login whatever its use (ASVS 7.3.2).

    Django moves a session's expiry to now + SESSION_COOKIE_AGE each time it is saved (once
    a minute here), so the absolute lifetime is counted from the login time kept in the
    session, written by the response that signed the user in.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = int(time.time())
            last_seen = request.session.get(LAST_SEEN_KEY, now)
            login_at = request.session.get(LOGIN_AT_KEY, now)
            if (
                now - last_seen > settings.SESSION_IDLE_TIMEOUT
                or now - login_at > settings.SESSION_COOKIE_AGE
            ):
                logout(request)
            elif now - last_seen >= 60 or LAST_SEEN_KEY not in request.session:
                # Write the session at most once a minute, not on every request.
                request.session[LAST_SEEN_KEY] = now
        response = self.get_response(request)
        # A session that holds a signed-in user (not an API token's request, which has
        # none) and no login time: the login's own response, or a session from before this
        # rule. Its lifetime starts now.
        if SESSION_KEY in request.session and LOGIN_AT_KEY not in request.session:
            request.session[LOGIN_AT_KEY] = int(time.time())
        return response


class NoStoreForSignedInMiddleware:
    """Pages for a signed-in user must not be kept by browsers or proxies (ASVS 14.3.2)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if getattr(request, "user", None) is not None and request.user.is_authenticated:
            patch_cache_control(response, no_store=True, private=True)
        return response
