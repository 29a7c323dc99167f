"""A hostile upload fails its run with the reason; the worker and the source survive it.

The parse that would exhaust memory runs only in the guard's child process, under an
address-space limit, so these tests cannot exhaust the machine either.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from sources import models as sm
from sources.connectors.kubernetes import KubernetesConnector
from sources.sync import runner, upload_guard
from sources.sync.base import FetchContext, SourceConfigError

DEPTH = 200_000
# The probe's file: 400 KB that drove a worker to 23 GB.
NESTED = b'{"items":' + b"[" * DEPTH + b"]" * DEPTH + b"}"

RULES = "^svc-(?P<model>[a-z0-9-]+)$ => model"


def source_of(kind: str, name: str = "") -> sm.DataSource:
    config = {} if kind == "kubernetes" else {"rules": RULES}
    return sm.DataSource.objects.create(
        name=name or f"{kind} upload", kind=kind, config=config
    )


@pytest.fixture
def upload(db, django_capture_on_commit_callbacks, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")

    def do(source, content: bytes):
        with django_capture_on_commit_callbacks(execute=True):
            run, created = runner.request_sync(
                source=source,
                trigger="upload",
                upload=SimpleUploadedFile("export.json", content),
            )
        assert created
        run.refresh_from_db()
        return run

    return do


@pytest.mark.parametrize("kind", ["kubernetes", "gcp_keys", "github_tokens"])
def test_deeply_nested_upload_fails_at_once_and_frees_the_source(
    upload, kind, settings
):
    source = source_of(kind)
    started = time.monotonic()
    run = upload(source, NESTED)
    assert time.monotonic() - started < 20
    assert run.status == "failed"
    assert run.error == upload_guard.UPLOAD_TOO_DEEP.format(
        depth=DEPTH + 1,
        limit=settings.SYNC_UPLOAD_MAX_JSON_DEPTH,
    )
    source.refresh_from_db()
    assert source.health == "failing" and source.last_error == run.error
    # The source is free: the next upload is taken and runs.
    again = upload(source, b'{"items": []}' if kind == "kubernetes" else b"[]")
    assert again.status in {"succeeded", "partial", "failed"}
    assert again.error != runner.RUN_IN_PROGRESS


def test_the_memory_cap_stops_a_parse_that_would_exhaust_the_worker(
    db, settings, tmp_path
):
    """Past the depth check (raised here), ijson at depth 30,000 wants gigabytes: the
    child process reading it hits its 96 MB cap and the run's reason says so."""
    settings.SYNC_UPLOAD_MAX_JSON_DEPTH = 10**7
    settings.SYNC_PARSE_MEMORY_MB = 96
    path = tmp_path / "deep.json"
    path.write_bytes(b'{"items":' + b"[" * 30_000 + b"]" * 30_000 + b"}")
    source = source_of("kubernetes")
    fctx = FetchContext(source=source, settings={}, secrets={}, upload_path=str(path))
    with pytest.raises(SourceConfigError) as caught:
        upload_guard.check_upload(
            connector=KubernetesConnector(source), fctx=fctx, json_upload=True
        )
    assert str(caught.value) == upload_guard.UPLOAD_OUT_OF_MEMORY.format(limit=96)


def test_an_honest_upload_passes_the_guard(db, tmp_path):
    path = tmp_path / "ok.json"
    path.write_bytes(b'{"kind": "List", "items": [{"a": [1, {"b": "[[[["}]}]}')
    source = source_of("kubernetes")
    fctx = FetchContext(source=source, settings={}, secrets={}, upload_path=str(path))
    upload_guard.check_upload(
        connector=KubernetesConnector(source), fctx=fctx, json_upload=True
    )


@pytest.mark.parametrize(
    ("content", "depth"),
    [
        (b"{}", 1),
        (b'{"a": [[1], {"b": []}]}', 4),
        (b'["[[[[", "\\"[[[", "{{{\\\\"]', 1),  # brackets and escapes inside strings
        (b"[" * 5 + b"]" * 5, 5),
        (b'"\\"' * 100_000, 0),  # unterminated strings: linear, not quadratic
        (b"[\n" * 3000 + b"]\n" * 3000, 3000),  # spans several 1 MB buffers
    ],
)
def test_json_depth_scan(tmp_path, content, depth):
    path = tmp_path / "f.json"
    path.write_bytes(content)
    started = time.monotonic()
    assert upload_guard.json_depth(str(path)) == depth
    assert time.monotonic() - started < 5


def test_json_depth_scan_across_buffers_keeps_string_state(tmp_path, monkeypatch):
    monkeypatch.setattr(upload_guard, "_CHUNK", 7)
    path = tmp_path / "f.json"
    path.write_bytes(b'{"a": "[[[[[[[[[[[[[[",\n "b": [[["x]]]]]]]]]"]]]\n}')
    assert upload_guard.json_depth(str(path)) == 4


