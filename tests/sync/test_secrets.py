"""Source secrets: encrypted at rest, environment references, never readable back."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from sources.sync import secrets


def test_round_trip_and_ciphertext_hides_the_value():
    blob = secrets.encrypt({"token": "s3cr3t-value", "empty": ""})
    assert "s3cr3t" not in blob
    assert secrets.decrypt(blob) == {"token": "s3cr3t-value"}
    assert secrets.encrypt({}) == "" and secrets.decrypt("") == {}


def test_a_changed_key_says_to_enter_the_secrets_again(settings):
    blob = secrets.encrypt({"token": "x"})
    settings.SECRET_KEY = "another-key-entirely-" * 3
    with pytest.raises(secrets.SecretError, match="Enter them again"):
        secrets.decrypt(blob)


def test_an_explicit_key_survives_a_secret_key_rotation(settings):
    settings.RUNPROOF_SECRETS_KEY = Fernet.generate_key().decode()
    blob = secrets.encrypt({"token": "x"})
    settings.SECRET_KEY = "rotated-" * 8
    assert secrets.decrypt(blob) == {"token": "x"}


def test_environment_references_are_read_at_sync_time(monkeypatch):
    stored = {"token": "env:RUNPROOF_TEST_TOKEN", "password": "plain"}
    monkeypatch.setenv("RUNPROOF_TEST_TOKEN", "from-env")
    assert secrets.resolve(stored) == {"token": "from-env", "password": "plain"}
    assert secrets.describe(stored) == {
        "token": "env:RUNPROOF_TEST_TOKEN",
        "password": "set",
    }
    monkeypatch.delenv("RUNPROOF_TEST_TOKEN")
    with pytest.raises(secrets.SecretError, match="RUNPROOF_TEST_TOKEN"):
        secrets.resolve(stored)
