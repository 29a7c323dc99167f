"""GitHub tokens, OAuth apps and app installations, from uploaded API exports (JSON).

One file may hold any of these organisation endpoints' answers, recognised item by item:
- `GET /orgs/{org}/personal-access-tokens`: fine-grained PATs granted to the org
  (`token_id`, `token_name`, `owner`, `permissions`, `token_expires_at`,
  `token_last_used_at`, `token_expired`, `access_granted_at`);
- `GET /orgs/{org}/credential-authorizations`: what SAML SSO authorised, classic PATs, SSH
  keys, OAuth and GitHub app tokens (`credential_id`, `credential_type`, `scopes`,
  `credential_authorized_at`, `credential_accessed_at`, `authorized_credential_expires_at`);
- `GET /orgs/{org}/installations`: `{"installations": [...]}` of GitHub Apps (`app_slug`,
  `permissions`, `created_at`, `suspended_at`).
`gh api --paginate` writes one JSON array per page, one after another; that is read as is.

PATs and SSH keys are "api_key"; OAuth/GitHub app tokens and app installations are
"oauth_app". Where GitHub only says when the org granted or SSO authorised a credential,
that time stands in for issued_at: the token's own creation time is not in these APIs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import ijson

from inventory import models as m
from sources.connectors.credentials import (
    FILE_EMPTY,
    FILE_NOT_JSON,
    Credential,
    CredentialConnector,
    entry_excerpt,
    json_entries,
    parse_time,
    rules_setting,
    text_list,
)
from sources.sync.base import FetchContext, Malformed, Record, SourceConfigError

API_KEY = m.NonHumanIdentity.Kind.API_KEY
OAUTH_APP = m.NonHumanIdentity.Kind.OAUTH_APP
ACTIVE = m.NonHumanIdentity.Status.ACTIVE
EXPIRED = m.NonHumanIdentity.Status.EXPIRED
DISABLED = m.NonHumanIdentity.Status.DISABLED
VENDOR = "GitHub"

KIND_BY_CREDENTIAL_TYPE = {
    "personal access token": API_KEY,
    "ssh key": API_KEY,
    "oauth app token": OAUTH_APP,
    "github app token": OAUTH_APP,
}

NOT_A_GITHUB_EXPORT = (
    "This file is not a GitHub token export: expected the JSON of "
    "/orgs/ORG/personal-access-tokens, /orgs/ORG/credential-authorizations or "
    "/orgs/ORG/installations; its first entry has {found}."
)
UNKNOWN_ITEM = (
    "Not a fine-grained token, a credential authorisation or an app installation."
)


class GithubTokensConnector(CredentialConnector):
    kind = "github_tokens"
    label = "GitHub tokens and OAuth apps (JSON export)"
    description = (
        "Fine-grained and classic personal access tokens, SSO-authorised credentials "
        "and GitHub App installations of an organisation, from API exports."
    )
    pull = False
    upload = "required"
    upload_json = True
    upload_help = (
        "JSON from `gh api --paginate /orgs/ORG/personal-access-tokens` (a GitHub App "
        "token is required), `/orgs/ORG/credential-authorizations` or "
        "`/orgs/ORG/installations`; several may be concatenated or put in one list."
    )
    revocable = ()
    settings_spec = (rules_setting(),)

    def fetch(self, ctx: FetchContext) -> Iterator[Record | Malformed]:
        self.check_rules()
        path = ctx.upload_path
        if not path or os.path.getsize(path) == 0:
            raise SourceConfigError(FILE_EMPTY)
        first = True
        with open(path, "rb") as fp:
            try:
                for entry in json_entries(fp):
                    items = _items_in(entry)
                    if first and items and not _recognised(items[0]):
                        # The wrong file (another export, another tool's JSON) fails the
                        # run with one clear message rather than one error per item.
                        raise SourceConfigError(
                            NOT_A_GITHUB_EXPORT.format(found=_describe(entry))
                        )
                    first = first and not items
                    for item in items:
                        yield _record(item)
            except ijson.JSONError as exc:
                raise SourceConfigError(
                    FILE_NOT_JSON.format(error=" ".join(str(exc).split())[:200])
                ) from exc


def _items_in(entry: Any) -> list[Any]:
    """The items an entry holds: itself, a page of them, or an installations wrapper."""
    if isinstance(entry, list):
        return [item for inner in entry for item in _items_in(inner)]
    if isinstance(entry, dict) and isinstance(entry.get("installations"), list):
        return list(entry["installations"])
    return [entry]


def _recognised(item: Any) -> bool:
    return isinstance(item, dict) and _item_kind(item) is not None


def _item_kind(item: dict[str, Any]) -> str | None:
    if "token_id" in item or ("token_name" in item and "owner" in item):
        return "fine_grained"
    if "credential_id" in item and "credential_type" in item:
        return "credential"
    if "app_id" in item and ("app_slug" in item or "account" in item):
        return "installation"
    return None


def _record(item: Any) -> Record | Malformed:
    if not isinstance(item, dict) or _item_kind(item) is None:
        return Malformed(_guess_id(item), UNKNOWN_ITEM, entry_excerpt(item))
    kind = _item_kind(item)
    try:
        if kind == "fine_grained":
            external_id, cred = _fine_grained(item)
        elif kind == "credential":
            external_id, cred = _credential(item)
        else:
            external_id, cred = _installation(item)
    except ValueError as exc:
        return Malformed(_guess_id(item), str(exc), entry_excerpt(item))
    return Record(external_id, cred)


def _fine_grained(item: dict[str, Any]) -> tuple[str, Credential]:
    token_id = item.get("token_id", item.get("id"))
    if token_id in (None, ""):
        raise ValueError("The token has no token_id or id.")
    token_name = str(item.get("token_name") or "")
    owner = item.get("owner") if isinstance(item.get("owner"), dict) else {}
    login = str(owner.get("login") or "")
    expired = item.get("token_expired")
    if expired is not None and not isinstance(expired, bool):
        raise ValueError("token_expired is not true or false.")
    return f"github:fine-grained-pat:{token_id}", Credential(
        name=_with_login(token_name or f"fine-grained token {token_id}", login),
        kind=API_KEY,
        provider="github",
        vendor=VENDOR,
        subject=token_name,
        scopes=_permission_scopes(item.get("permissions")),
        status=EXPIRED if expired else ACTIVE,
        issued_at=_time(item, "access_granted_at"),
        expires_at=_time(item, "token_expires_at"),
        last_used_at=_time(item, "token_last_used_at"),
    )


def _credential(item: dict[str, Any]) -> tuple[str, Credential]:
    credential_id = item.get("credential_id")
    if credential_id in (None, ""):
        raise ValueError("The credential has no credential_id.")
    credential_type = str(item.get("credential_type") or "")
    kind = KIND_BY_CREDENTIAL_TYPE.get(credential_type.lower())
    if kind is None:
        raise ValueError(f"Unknown credential_type {credential_type[:40]!r}.")
    title = next(
        (
            str(item[k])
            for k in (
                "authorized_credential_note",
                "authorized_credential_title",
                "application_name",
            )
            if item.get(k)
        ),
        "",
    )
    last_eight = str(item.get("token_last_eight") or "")
    fallback = f"{credential_type} …{last_eight}" if last_eight else credential_type
    return f"github:credential:{credential_id}", Credential(
        name=_with_login(title or fallback, str(item.get("login") or "")),
        kind=kind,
        provider="github",
        vendor=VENDOR,
        subject=title,
        scopes=text_list(item.get("scopes")),
        issued_at=_time(item, "credential_authorized_at"),
        expires_at=_time(item, "authorized_credential_expires_at"),
        last_used_at=_time(item, "credential_accessed_at"),
    )


def _installation(item: dict[str, Any]) -> tuple[str, Credential]:
    installation_id = item.get("id")
    if installation_id in (None, ""):
        raise ValueError("The installation has no id.")
    slug = str(item.get("app_slug") or f"app {item.get('app_id')}")
    account = item.get("account") if isinstance(item.get("account"), dict) else {}
    login = str(account.get("login") or "")
    return f"github:installation:{installation_id}", Credential(
        name=f"{slug} on {login}" if login else slug,
        kind=OAUTH_APP,
        provider="github",
        vendor=VENDOR,
        subject=slug,
        scopes=_permission_scopes(item.get("permissions")),
        status=DISABLED if item.get("suspended_at") else ACTIVE,
        issued_at=_time(item, "created_at"),
    )


def _permission_scopes(permissions: Any) -> list[str]:
    """Permissions as sorted "name:access" scopes, prefixed with their level if nested.

    Fine-grained tokens nest them ({"repository": {"contents": "write"}} becomes
    "repository.contents:write"); installations do not ({"contents": "read"}).
    """
    if not isinstance(permissions, dict):
        return []
    scopes = []
    for name, access in permissions.items():
        if isinstance(access, dict):
            scopes += [
                f"{name}.{inner}:{value}"
                for inner, value in access.items()
                if isinstance(value, str)
            ]
        elif isinstance(access, str):
            scopes.append(f"{name}:{access}")
    return sorted(scopes)


def _time(item: dict[str, Any], key: str) -> datetime | None:
    try:
        return parse_time(item.get(key))
    except ValueError:
        raise ValueError(f"{key} is not a date: {str(item.get(key))[:40]!r}.") from None


def _with_login(name: str, login: str) -> str:
    return f"{name} ({login})" if login else name


def _guess_id(item: Any) -> str:
    if isinstance(item, dict):
        for key in ("token_id", "credential_id", "id"):
            if item.get(key) not in (None, ""):
                return str(item[key])[:500]
    return ""


def _describe(entry: Any) -> str:
    if isinstance(entry, dict):
        names = ", ".join(sorted(str(k) for k in entry)[:8])
        return f"the fields {names}" if names else "no fields"
    if isinstance(entry, list):
        return "an empty list" if not entry else "a list of unknown items"
    return f"a {type(entry).__name__} value"
