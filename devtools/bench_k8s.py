"""Time the Kubernetes connector on a 50,000-object cluster, and show its memory stays flat.

The "cluster" is the fake apiserver (devtools.k8s_fake) in its own process, serving
synthetic objects it builds on demand (a mix of Deployments, KServe InferenceServices and
Seldon objects across ~500 namespaces, ~2,000 service accounts and ~2,000 secrets). The
sync talks to it through the official client with `limit=500` pages, exactly as it would
to a real API server. Then the same objects are written to a kubectl-style List file and
synced through the upload path.

Memory is reported as the growth of the process's peak RSS (getrusage) during each phase:
the peak is a high-water mark, so a later phase shows growth only if it needed more than
every phase before it. Bounded memory means these stay small and do not grow with the
object count.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from django.conf import settings

from devtools.k8s_fake import SyntheticShape, iter_synthetic, write_list_file

STARTUP_SECONDS = 20
BENCH_TOKEN = "bench-k8s-token"  # noqa: S105 (the fake apiserver's, not a secret)


class BenchError(RuntimeError):
    """The fake apiserver did not start, or a sync did not succeed."""


@contextmanager
def fake_apiserver_process(shape: SyntheticShape, token: str) -> Iterator[str]:
    """Run the fake apiserver in its own process group; yield its URL; stop it after."""
    command = [
        sys.executable,
        "-m",
        "devtools.k8s_fake",
        "--synthetic",
        str(shape.objects),
        "--namespaces",
        str(shape.namespaces),
        "--service-accounts",
        str(shape.service_accounts),
        "--secrets",
        str(shape.secrets),
        "--models",
        str(shape.models),
        "--token",
        token,
    ]
    process = subprocess.Popen(  # noqa: S603 (our own module, fixed arguments)
        command,
        cwd=settings.BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{_wait_ready(process)}"
    finally:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _wait_ready(process: subprocess.Popen) -> str:
    deadline = time.monotonic() + STARTUP_SECONDS
    with selectors.DefaultSelector() as sel:
        sel.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                line = process.stdout.readline()
                if line.startswith("READY "):
                    return line.split()[1]
                if not line and process.poll() is not None:
                    break
    code = process.poll()
    tail = process.stderr.read()[-2000:] if code is not None else ""
    raise BenchError(
        f"The fake apiserver did not start within {STARTUP_SECONDS} s "
        f"(exit code {code}): {tail}"
    )


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _timed_run(source: Any, upload: Path | None = None) -> tuple[Any, float, float]:
    """One sync in this process (no broker): (run, seconds, peak RSS growth in MB)."""
    from django.core.files import File

    from sources import models as sm
    from sources.sync import runner

    run = sm.SyncRun(source=source, trigger=sm.SyncRun.Trigger.COMMAND)
    if upload is not None:
        with upload.open("rb") as f:
            run.upload.save(upload.name, File(f), save=False)
    run.save()
    peak_before = _peak_rss_mb()
    with worker_cost() as cost:
        started = time.perf_counter()
        runner.execute_run(run.pk)
        seconds = time.perf_counter() - started
    run.refresh_from_db()
    run.bench_cost = cost
    if run.status != sm.SyncRun.Status.SUCCEEDED:
        raise BenchError(f"The sync ended {run.status}: {run.error}")
    return run, seconds, _peak_rss_mb() - peak_before


@contextmanager
def worker_cost() -> Iterator[dict[str, float]]:
    """The worker's CPU seconds (its own and its finished children's: the upload guard)
    and SQL statements while the block runs. CPU is steadier than wall time on a shared
    machine; the database's and the source's own work are not in it."""
    from django.db import connection

    cost: dict[str, float] = {}
    queries = [0]

    def count(execute, sql, params, many, context):
        queries[0] += 1
        return execute(sql, params, many, context)

    def cpu() -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

    before = cpu()
    with connection.execute_wrapper(count):
        yield cost
    cost["cpu_seconds"] = round(cpu() - before, 2)
    cost["queries"] = queries[0]


def _seed_registry(shape: SyntheticShape, label: str) -> int:
    """Registry models for half the model names, versions 1-3 of each (4 and 5 are not
    registered, so some running versions resolve and some do not)."""
    from inventory import models as m

    models = m.AIModel.objects.bulk_create(
        m.AIModel(
            name=f"model-{i:04d}",
            source=label,
            external_id=f"model-{i:04d}",
            lifecycle=m.AIModel.Lifecycle.ACTIVE,
        )
        for i in range(0, shape.models, 2)
    )
    if any(model.pk is None for model in models):
        models = list(m.AIModel.objects.filter(source=label))
    versions = m.ModelVersion.objects.bulk_create(
        (
            m.ModelVersion(
                model=model,
                version=str(v),
                source=label,
                external_id=f"{model.name}/{v}",
                artifact_uri=f"s3://models/{model.name}/{v}",
            )
            for model in models
            for v in (1, 2, 3)
        ),
        batch_size=2000,
    )
    return len(versions)


def _client_decode_comparison(url: str, count: int) -> dict[str, float]:
    """Typed models against raw JSON for the same apps/v1 pages (why fetch reads raw)."""
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = url
    cfg.api_key = {"authorization": BENCH_TOKEN}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    timings: dict[str, float] = {}
    with client.ApiClient(cfg) as api:
        apps = client.AppsV1Api(api)
        for label, raw in (("typed", False), ("raw", True)):
            seen, token, started = 0, None, time.perf_counter()
            while seen < count:
                kwargs: dict[str, Any] = {"limit": 500}
                if token:
                    kwargs["_continue"] = token
                if raw:
                    response = apps.list_deployment_for_all_namespaces(
                        _preload_content=False, **kwargs
                    )
                    page = json.loads(response.data)
                    response.release_conn()
                    seen += len(page["items"])
                    token = page["metadata"].get("continue")
                else:
                    typed = apps.list_deployment_for_all_namespaces(**kwargs)
                    seen += len(typed.items)
                    token = typed.metadata._continue
                if not token:
                    break
            timings[label] = round(time.perf_counter() - started, 2)
    timings["objects"] = count
    return timings


def bench_k8s_sync(
    *,
    objects: int = 50_000,
    out: Callable[[str], Any] = print,
    keep: bool = False,
) -> dict[str, Any]:
    """Full sync, unchanged re-sync and upload of `objects` Kubernetes objects; figures.

    Runs against the configured database. What it wrote is deleted afterwards unless
    `keep`; the audit events of the runs stay (the audit trail is append-only).
    """
    import kubernetes.client  # noqa: F401 (imported now so its size is not counted as growth)
    from django.db import connection

    from sources import models as sm
    from sources.sync import secrets

    shape = SyntheticShape(objects=objects)
    registry_label = f"bench-k8s-registry-{uuid.uuid4().hex[:8]}"
    result: dict[str, Any] = {"database": connection.vendor, "objects": objects}
    sources: list[Any] = []
    out(
        f"Kubernetes bench on {connection.vendor}: {objects} objects "
        f"({', '.join(f'{n} {k}' for k, n in shape.counts().items())}) in "
        f"{shape.namespaces} namespaces; peak RSS at start {_peak_rss_mb():.0f} MB."
    )
    try:
        result["registry_versions"] = _seed_registry(shape, registry_label)
        with (
            tempfile.TemporaryDirectory(prefix="runproof-k8s-bench-") as tmp,
            fake_apiserver_process(shape, BENCH_TOKEN) as url,
        ):
            source = sm.DataSource.objects.create(
                name=f"bench-k8s-{uuid.uuid4().hex[:8]}",
                kind=sm.DataSource.Kind.KUBERNETES,
                config={"api_url": url, "page_size": 500},
                secrets_encrypted=secrets.encrypt({"token": BENCH_TOKEN}),
                schedule_minutes=0,
            )
            sources.append(source)
            for phase in ("api_first", "api_unchanged"):
                run, seconds, rss = _timed_run(source)
                result[phase] = _figures(run, seconds, rss)
                out(_line(phase, result[phase]))
            path = Path(tmp) / "kubectl-export.json"
            written = write_list_file(str(path), iter_synthetic(shape))
            size_mb = path.stat().st_size / 1e6
            result["upload_file_mb"] = round(size_mb, 1)
            out(f"upload file: {written} objects, {size_mb:.1f} MB")
            upload_source = sm.DataSource.objects.create(
                name=f"bench-k8s-upload-{uuid.uuid4().hex[:8]}",
                kind=sm.DataSource.Kind.KUBERNETES,
                config={},
                schedule_minutes=0,
            )
            sources.append(upload_source)
            run, seconds, rss = _timed_run(upload_source, upload=path)
            result["upload_first"] = _figures(run, seconds, rss)
            out(_line("upload_first", result["upload_first"]))
            run.upload.delete(save=False)
            # Last, so the typed models' allocations do not raise the peaks above.
            decode = _client_decode_comparison(url, min(objects, 10_000))
            result["client_decode_seconds"] = decode
            out(
                f"client decode of {decode['objects']} apps/v1 objects: typed models "
                f"{decode['typed']} s, raw JSON {decode['raw']} s (fetch uses raw)"
            )
    finally:
        if not keep:
            _cleanup(sources, registry_label)
    return result


def _figures(run: Any, seconds: float, rss_growth_mb: float) -> dict[str, Any]:
    return {
        "seconds": round(seconds, 2),
        "objects_per_second": round(run.seen / seconds) if seconds else 0,
        "seen": run.seen,
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "errors": run.errors,
        "peak_rss_growth_mb": round(rss_growth_mb, 1),
        **getattr(run, "bench_cost", {}),
    }


def _line(phase: str, f: dict[str, Any]) -> str:
    return (
        f"{phase}: {f['seen']} objects in {f['seconds']:.2f} s = "
        f"{f['objects_per_second']} objects/s; created {f['created']}, updated "
        f"{f['updated']}, unchanged {f['unchanged']}, errors {f['errors']}; peak RSS "
        f"grew {f['peak_rss_growth_mb']:.1f} MB; worker CPU {f.get('cpu_seconds', 0):.2f} s, "
        f"{f.get('queries', 0)} SQL statements"
    )


def _cleanup(sources: list[Any], registry_label: str) -> None:
    from inventory import models as m
    from inventory import summary

    labels = [source.source_label for source in sources]
    # Deployments first: one source's deployments may use models another source created.
    summary.delete_in_bulk(m.NonHumanIdentity.objects.filter(source__in=labels))
    summary.delete_in_bulk(m.Deployment.objects.filter(source__in=labels))
    summary.delete_in_bulk(m.AIModel.objects.filter(source__in=labels))
    for source in sources:
        for run in source.runs.exclude(upload=""):
            run.upload.delete(save=False)
        source.delete()
    summary.delete_in_bulk(m.ModelVersion.objects.filter(source=registry_label))
    summary.delete_in_bulk(m.AIModel.objects.filter(source=registry_label))
