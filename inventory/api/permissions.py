"""Scope checks for API tokens."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from inventory.models import APIToken


class HasScope(BasePermission):
    scope: str = ""
    message = "This token lacks the required scope."

    def has_permission(self, request, view) -> bool:
        token = request.auth
        return isinstance(token, APIToken) and self.scope in (token.scopes or [])


class HasReadScope(HasScope):
    scope = APIToken.Scope.READ
    message = "This token lacks the 'read' scope."


class HasTelemetryScope(HasScope):
    scope = APIToken.Scope.TELEMETRY
    message = "This token lacks the 'telemetry' scope."


class HasDeployScope(HasScope):
    scope = APIToken.Scope.DEPLOY
    message = "This token lacks the 'deploy' scope."


class HasSourcesScope(HasScope):
    scope = APIToken.Scope.SOURCES
    message = "This token lacks the 'sources' scope."


class HasGateScope(HasScope):
    scope = APIToken.Scope.GATE
    message = "This token lacks the 'gate' scope."
