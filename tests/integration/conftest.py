"""A real Celery worker for the integration tests, talking to the services run's Redis and
to pytest's PostgreSQL test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

WORKER_READY_TIMEOUT = 60
WORKER_STOP_TIMEOUT = 15


@dataclass
class Worker:
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop this worker (its process group: a prefork pool's children too)."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=WORKER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def wait_for_log(self, needle: str, *, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log():
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        pytest.fail(f"worker log never showed {needle!r}:\n{self.log()[-3000:]}")


def _test_database_url() -> str:
    """The URL of the database pytest-django created, so the worker sees the test's rows."""
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return (
        f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    )


def spawn_worker(log_path: Path, *, env: dict, hostname: str) -> Worker:
    """Start a worker in its own process group and wait until it is ready."""
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "celery", "-A", "config", "worker"]
            + ["--pool", "solo", "--loglevel", "INFO", "--without-mingle"]
            + ["--without-gossip", "--hostname", f"{hostname}@%h"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(process, log_path)
    try:
        worker.wait_for_log(" ready.", timeout=WORKER_READY_TIMEOUT)
    except BaseException:
        worker.stop()
        raise
    return worker


@pytest.fixture(scope="module")
def celery_worker(django_db_setup, tmp_path_factory) -> Iterator[Worker]:
    from config.celery import app

    # Nothing a previous run left in the queue may be mistaken for this run's tasks.
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(app.conf.task_default_queue)

    env = {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": os.environ["CELERY_BROKER_URL"],
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "PYTHONUNBUFFERED": "1",
    }
    worker = spawn_worker(
        tmp_path_factory.mktemp("celery") / "worker.log",
        env=env,
        hostname=f"it-{os.getpid()}",
    )
    try:
        yield worker
    finally:
        # This worker's process group only, never "every celery process".
        worker.stop()


@pytest.fixture
def broker_dispatch(settings):
    """Send tasks through the real broker; the suite's autouse fixture makes them eager.

    Celery reads Django settings live (config_from_object keeps a view onto them), so the
    settings fixture is enough, and pytest-django restores it afterwards.
    """
    from config.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    assert app.conf.task_always_eager is False
    return app
