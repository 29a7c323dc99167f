"""HashiCorp Vault / OpenBao tokens, read through the token accessors (hvac).

Vault has no "list tokens" call; it lists token *accessors* (LIST auth/token/accessors,
which needs sudo) and describes each with lookup-accessor, one call per token, streamed.
A token never says when it was last used: that comes from a file audit device, if the
worker can read its log (`audit_log_path`; the device needs `hmac_accessor = "false"`, or
the accessors in the log are HMACs that match nothing).

Kinds: a Vault token is a bearer secret a service presents, so it is an "api_key", except
where its login method says more: a token from Kubernetes auth belongs to a Kubernetes
service account ("service_account"), and one from JWT auth is, in practice, a CI
workflow's OIDC login ("workflow_token"). Tokens from human login methods (userpass, LDAP,
OIDC, Okta, RADIUS) are people's, not machines', and are left out.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import hvac
import hvac.exceptions as hx
import requests
from django.conf import settings

from inventory import models as m
from sources.connectors.credentials import (
    Credential,
    CredentialConnector,
    key_settings,
    parse_time,
    rules_setting,
)
from sources.sync.base import (
    FetchContext,
    Malformed,
    Record,
    RevokeError,
    Setting,
    SourceConfigError,
    SourceUnavailable,
    excerpt,
)

log = logging.getLogger(__name__)

# Asked per LIST page. Servers that page (`limit`/`after`) honour it; Vault and OpenBao's
# token accessor list ignore it and answer everything at once, which the pager detects.
PAGE_SIZE = 1000
DISPLAY_PREFIX = "token-"
DEFAULT_HUMAN_PATHS = "auth/userpass/\nauth/ldap/\nauth/oidc/\nauth/okta/\nauth/radius/"
KIND_BY_PATH = (
    ("auth/kubernetes/", m.NonHumanIdentity.Kind.SERVICE_ACCOUNT),
    ("auth/jwt/", m.NonHumanIdentity.Kind.WORKFLOW_TOKEN),
)

NO_TOKEN = "Enter the Vault token this source reads with."
NO_URL = "Enter the Vault address."
REFUSED = (
    "Vault refused the token ({status}). It needs a policy with `sudo` and `list` on "
    "auth/token/accessors and `update` on auth/token/lookup-accessor."
)
REVOKE_REFUSED = (
    "Vault refused to revoke ({status}): the source's token needs `update` on "
    "auth/token/revoke-accessor."
)
NOT_FOUND = (
    "No token auth method answered at {url} (404): check the address and the namespace."
)
NOT_VAULT = "The server at {url} did not answer like Vault: {error}."
UNREACHABLE = "Vault did not answer at {url} ({error})."
TLS_FAILED = (
    "The TLS certificate of {url} is not trusted: give the worker its CA, or turn off "
    "'Verify TLS certificate' for a test server."
)
DOWN = "Vault answered {status} ({error}); trying again later."
GONE_ACCESSOR = (
    "The token expired or was revoked while the sync ran (invalid accessor)."
)
AUDIT_UNREADABLE = "The audit log {path} cannot be read: {error}."
REVOKE_GONE = "The token no longer exists in Vault (it expired or was already revoked)."
BAD_ID = "This identity's id is not a Vault token accessor."


class VaultConnector(CredentialConnector):
    kind = "vault"
    label = "HashiCorp Vault / OpenBao tokens"
    description = (
        "Service tokens with their policies, issue and expiry times and, from a file "
        "audit log, last use; linked to models by token metadata or naming rules."
    )
    pull = True
    upload = "none"
    revocable = (m.NonHumanIdentity,)
    revoked_status = m.NonHumanIdentity.Status.REVOKED
    settings_spec = (
        Setting("url", "Address", required=True, kind="url"),
        Setting("namespace", "Namespace", help="Vault Enterprise / OpenBao namespace."),
        Setting("verify_tls", "Verify TLS certificate", kind="bool", default=True),
        Setting(
            "audit_log_path",
            "Audit log file",
            help="Path, on the sync worker, of a file audit device's log (with "
            'hmac_accessor = "false"), read for each token\'s last use.',
        ),
        Setting(
            "human_paths",
            "Human login paths",
            kind="textarea",
            default=DEFAULT_HUMAN_PATHS,
            help="Tokens created by logins under these paths are people's and are "
            "left out; one path prefix a line.",
        ),
        *key_settings("model", "token metadata key"),
        rules_setting(),
        Setting("token", "Token", required=True, secret=True),
    )

    # -- fetching ----------------------------------------------------------------------
    def fetch(self, ctx: FetchContext) -> Iterator[Record | Malformed]:
        self.check_rules()
        client = self.client(ctx)
        url = ctx.options.url or ""
        with self._errors(url):
            accessors = list(dict.fromkeys(_list_accessors(client)))
        ctx.expect(len(accessors))
        last_used = self._last_used(ctx, set(accessors))
        human_paths = [
            p.strip() for p in (ctx.options.human_paths or "").splitlines() if p.strip()
        ]
        model_key = ctx.options.model_key
        deployment_key = ctx.options.deployment_key
        for accessor in accessors:
            external_id = f"vault:{accessor}"
            with self._errors(url):
                try:
                    data = client.auth.token.lookup_accessor(accessor)["data"]
                except hx.InvalidRequest:
                    data = None
            if not isinstance(data, dict):
                yield Malformed(external_id, GONE_ACCESSOR)
                continue
            path = str(data.get("path") or "")
            if any(path.startswith(prefix) for prefix in human_paths):
                continue
            try:
                cred = _credential(data, model_key, deployment_key)
            except ValueError as exc:
                yield Malformed(external_id, str(exc), excerpt(json.dumps(data)))
                continue
            cred.last_used_at = last_used.get(accessor)
            yield Record(external_id, cred)

    def _last_used(self, ctx: FetchContext, wanted: set[str]) -> dict[str, datetime]:
        """The latest audit-log time of each listed accessor, streaming the log once.

        Only the accessors listed in this run are kept, so memory follows the number of
        live tokens, not the size of the log.
        """
        path = ctx.options.audit_log_path
        if not path:
            return {}
        latest: dict[str, datetime] = {}
        try:
            with open(path, encoding="utf-8", errors="replace") as fp:
                for line in fp:
                    if '"accessor"' not in line:
                        continue
                    try:
                        entry = json.loads(line)
                        accessor = (entry.get("auth") or {}).get("accessor")
                        if accessor not in wanted:
                            continue
                        when = parse_time(entry.get("time"))
                    except (ValueError, AttributeError, TypeError):
                        continue  # a line being written, or not an audit entry
                    if when and (accessor not in latest or when > latest[accessor]):
                        latest[accessor] = when
        except OSError as exc:
            raise SourceConfigError(
                AUDIT_UNREADABLE.format(path=path, error=exc.strerror or exc)
            ) from exc
        return latest

    # -- revoking ----------------------------------------------------------------------
    def revoke(self, obj: Any, ctx: FetchContext) -> str:
        """Revoke the token by its accessor; Vault revokes its child tokens with it."""
        external_id = obj.external_id or ""
        if not external_id.startswith("vault:") or len(external_id) <= len("vault:"):
            raise RevokeError(BAD_ID)
        accessor = external_id[len("vault:") :]
        client = self.client(ctx)
        with self._errors(ctx.options.url or "", revoking=True):
            try:
                client.auth.token.revoke_accessor(accessor)
            except hx.InvalidRequest as exc:
                raise RevokeError(REVOKE_GONE) from exc
        return (
            f"Revoked the Vault token {obj.name} (accessor {accessor}) and its "
            "child tokens."
        )

    # -- the client and its errors -------------------------------------------------------
    def client(self, ctx: FetchContext) -> Any:
        url = (ctx.options.url or "").strip()
        if not url:
            raise SourceConfigError(NO_URL)
        token = ctx.secrets.get("token")
        if not token:
            raise SourceConfigError(NO_TOKEN)
        return hvac.Client(
            url=url,
            token=token,
            namespace=ctx.options.namespace or None,
            verify=ctx.options.verify_tls,
            timeout=settings.SYNC_HTTP_TIMEOUT,
        )

    @contextmanager
    def _errors(self, url: str, *, revoking: bool = False) -> Iterator[None]:
        """hvac's and requests' errors as the sync's: unavailable (retried) or misconfigured."""
        try:
            yield
        except (hx.Unauthorized, hx.Forbidden) as exc:
            status = 401 if isinstance(exc, hx.Unauthorized) else 403
            message = REVOKE_REFUSED if revoking else REFUSED
            raise SourceConfigError(message.format(status=status)) from exc
        except hx.InvalidPath as exc:
            raise SourceConfigError(NOT_FOUND.format(url=url)) from exc
        except (
            hx.InternalServerError,
            hx.VaultDown,
            hx.BadGateway,
            hx.RateLimitExceeded,
            hx.VaultNotInitialized,
        ) as exc:
            raise SourceUnavailable(
                DOWN.format(status=type(exc).__name__, error=_first_line(exc))
            ) from exc
        except requests.exceptions.SSLError as exc:
            raise SourceConfigError(TLS_FAILED.format(url=url)) from exc
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise SourceUnavailable(
                UNREACHABLE.format(url=url, error=type(exc).__name__)
            ) from exc
        except (hx.UnexpectedError, hx.InvalidRequest, ValueError) as exc:
            # A 200 that is not JSON (a web page), or a status Vault does not use.
            raise SourceConfigError(
                NOT_VAULT.format(url=url, error=_first_line(exc))
            ) from exc


