"""Shared fixtures. The suite runs on SQLite by default, and on PostgreSQL and Redis when
DATABASE_URL and CELERY_BROKER_URL point at them (see README, "Tests")."""

from __future__ import annotations

import freezegun
import pytest
from django.db import connection

from inventory.roles import Role
from tests.factories import PASSWORD, TeamFactory, UserFactory

pytest_plugins = ["tests.plugins.services"]

# freezegun scans every loaded module when a freeze starts; the Kubernetes client's lazy
# package __getattr__ then imports its pydantic models under the fake datetime, which
# fails and leaves the clock frozen for every later test. Its modules hold no clock.
freezegun.configure(extend_ignore_list=["kubernetes"])


@pytest.fixture(autouse=True)
def _fast_hashing(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # Each test keeps its own copy of the audit checkpoints outside the database.
    settings.AUDIT_CHECKPOINT_FILE = str(tmp_path / "audit-checkpoints.jsonl")


@pytest.fixture(autouse=True)
def _empty_cache():
    """The dashboard keeps its figures in the cache; no test may see another's."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _audit_maintenance(request):
    """Transactional tests end with a TRUNCATE of every table; on PostgreSQL the audit trigger
    allows that only in a session that asked for maintenance."""
    marker = request.node.get_closest_marker("django_db")
    transactional = (
        "transactional_db" in request.fixturenames
        or "live_server" in request.fixturenames
        or bool(marker and marker.kwargs.get("transaction"))
    )
    if transactional and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET runproof.audit_maintenance = 'on'")
    yield


@pytest.fixture
def team_a(db):
    return TeamFactory(name="Credit risk", slug="credit-risk")


@pytest.fixture
def team_b(db):
    return TeamFactory(name="Fraud", slug="fraud")


@pytest.fixture
def owner(team_a):
    return UserFactory(username="olivia", role=Role.OWNER, teams=[team_a])


@pytest.fixture
def other_owner(team_b):
    return UserFactory(username="oscar", role=Role.OWNER, teams=[team_b])


@pytest.fixture
def risk(db):
    return UserFactory(username="rita", role=Role.RISK)


@pytest.fixture
def compliance(db):
    return UserFactory(username="carl", role=Role.COMPLIANCE)


@pytest.fixture
def auditor(db):
    return UserFactory(username="aude", role=Role.AUDITOR)


@pytest.fixture
def admin_user(db):
    return UserFactory(username="ada", role=Role.ADMIN, is_staff=True)


@pytest.fixture
def login(client):
    def _login(user):
        client.force_login(user)
        return client

    return _login


@pytest.fixture
def password():
    return PASSWORD
