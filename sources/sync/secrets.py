"""Source secrets: encrypted at rest with Fernet, or named environment variables.

The key is RUNPROOF_SECRETS_KEY when set (a Fernet key, so SECRET_KEY can rotate without
losing the sources' secrets), otherwise derived from SECRET_KEY with HKDF. A secret whose
value is `env:NAME` is not stored at all: the variable NAME is read when the sync runs.
"""

from __future__ import annotations

import base64
import json
import os

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

ENV_PREFIX = "env:"


class SecretError(Exception):
    pass


def _fernet() -> Fernet:
    key = getattr(settings, "RUNPROOF_SECRETS_KEY", "")
    if key:
        return Fernet(key.encode())
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"runproof-source-secrets",
        info=b"fernet",
    ).derive(settings.SECRET_KEY.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt(values: dict[str, str]) -> str:
    clean = {k: v for k, v in values.items() if v}
    if not clean:
        return ""
    return _fernet().encrypt(json.dumps(clean, sort_keys=True).encode()).decode()


def decrypt(blob: str) -> dict[str, str]:
    if not blob:
        return {}
    try:
        return json.loads(_fernet().decrypt(blob.encode()))
    except InvalidToken as exc:
        raise SecretError(
            "The source's secrets cannot be decrypted: SECRET_KEY or "
            "RUNPROOF_SECRETS_KEY changed since they were saved. Enter them again."
        ) from exc


def resolve(stored: dict[str, str]) -> dict[str, str]:
    """The secret values a sync uses, reading `env:NAME` references now."""
    out = {}
    for name, value in stored.items():
        if value.startswith(ENV_PREFIX):
            var = value[len(ENV_PREFIX) :]
            if var not in os.environ:
                raise SecretError(
                    f"Secret {name!r} names the environment variable {var}, "
                    "which is not set."
                )
            out[name] = os.environ[var]
        else:
            out[name] = value
    return out


def describe(stored: dict[str, str]) -> dict[str, str]:
    """What may be shown back: 'set', or the variable a secret is read from."""
    return {
        name: (value if value.startswith(ENV_PREFIX) else "set")
        for name, value in stored.items()
    }
