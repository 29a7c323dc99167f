"""Security baseline: headers, sessions, login throttling, production settings, /admin/ audit."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from inventory import models as m
from inventory.middleware import LAST_SEEN_KEY
from tests.factories import AIModelFactory

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_signed_in_pages_carry_the_security_headers(client, owner):
    client.force_login(owner)
    response = client.get(reverse("inventory:deployment_list"))
    csp = response["Content-Security-Policy"]
    for directive in (
        "default-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ):
        assert directive in csp
    nonce = csp.split("'nonce-")[1].split("'")[0]
    body = response.content.decode()
    # Every script element carries this response's nonce: no inline script runs without it.
    assert body.count("<script") == body.count(f'nonce="{nonce}"') > 0
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_nonce_changes_per_response(client, owner):
    client.force_login(owner)
    first = client.get(reverse("dashboard"))["Content-Security-Policy"]
    second = client.get(reverse("dashboard"))["Content-Security-Policy"]
    assert first != second


@pytest.mark.django_db
def test_hsts_is_sent_when_configured(client, owner, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    client.force_login(owner)
    response = client.get(reverse("dashboard"), secure=True)
    assert (
        response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    )


@pytest.mark.django_db
def test_idle_session_is_signed_out(client, owner, settings):
    client.force_login(owner)
    assert client.get(reverse("dashboard")).status_code == 200
    session = client.session
    session[LAST_SEEN_KEY] = int(time.time()) - settings.SESSION_IDLE_TIMEOUT - 5
    session.save()
    response = client.get(reverse("inventory:deployment_list"))
    assert response.status_code == 302 and response["Location"].startswith(
        reverse("login")
    )


@pytest.mark.django_db
def test_login_is_throttled_per_username_and_address_then_cools_off(
    client, owner, password, settings
):
    url = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert (
            client.post(url, {"username": "olivia", "password": "wrong"}).status_code
            == 200
        )
    assert (
        client.post(url, {"username": "olivia", "password": "wrong"}).status_code == 429
    )
    # Locked: even the right password is refused until the cool-off ends.
    locked = client.post(url, {"username": "olivia", "password": password})
    assert locked.status_code == 429
    # Another address is not locked out: no one can lock a colleague out from elsewhere.
    other = client.post(
        url, {"username": "olivia", "password": password}, REMOTE_ADDR="10.9.9.9"
    )
    assert other.status_code == 302
    from axes.models import AccessAttempt

    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.first().attempt_time.replace(year=2000)
    )
    assert (
        client.post(url, {"username": "olivia", "password": password}).status_code
        == 302
    )


@pytest.mark.django_db
def test_login_page_and_healthz_need_no_session(client):
    assert client.get(reverse("login")).status_code == 200
    assert client.get(reverse("healthz")).status_code in (200, 503)


def test_production_settings_pass_check_deploy():
    env = {
        **os.environ,
        "RUNPROOF_MODE": "production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "runproof.example.com",
        "DATABASE_URL": "sqlite:///:memory:",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update({"RUNPROOF_MODE": "production", "ALLOWED_HOSTS": "runproof.example.com"})
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0 and "SECRET_KEY is required" in result.stderr


@pytest.mark.django_db
def test_admin_changes_are_audited(client, admin_user, team_a):
    client.force_login(admin_user)
    response = client.post(
        reverse("admin:inventory_aimodel_add"),
        {
            "name": "admin-made",
            "kind": "llm",
            "lifecycle": "active",
            "team": team_a.pk,
            "source": "manual",
            "external_id": "",
            "sensitivity": "medium",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    model = m.AIModel.objects.get(name="admin-made")
    event = AuditEvent.objects.get(action="aimodel.create")
    assert event.object_id == str(model.pk) and event.actor_label == "ada"
    other = AIModelFactory(team=team_a)
    client.post(
        reverse("admin:inventory_aimodel_delete", args=[other.pk]), {"post": "yes"}
    )
    assert not m.AIModel.objects.filter(pk=other.pk).exists()
    assert AuditEvent.objects.filter(
        action="aimodel.delete", object_id=str(other.pk)
    ).exists()


@pytest.mark.django_db
def test_audit_events_record_the_client_address(client, owner, team_a):
    client.force_login(owner)
    model = AIModelFactory(team=team_a)
    client.post(
        reverse("inventory:aimodel_edit", args=[model.pk]),
        {
            "name": "renamed",
            "kind": model.kind,
            "lifecycle": model.lifecycle,
            "team": team_a.pk,
        },
        REMOTE_ADDR="192.0.2.7",
    )
    assert AuditEvent.objects.get(action="aimodel.update").ip_address == "192.0.2.7"


@pytest.mark.django_db
def test_role_changes_in_admin_are_audited_without_the_password(
    client, admin_user, owner
):
    from django.contrib.auth.models import Group

    client.force_login(admin_user)
    risk_group = Group.objects.get_or_create(name="Risk committee")[0]
    owner_group = Group.objects.get_or_create(name="Model owner")[0]
    response = client.post(
        reverse("admin:auth_user_change", args=[owner.pk]),
        {
            "username": owner.username,
            "email": owner.email,
            "first_name": "",
            "last_name": "",
            "is_active": "on",
            "groups": [owner_group.pk, risk_group.pk],
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    owner.refresh_from_db()
    assert set(owner.groups.values_list("name", flat=True)) == {
        "Model owner",
        "Risk committee",
    }
    event = AuditEvent.objects.get(action="user.update", object_id=str(owner.pk))
    assert event.before["groups"] == [owner_group.pk]
    assert sorted(event.after["groups"]) == sorted([owner_group.pk, risk_group.pk])
    assert "password" not in event.after and "last_login" not in event.after
    assert event.actor_label == "ada"


@pytest.mark.django_db
def test_only_administrators_reach_the_user_admin(client, risk):
    risk.is_staff = True
    risk.save()
    client.force_login(risk)
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403


def test_production_static_files_collect_with_hashed_names(tmp_path):
    """Production serves hashed, compressed files through WhiteNoise; every file must survive
    the manifest's processing (a vendored file pointing at a missing source map would not)."""
    env = {
        **os.environ,
        "RUNPROOF_MODE": "production",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "runproof.example.com",
        "DATABASE_URL": "sqlite:///:memory:",
        "STATIC_ROOT": str(tmp_path / "static"),
        "RUNPROOF_VAR_DIR": str(tmp_path / "var"),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    manifest = (tmp_path / "static" / "staticfiles.json").read_text()
    for name in (
        "vendor/plotly/plotly.min.js",
        "vendor/bootstrap/bootstrap.min.css",
        "django_htmx/htmx-2.min.js",
    ):
        assert name in manifest
