"""pytest plugin: `services` tests run only against real PostgreSQL and Redis.

- DATABASE_URL is not a PostgreSQL URL, or CELERY_BROKER_URL not a Redis URL: `services`
  tests are deselected, with one line saying how many and how to run them.
- Both set: the session first checks that PostgreSQL and Redis answer and aborts with exit
  code 3 naming the one that does not. A configured service that is down fails the run;
  it never quietly skips the tests that need it.
"""

from __future__ import annotations

import os

import pytest

SERVICES_MARK = "services"
POSTGRES_SCHEMES = ("postgres://", "postgresql://", "pgsql://")
REDIS_SCHEMES = ("redis://", "rediss://")
CONNECT_TIMEOUT_SECONDS = 3
EXIT_SERVICE_MISSING = 3
HOW_TO_RUN = "make test-services (PostgreSQL + Redis)"

_deselected_key = pytest.StashKey[int]()
_collected_key = pytest.StashKey[int]()


def services_configured() -> bool:
    database_url = os.environ.get("DATABASE_URL", "")
    broker_url = os.environ.get("CELERY_BROKER_URL", "")
    return database_url.startswith(POSTGRES_SCHEMES) and broker_url.startswith(
        REDIS_SCHEMES
    )


def _postgres_problem(url: str) -> str | None:
    import environ
    import psycopg

    config = environ.Env.db_url_config(url)
    try:
        # The maintenance database: the test database may not exist yet.
        psycopg.connect(
            dbname="postgres",
            user=config.get("USER") or None,
            password=config.get("PASSWORD") or None,
            host=config.get("HOST") or None,
            port=config.get("PORT") or None,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
        ).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {config.get('HOST')}:{config.get('PORT')} does not answer ({exc.__class__.__name__}: {' '.join(str(exc).split())})"
    return None


def _redis_problem(url: str) -> str | None:
    import redis

    client = redis.Redis.from_url(
        url,
        socket_timeout=CONNECT_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis at {url} does not answer ({exc.__class__.__name__}: {exc})"
    finally:
        client.close()
    return None


def pytest_sessionstart(session: pytest.Session) -> None:
    if not services_configured():
        return
    problems = [
        p
        for p in (
            _postgres_problem(os.environ["DATABASE_URL"]),
            _redis_problem(os.environ["CELERY_BROKER_URL"]),
        )
        if p
    ]
    if problems:
        pytest.exit(
            "services run aborted: " + "; ".join(problems),
            returncode=EXIT_SERVICE_MISSING,
        )


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    config.stash[_collected_key] = len(items)
    if services_configured():
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker(SERVICES_MARK) else keep).append(item)
    config.stash[_deselected_key] = len(drop)
    if not drop:
        return
    config.hook.pytest_deselected(items=drop)
    items[:] = keep
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"services: {len(drop)} test(s) need PostgreSQL and Redis and were deselected; "
            f"run them with {HOW_TO_RUN}."
        )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # `pytest tests/integration` on SQLite deselects everything; that is not an error
    # (exit 5 would fail `make`), the line above already said why nothing ran.
    deselected = session.config.stash.get(_deselected_key, 0)
    collected = session.config.stash.get(_collected_key, 0)
    if (
        exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED
        and deselected
        and deselected == collected
    ):
        session.exitstatus = pytest.ExitCode.OK