def _list_accessors(client: Any) -> Iterator[str]:
    """Accessor ids, page by page where the server pages, all at once where it does not."""
    after = ""
    while True:
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        if after:
            params["after"] = after
        response = client.adapter.request(
            "LIST", "/v1/auth/token/accessors", params=params
        )
        keys = ((response or {}).get("data") or {}).get("keys") or []
        if not isinstance(keys, list):
            raise ValueError("the accessor list is not a list")
        if after and after in keys:
            return  # the server ignored `after` and repeated the whole list: done
        yield from (str(k) for k in keys)
        if len(keys) != PAGE_SIZE:
            return
        after = str(keys[-1])


def _credential(
    data: dict[str, Any], model_key: str, deployment_key: str
) -> Credential:
    display_name = str(data.get("display_name") or "")
    policies = data.get("policies") or []
    if not isinstance(policies, list):
        raise ValueError("policies is not a list.")
    meta = data.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValueError("meta is not an object.")
    try:
        issued_at = parse_time(data.get("issue_time")) or parse_time(
            data.get("creation_time")
        )
        # expire_time null: the token never expires (root tokens, periodic tokens
        # without a max TTL), the classic stale credential. It stays null here.
        expires_at = parse_time(data.get("expire_time"))
    except ValueError as exc:
        raise ValueError(f"A time is not readable: {exc}.") from None
    path = str(data.get("path") or "")
    kind = next(
        (k for prefix, k in KIND_BY_PATH if path.startswith(prefix)),
        m.NonHumanIdentity.Kind.API_KEY,
    )
    subject = display_name.removeprefix(DISPLAY_PREFIX)
    name = display_name
    if display_name in ("", "token"):
        # Vault's default display name tells tokens apart by nothing: add the accessor.
        plain = "root token" if "root" in policies else "token"
        name = f"{plain} {str(data.get('accessor', ''))[:8]}".strip()
    return Credential(
        name=name,
        kind=kind,
        provider="vault",
        subject=subject,
        scopes=[str(p) for p in policies],
        issued_at=issued_at,
        expires_at=expires_at,
        model_name=str(meta.get(model_key) or "") if model_key else "",
        deployment_name=str(meta.get(deployment_key) or "") if deployment_key else "",
    )


def _first_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200]