def dead_run(source: sm.DataSource, attempt: int) -> sm.SyncRun:
    long_ago = timezone.now() - timedelta(hours=1)
    return sm.SyncRun.objects.create(
        source=source,
        trigger="upload",
        status="running",
        attempt=attempt,
        phase="checking the upload",
        started_at=long_ago,
        heartbeat_at=long_ago,
    )


def test_a_run_whose_worker_keeps_dying_fails_with_the_reason_and_frees_the_source(
    db, settings, upload
):
    source = source_of("kubernetes")
    run = dead_run(source, attempt=settings.SYNC_MAX_ATTEMPTS)
    result = runner.reconcile()
    assert result["exhausted"] == 1 and result["requeued"] == 0
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error == runner.RUN_ATTEMPTS_EXHAUSTED.format(
        attempts=settings.SYNC_MAX_ATTEMPTS,
        phase="checking the upload",
        limit=settings.SYNC_MAX_ATTEMPTS,
    )
    source.refresh_from_db()
    assert source.health == "failing" and source.last_error == run.error
    event = AuditEvent.objects.filter(action="datasource.sync").latest("id")
    assert event.after["status"] == "failed" and event.after["run"] == run.pk
    # A second tick changes nothing more; a duplicate delivery cannot claim it.
    assert runner.reconcile()["exhausted"] == 0
    assert runner.execute_run(run.pk) is None
    again = upload(source, b'{"items": []}')
    assert again.status == "succeeded"


def test_a_run_under_the_attempt_cap_is_still_requeued(db, settings):
    source = source_of("kubernetes")
    run = dead_run(source, attempt=settings.SYNC_MAX_ATTEMPTS - 1)
    result = runner.reconcile()
    assert result["requeued"] == 1 and result["exhausted"] == 0
    run.refresh_from_db()
    # The (eager) worker claimed it again: its last allowed attempt ran to an end.
    assert run.attempt == settings.SYNC_MAX_ATTEMPTS
    assert run.status != "running" and "stopped retrying" not in run.error


def test_the_run_page_says_the_attempts_and_the_upload_limits(
    upload, admin_user, login, settings
):
    run = upload(source_of("kubernetes"), NESTED)
    page = login(admin_user).get(reverse("sources:run_detail", args=[run.pk]))
    html = page.content.decode()
    assert f"attempt 1 of at most {settings.SYNC_MAX_ATTEMPTS}" in html
    assert f"JSON nested at most {settings.SYNC_UPLOAD_MAX_JSON_DEPTH} levels" in html
    assert "refused it before parsing" in html


def test_an_upload_is_parsed_once_in_the_child_and_applied_from_its_spool(
    upload, monkeypatch
):
    """The worker applies the records the memory-capped child read; it does not parse
    the file a second time, and the run is what reading it itself gives. A file the
    child could not read (not JSON) is read by the worker itself, which reports it."""
    import contextlib
    import json
    from pathlib import Path

    from inventory import models as m

    items = json.loads(
        (Path(__file__).parent.parent / "fixtures/k8s/deployments.json").read_text()
    )["items"]
    body = json.dumps({"kind": "List", "items": [*items, {"kind": "x"}]}).encode()
    calls = []
    real_fetch = KubernetesConnector.fetch

    def counting_fetch(self, ctx):
        calls.append(ctx.upload_path)  # in the worker only: the child is a fork
        return real_fetch(self, ctx)

    monkeypatch.setattr(KubernetesConnector, "fetch", counting_fetch)

    def shape(run):
        rows = m.Deployment.objects.filter(source=run.source.source_label)
        return (
            (run.status, run.seen, run.created, run.errors, run.expected),
            sorted(rows.values_list("external_id", "name", "endpoint")),
        )

    spooled = upload(source_of("kubernetes"), body)
    assert calls == [], "the worker parsed the upload again"
    assert spooled.created > 0 and spooled.errors == 1
    # The same file read by the worker itself (the guard yields no spool): same run.
    real_read = upload_guard.read_upload

    @contextlib.contextmanager
    def no_spool(**kwargs):
        with real_read(**kwargs):
            yield None

    monkeypatch.setattr(upload_guard, "read_upload", no_spool)
    itself = upload(source_of("kubernetes", "read by the worker"), body)
    assert len(calls) == 1
    # Same counters too: the observed models the first run made on the side are not
    # rows of the kinds a Kubernetes source keeps, so they count in neither run.
    assert shape(itself)[0] == shape(spooled)[0]
    assert [r[1:] for r in shape(itself)[1]] == [r[1:] for r in shape(spooled)[1]]
    monkeypatch.setattr(upload_guard, "read_upload", real_read)
    bad = upload(source_of("kubernetes", "bad"), b'{"kind": "List", "items": [')
    assert bad.status == "failed" and "JSON" in bad.error
    assert len(calls) == 2
