"""A real `mlflow server` for the connector's tests and its benchmark.

`start_mlflow_server()` runs the pinned server from its own venv (`make mlflow-venv`
builds .venv-mlflow; RUNPROOF_TEST_MLFLOW_VENV points elsewhere) in the lean setup the
research note measured on the 2-core box: one worker, no job consumers, SQLite in a
scratch folder, 127.0.0.1 on a free port. It answers /health about 6-10 s after start.

`bench_mlflow_sync()` times a full Runproof sync of a large registry through that server's
REST API. Seeding such a registry through MLflow's own API is slow: measured here, REST
creates run at about 140 calls/s whatever the number of parallel clients (SQLite
serialises the writes), so 1,000 models and 10,000 versions would take about 80 s. The
bench therefore writes the rows straight into the server's SQLite tables after the server
created them (under a second), then checks through REST that the server serves them. The
sync, which is what is measured, reads them only through the server's REST API.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from django.conf import settings

VENV_ENV = "RUNPROOF_TEST_MLFLOW_VENV"
STARTUP_SECONDS = 90
STOP_SECONDS = 10
MISSING_VENV = (
    "No MLflow server at {path}: run `make mlflow-venv` (or set "
    f"{VENV_ENV} to a venv holding mlflow==3.17.2)."
)
DID_NOT_START = (
    "mlflow server did not answer /health within {seconds} s (exit code {code}). "
    "The end of its log ({log}):\n{tail}"
)


class MlflowServerError(RuntimeError):
    """The MLflow server could not be found or started."""


def mlflow_venv() -> Path:
    return Path(os.environ.get(VENV_ENV) or Path(settings.BASE_DIR) / ".venv-mlflow")


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MlflowServer:
    url: str
    port: int
    db_path: Path
    log_path: Path
    python: Path
    process: subprocess.Popen

    def api(self, path: str) -> str:
        return f"{self.url}/api/2.0/mlflow/{path}"


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen) -> None:
    """Stop the server's whole process group (uvicorn workers, any job consumers)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_SECONDS)
    except ProcessLookupError:
        pass


