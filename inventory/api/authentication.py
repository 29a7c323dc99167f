"""Bearer API tokens: `Authorization: Bearer rp_<prefix>_<secret>`."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from rest_framework import authentication, exceptions

from audit.actors import Actor
from inventory import services

INVALID_TOKEN = "Invalid, expired or revoked token."


class TokenPrincipal:
    """What request.user is for a machine: the token, with the identity it belongs to."""

    is_authenticated = True
    is_anonymous = False
    is_superuser = False
    is_staff = False
    pk = None

    def __init__(self, token: Any) -> None:
        self.token = token

    def get_username(self) -> str:
        return f"token:{self.token.prefix}"

    def audit_actor(self) -> Actor:
        """A token acts as a token in the audit trail, not as a person without a row."""
        return self.token.audit_actor()

    def __str__(self) -> str:
        return self.get_username()


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: HttpRequest):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        try:
            raw = header[1].decode()
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN) from exc
        token = services.api_token_authenticate(raw)
        if token is None:
            raise exceptions.AuthenticationFailed(INVALID_TOKEN)
        return TokenPrincipal(token), token

    def authenticate_header(self, request: HttpRequest) -> str:
        return f'{self.keyword} realm="runproof"'
