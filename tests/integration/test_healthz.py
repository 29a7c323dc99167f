"""/healthz against real PostgreSQL and Redis, and with each of them failing."""

from __future__ import annotations

import socket

import pytest

from inventory import health

pytestmark = [pytest.mark.services, pytest.mark.django_db]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when the block ends


def test_healthz_ok_with_postgres_and_redis(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == {"ok": True, "detail": "postgresql"}
    assert body["broker"]["ok"] is True
    assert "redis" in body["broker"]["detail"].lower()


@pytest.fixture
def unreachable_broker(settings):
    """Point settings and the Celery app at a closed port, and put both back afterwards.

    Celery takes CELERY_BROKER_URL from the environment ahead of Django settings and derives
    the read and write URLs from it once, so the app's own configuration has to change too.
    """
    from config.celery import app

    url = f"redis://127.0.0.1:{_closed_port()}/0"
    keys = ("broker_url", "broker_read_url", "broker_write_url")
    previous = {key: app.conf[key] for key in keys}
    settings.CELERY_BROKER_URL = url
    app.conf.update(dict.fromkeys(keys, url))
    yield url
    app.conf.update(previous)


def test_healthz_503_names_the_broker_when_redis_is_unreachable(
    client, unreachable_broker
):
    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"]
    assert body["broker"]["ok"] is False
    assert body["database"]["ok"] is True


def test_healthz_503_names_the_database_when_it_fails(client, monkeypatch):
    monkeypatch.setattr(health, "_database_ok", lambda: (False, "OperationalError"))

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["database"]
    assert body["database"] == {"ok": False, "detail": "OperationalError"}
    assert body["broker"]["ok"] is True