@contextmanager
def start_mlflow_server(
    workdir: Path, *, startup_seconds: float = STARTUP_SECONDS
) -> Iterator[MlflowServer]:
    """Run `mlflow server` until the block ends; raise MlflowServerError if it won't start.

    Webhooks may target plain http on loopback (the tests' live server): MLflow allows
    only https to public addresses unless told otherwise.
    """
    venv = mlflow_venv()
    exe = venv / "bin" / "mlflow"
    if not exe.exists():
        raise MlflowServerError(MISSING_VENV.format(path=exe))
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    db_path = workdir / "mlflow.db"
    log_path = workdir / "mlflow-server.log"
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        # Webhook lists are cached per event for 60 s by default; a test that creates a
        # webhook must see it used at once.
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
    }
    command = [
        str(exe),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{db_path}",
        "--default-artifact-root",
        str(workdir / "artifacts"),
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(  # noqa: S603  (our own venv's executable, fixed arguments)
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
            start_new_session=True,
        )
    server = MlflowServer(
        url=f"http://127.0.0.1:{port}",
        port=port,
        db_path=db_path,
        log_path=log_path,
        python=venv / "bin" / "python",
        process=process,
    )
    try:
        _wait_ready(server, startup_seconds)
        yield server
    finally:
        _stop(process)


def _wait_ready(server: MlflowServer, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            if requests.get(f"{server.url}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    code = server.process.poll()
    raise MlflowServerError(
        DID_NOT_START.format(
            seconds=seconds, code=code, log=server.log_path, tail=_tail(server.log_path)
        )
    )


# ---------------------------------------------------------------------------
# Seeding a large registry
# ---------------------------------------------------------------------------
def seed_registry_sqlite(
    db_path: Path, *, models: int, versions: int
) -> dict[str, int]:
    """Write `models` registered models and `versions` versions into MLflow's tables.

    A realistic mix: every model has the alias `champion` on its newest version, a third
    of versions carry `approval_status`, one in twenty is archived, one model in twenty
    is retired by tag. Versions are spread evenly over the models.
    """
    now = int(time.time() * 1000)
    rm, rm_tags, mv, mv_tags, aliases = [], [], [], [], []
    per_model, extra = divmod(versions, models)
    for i in range(models):
        name = f"bench-model-{i:05d}"
        rm.append((name, now, now, f"Benchmark model {i}"))
        rm_tags.append(("owner", f"team-{i % 17}", name))
        if i % 20 == 19:
            rm_tags.append(("lifecycle", "retired", name))
        count = per_model + (1 if i < extra else 0)
        for v in range(1, count + 1):
            stage = "Archived" if (i + v) % 20 == 0 else "None"
            mv.append(
                (
                    name,
                    v,
                    now,
                    now,
                    "",
                    stage,
                    f"s3://bench-models/{name}/{v}",
                    "",
                    "READY",
                    f"s3://bench-models/{name}/{v}",
                )
            )
            mv_tags.append(("git_sha", f"{i:05d}{v:04d}", name, v))
            if (i + v) % 3 == 0:
                status = "approved" if v == count else "pending"
                mv_tags.append(("approval_status", status, name, v))
        if count:
            aliases.append(("champion", count, name))
    with closing(sqlite3.connect(db_path)) as db, db:
        db.executemany(
            "INSERT INTO registered_models (name, creation_time, last_updated_time, "
            "description) VALUES (?, ?, ?, ?)",
            rm,
        )
        db.executemany(
            "INSERT INTO registered_model_tags (key, value, name) VALUES (?, ?, ?)",
            rm_tags,
        )
        db.executemany(
            "INSERT INTO model_versions (name, version, creation_time, "
            "last_updated_time, description, current_stage, source, run_id, status, "
            "storage_location) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            mv,
        )
        db.executemany(
            "INSERT INTO model_version_tags (key, value, name, version) "
            "VALUES (?, ?, ?, ?)",
            mv_tags,
        )
        db.executemany(
            "INSERT INTO registered_model_aliases (alias, version, name) "
            "VALUES (?, ?, ?)",
            aliases,
        )
    return {"models": len(rm), "versions": len(mv)}


def count_through_rest(server: MlflowServer) -> dict[str, int]:
    """Models and versions as the server reports them (what the sync will read)."""
    counts = {"models": 0, "versions": 0}
    for kind, path, key, limit in (
        ("models", "registered-models/search", "registered_models", 1000),
        ("versions", "model-versions/search", "model_versions", 100_000),
    ):
        params: dict[str, Any] = {"max_results": limit}
        while True:
            data = requests.get(server.api(path), params=params, timeout=60).json()
            counts[kind] += len(data.get(key, []))
            if not data.get("next_page_token"):
                break
            params["page_token"] = data["next_page_token"]
    return counts


# ---------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------
def _timed_sync(source: Any) -> tuple[Any, float]:
    from devtools.bench_k8s import worker_cost
    from sources import models as sm
    from sources.sync import runner

    # Run in this process, without the broker: the sync is what is timed.
    run = sm.SyncRun.objects.create(source=source, trigger=sm.SyncRun.Trigger.COMMAND)
    with worker_cost() as cost:
        started = time.perf_counter()
        runner.execute_run(run.pk)
        elapsed = time.perf_counter() - started
    run.refresh_from_db()
    run.bench_cost = cost
    return run, elapsed


def bench_mlflow_sync(
    *,
    models: int = 1000,
    versions: int = 10000,
    out: Callable[[str], Any] = print,
    keep: bool = False,
) -> dict[str, Any]:
    """Seed a real MLflow server, then time a first (create) and second (unchanged) sync.

    Runs against the configured database. The rows it synced are deleted afterwards unless
    `keep`; the audit events of the runs stay (the audit trail is append-only).
    """
    from django.db import connection

    from inventory import models as m
    from inventory import summary
    from sources import models as sm

    result: dict[str, Any] = {"database": connection.vendor}
    with (
        tempfile.TemporaryDirectory(prefix="runproof-mlflow-bench-") as tmp,
        start_mlflow_server(Path(tmp)) as server,
    ):
        started = time.perf_counter()
        seeded = seed_registry_sqlite(server.db_path, models=models, versions=versions)
        result["seed_seconds"] = round(time.perf_counter() - started, 2)
        served = count_through_rest(server)
        if served != seeded:
            raise MlflowServerError(f"Seeded {seeded} but the server serves {served}.")
        out(
            f"MLflow registry seeded in {result['seed_seconds']} s (direct SQLite "
            f"writes): {served['models']} models, {served['versions']} versions, "
            "confirmed through REST."
        )
        source = sm.DataSource.objects.create(
            name=f"bench-mlflow-{uuid.uuid4().hex[:8]}",
            kind=sm.DataSource.Kind.MLFLOW,
            config={"tracking_uri": server.url, "page_size": 500},
            schedule_minutes=0,
        )
        records = served["models"] + served["versions"]
        try:
            for label in ("first", "second"):
                run, seconds = _timed_sync(source)
                if run.status != sm.SyncRun.Status.SUCCEEDED:
                    raise MlflowServerError(
                        f"The {label} sync ended {run.status}: {run.error}"
                    )
                rate = records / seconds if seconds else 0.0
                result[label] = {
                    "seconds": round(seconds, 2),
                    "records_per_second": round(rate),
                    "models_seen": run.seen,
                    "created": run.created,
                    "updated": run.updated,
                    "unchanged": run.unchanged,
                    **run.bench_cost,
                }
                out(
                    f"{label} sync ({'create' if label == 'first' else 'unchanged'}): "
                    f"{records} records ({run.seen} models) in {seconds:.2f} s = "
                    f"{rate:.0f} records/s; created {run.created}, updated "
                    f"{run.updated}, unchanged {run.unchanged}; worker CPU "
                    f"{run.bench_cost['cpu_seconds']:.2f} s, "
                    f"{run.bench_cost['queries']} SQL statements"
                )
        finally:
            if not keep:
                label = source.source_label
                summary.delete_in_bulk(m.ModelVersion.objects.filter(source=label))
                summary.delete_in_bulk(m.AIModel.objects.filter(source=label))
                source.delete()
    result["records"] = records
    return result
