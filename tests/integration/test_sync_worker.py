"""Syncs through a real Redis and a real Celery worker, with the failures the issue names.

Each scenario runs its own redis-server on a free port (nothing on disk, like the
machine's), so the test can stop and restart the broker without touching the shared one.
The worker and every "web" action (asking for a run, the beat tick) are separate
processes talking to that broker and to pytest's PostgreSQL test database, as in
production; this process only reads the database to check outcomes.

Figures (time to recover after a SIGKILL, runs recovered after a Redis restart) are
written to stderr: run with `-s` to see them.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from inventory import models as m
from sources import models as sm
from tests.integration.conftest import Worker, _test_database_url, spawn_worker

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

KEYS = 10_000
WAIT = 90


class PrivateRedis:
    """A redis-server of this test's own that can be stopped and started again."""

    def __init__(self, workdir: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        pytest.fail(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def redis_server(tmp_path):
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def env(redis_server, tmp_path, transactional_db):
    """The environment every process of the scenario shares."""
    return {
        **os.environ,
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": redis_server.url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "RUNPROOF_MEDIA_ROOT": str(tmp_path / "media"),
        "RUNPROOF_SYNC_BATCH_SIZE": "100",
        "RUNPROOF_SYNC_LEASE_SECONDS": "3",
        "RUNPROOF_SYNC_RESEND_AFTER_SECONDS": "0",
        "PYTHONUNBUFFERED": "1",
    }


def manage_shell(env: dict, code: str) -> str:
    """Run Python in `manage.py shell`, as a web request or the beat would, elsewhere."""
    done = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def keys_file(path: Path, n: int, prefix: str) -> Path:
    keys = [
        {
            "name": f"projects/p/serviceAccounts/{prefix}@p.iam.gserviceaccount.com/keys/{i:032x}",
            "validAfterTime": "2025-01-15T10:00:00Z",
            "validBeforeTime": "9999-12-31T23:59:59Z",
            "keyAlgorithm": "KEY_ALG_RSA_2048",
            "keyOrigin": "GOOGLE_PROVIDED",
            "keyType": "USER_MANAGED",
            "disabled": False,
        }
        for i in range(n)
    ]
    path.write_text(json.dumps({"keys": keys}))
    return path


def ask_for_sync(env: dict, source: sm.DataSource, path: Path) -> int:
    return int(
        manage_shell(
            env,
            "from django.core.files import File\n"
            "from sources.models import DataSource\n"
            "from sources.sync import runner\n"
            f"s = DataSource.objects.get(pk={source.pk})\n"
            f"f = File(open({str(path)!r}, 'rb'), name={path.name!r})\n"
            "run, _ = runner.request_sync(source=s, trigger='command', upload=f)\n"
            "print(run.pk)",
        ).splitlines()[-1]
    )


def tick(env: dict) -> dict:
    out = manage_shell(
        env,
        "import json\nfrom sources.sync import runner\nprint(json.dumps(runner.tick()))",
    )
    return json.loads(out.splitlines()[-1])


def wait_for(predicate, what: str, timeout: float = WAIT, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"timed out waiting for {what}")


def run_row(pk: int) -> sm.SyncRun:
    return sm.SyncRun.objects.get(pk=pk)


def figure(text: str) -> None:
    sys.stderr.write(f"\n[figure] {text}\n")


def make_source(name: str) -> sm.DataSource:
    return sm.DataSource.objects.create(name=name, kind="gcp_keys", schedule_minutes=0)


def start_worker(env: dict, tmp_path: Path, name: str) -> Worker:
    return spawn_worker(
        tmp_path / f"{name}.log", env=env, hostname=f"{name}-{os.getpid()}"
    )


def test_worker_killed_mid_sync_is_recovered_without_duplicates(env, tmp_path):
    source = make_source("GCP keys (kill test)")
    path = keys_file(tmp_path / "keys.json", KEYS, "svc-big")
    first = start_worker(env, tmp_path, "w1")
    try:
        run_id = ask_for_sync(env, source, path)
        wait_for(
            lambda: run_row(run_id).created >= 2000,
            "the first batches to commit",
        )
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait()
        killed_at = time.monotonic()
    finally:
        first.stop()
    partial = m.NonHumanIdentity.objects.filter(source=source.source_label).count()
    assert 0 < partial < KEYS, "the kill landed mid-run"
    assert run_row(run_id).status == "running"

    second = start_worker(env, tmp_path, "w2")
    try:
        # The beat's tick, every 30 s in production: here until the run is taken again.
        def recovered():
            run = run_row(run_id)
            if run.status == "running" and run.attempt == 1:
                tick(env)
            return run.status in ("succeeded", "partial", "failed") and run

        run = wait_for(recovered, "the run to be re-queued and finished", every=1)
        recovered_in = time.monotonic() - killed_at
    finally:
        second.stop()
    assert run.status == "succeeded", run.error
    assert run.attempt == 2
    rows = m.NonHumanIdentity.objects.filter(source=source.source_label)
    assert rows.count() == KEYS
    assert rows.values("external_id").distinct().count() == KEYS
    assert sm.SyncRun.objects.filter(source=source).count() == 1
    figure(
        f"SIGKILL after {partial} of {KEYS} keys applied; recovered and finished in "
        f"{recovered_in:.1f} s (lease 3 s); {rows.count()} rows, 0 duplicates; "
        f"second attempt: created {run.created}, unchanged {run.unchanged}"
    )


def test_runs_queued_when_redis_restarts_are_resent_and_applied_once(
    env, tmp_path, redis_server
):
    sources = [make_source(f"GCP keys {i}") for i in range(3)]
    runs = [
        ask_for_sync(env, s, keys_file(tmp_path / f"k{i}.json", 500, f"svc-{i}"))
        for i, s in enumerate(sources)
    ]
    assert all(run_row(pk).status == "queued" for pk in runs)
    # No worker yet: the messages sit in Redis, which keeps nothing on disk.
    redis_server.stop()
    redis_server.start()
    restarted_at = time.monotonic()
    worker = start_worker(env, tmp_path, "w3")
    try:
        time.sleep(2)
        assert all(run_row(pk).status == "queued" for pk in runs), "Redis lost them"
        result = tick(env)
        assert result["resent"] == 3
        wait_for(
            lambda: all(run_row(pk).status == "succeeded" for pk in runs),
            "the re-sent runs to finish",
        )
        recovered_in = time.monotonic() - restarted_at
        # The tick sends again whatever is still queued; a finished run is never re-run.
        tick(env)
        time.sleep(1)
    finally:
        worker.stop()
    for source, pk in zip(sources, runs, strict=True):
        run = run_row(pk)
        assert (run.attempt, run.created) == (1, 500)
        assert (
            m.NonHumanIdentity.objects.filter(source=source.source_label).count() == 500
        )
    figure(
        f"Redis restarted with 3 runs queued: all 3 re-sent by one tick and applied once, "
        f"{recovered_in:.1f} s after the restart"
    )


def test_a_run_asked_for_while_redis_is_down_runs_once_it_is_back(
    env, tmp_path, redis_server
):
    source = make_source("GCP keys (broker down)")
    path = keys_file(tmp_path / "keys.json", 200, "svc-down")
    redis_server.stop()
    asked = time.monotonic()
    run_id = ask_for_sync(env, source, path)
    asked_in = time.monotonic() - asked
    run = run_row(run_id)
    assert run.status == "queued", "recorded even though the broker refused it"
    redis_server.start()
    worker = start_worker(env, tmp_path, "w4")
    try:
        tick(env)
        wait_for(lambda: run_row(run_id).status == "succeeded", "the run to finish")
    finally:
        worker.stop()
    assert m.NonHumanIdentity.objects.filter(source=source.source_label).count() == 200
    figure(
        f"asking for a run with Redis down answered in {asked_in:.1f} s (manage.py "
        "start-up included) and left it queued; it ran after Redis came back"
    )
