"""manage.py create_token / revoke_token."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEvent
from inventory import models as m
from inventory import services
from inventory.management.commands import create_token, revoke_token

pytestmark = pytest.mark.django_db


def _create(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_token", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _api_status(client, raw: str) -> int:
    return client.get(
        "/api/v1/deployments/", headers={"Authorization": f"Bearer {raw}"}
    ).status_code


def test_create_token_prints_only_a_working_token(client):
    out, err = _create("--name", "CI", "--scopes", "read, deploy", "--days", "7")

    raw = out.strip()
    assert out == raw + "\n"
    assert raw.startswith("rp_")
    token = m.APIToken.objects.get()
    assert token.prefix in err
    assert raw not in err
    assert token.scopes == ["deploy", "read"]
    assert token.created_by is None
    assert (token.expires_at - token.created_at).days == 7
    assert _api_status(client, raw) == 200
    event = AuditEvent.objects.get(action="apitoken.issue")
    assert event.actor_id is None
    assert event.actor_label == create_token.ACTOR_LABEL


def test_create_token_defaults_to_90_days():
    _create("--name", "CI", "--scopes", "telemetry")

    token = m.APIToken.objects.get()
    assert (token.expires_at - token.created_at).days == 90


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scopes", "read,admin"], "Unknown scope 'admin'"),
        (["--scopes", ","], services.TOKEN_NO_SCOPES),
        (["--scopes", "read", "--days", "0"], services.TOKEN_DAYS_RANGE),
        (["--scopes", "read", "--days", "731"], services.TOKEN_DAYS_RANGE),
        (["--scopes", "read", "--days", "ninety"], "invalid int value"),
    ],
)
def test_create_token_rejects_bad_input_and_writes_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        _create("--name", "CI", *args)

    assert not m.APIToken.objects.exists()
    assert not m.NonHumanIdentity.objects.exists()


def test_create_token_rejects_a_blank_name():
    with pytest.raises(CommandError):
        _create("--name", "  ", "--scopes", "read")

    assert not m.APIToken.objects.exists()


def test_revoke_token_stops_it(client):
    out, _ = _create("--name", "CI", "--scopes", "read")
    raw = out.strip()
    token = m.APIToken.objects.get()
    stdout = StringIO()

    call_command("revoke_token", token.prefix, stdout=stdout)

    assert token.prefix in stdout.getvalue()
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert _api_status(client, raw) == 401
    event = AuditEvent.objects.get(action="apitoken.revoke")
    assert event.actor_label == revoke_token.ACTOR_LABEL


def test_revoke_token_twice_or_unknown_is_a_command_error():
    token, _ = services.api_token_issue(actor=None, name="x", scopes=["read"], days=1)
    call_command("revoke_token", token.prefix, stdout=StringIO())

    with pytest.raises(CommandError, match=services.TOKEN_ALREADY_REVOKED):
        call_command("revoke_token", token.prefix, stdout=StringIO())
    with pytest.raises(
        CommandError, match=revoke_token.TOKEN_NOT_FOUND.format(prefix="nope")
    ):
        call_command("revoke_token", "nope", stdout=StringIO())
    assert AuditEvent.objects.filter(action="apitoken.revoke").count() == 1
