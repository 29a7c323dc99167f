"""OpenAPI extensions: tell drf-spectacular how our bearer tokens work."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension

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
