"""OpenAPI extensions: tell drf-spectacular how our bearer tokens work."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

BEARER_SCHEME_NAME = "bearerAuth"


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "inventory.api.authentication.BearerTokenAuthentication"
    name = BEARER_SCHEME_NAME

    def get_security_definition(self, auto_schema) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "rp_<prefix>_<secret>",
            "description": (
                "A Runproof API token, issued by an administrator under /tokens/ or with "
                "`manage.py create_token`. Reading the inventory needs the `read` scope."
            ),
        }


_DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
_FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
    "description": "Each invalid query parameter, with the reasons.",
}


class RunproofAutoSchema(AutoSchema):
    """Documents the error answers every endpoint gives, beside the 200 the views declare."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        errors = {
            "401": ("No token, or an invalid, expired or revoked one.", _DETAIL),
            "403": ("The token lacks the scope this endpoint needs.", _DETAIL),
        }
        if self._is_list_view():
            errors["400"] = ("An invalid filter or page value.", _FIELD_ERRORS)
            errors["404"] = ("An invalid cursor.", _DETAIL)
        elif self.method == "GET":
            errors["404"] = ("No such object, or not one this token may read.", _DETAIL)
        for code, (description, schema) in errors.items():
            responses.setdefault(
                code,
                {
                    "description": description,
                    "content": {"application/json": {"schema": schema}},
                },
            )
        return responses
