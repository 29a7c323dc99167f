"""Importing a collector's OTLP JSON-lines file through the sync runner, once per file."""

from __future__ import annotations

import gzip
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from inventory import models as m
from sources import models as sm
from sources.connectors import otlp as connector
from sources.sync import runner
from tests.factories import AIModelFactory, DeploymentFactory
from tests.otlp.spans import FIXTURES

pytestmark = pytest.mark.django_db

BAD_LINE_FILE = FIXTURES / "import_one_bad_line.jsonl"
GOOD_FILE = FIXTURES / "genai_spans.jsonl"


@pytest.fixture
def sync(django_capture_on_commit_callbacks, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")

    def do(source, content: bytes, name="traces.jsonl", **kw):
        with django_capture_on_commit_callbacks(execute=True):
            run, created = runner.request_sync(
                source=source,
                trigger="upload",
                upload=SimpleUploadedFile(name, content),
                **kw,
            )
        assert created
        run.refresh_from_db()
        return run

    return do


@pytest.fixture
def source(db):
    return sm.DataSource.objects.create(
        name="Collector files", kind="otlp", schedule_minutes=0
    )


def usage_totals() -> tuple[int, int, int]:
    rows = list(m.UsageHour.objects.values_list("calls", "errors", "input_tokens"))
    return tuple(sum(col) for col in zip(*rows, strict=True)) if rows else (0, 0, 0)


def test_file_with_a_bad_line_is_a_partial_run(source, sync):
    run = sync(source, BAD_LINE_FILE.read_bytes())
    assert run.status == "partial", run.error
    assert (run.seen, run.errors) == (4, 1)  # the blank line is not a record
    (error,) = run.error_rows.all()
    assert error.external_id == "line 2"
    assert error.reason.startswith("Not JSON")
    assert error.excerpt.startswith('{"resourceSpans"')
    assert usage_totals() == (4, 2, 152)
    assert m.UsageHour.objects.count() == 4
    observed = m.Deployment.objects.filter(source=source.source_label)
    assert observed.count() == 3 and not observed.exclude(owner=None).exists()
    assert run.created == 3 + 2  # deployments, and the two models nobody registered
    assert run.updated == 4  # hour buckets
    summary = run.changes[0]
    assert summary["action"] == "imported" and summary["external_id"].startswith(
        "sha256:"
    )
    assert (summary["spans"], summary["genai_spans"], summary["ignored_spans"]) == (
        5,
        4,
        1,
    )
    source.refresh_from_db()
    assert source.health == "degraded"


def test_the_same_file_again_is_refused_and_counts_nothing_twice(source, sync):
    first = sync(source, BAD_LINE_FILE.read_bytes())
    before = usage_totals()
    again = sync(source, BAD_LINE_FILE.read_bytes(), name="renamed.jsonl")
    assert again.status == "failed"
    assert f"already imported in run {first.pk}" in again.error
    assert usage_totals() == before
    # Another file is imported, and adds.
    other = sync(source, GOOD_FILE.read_bytes())
    assert other.status == "succeeded", other.error
    assert usage_totals() == tuple(2 * n for n in before)


def test_a_run_whose_worker_died_after_the_usage_committed_adds_nothing_twice(
    source, sync
):
    """The crash window between finish() committing and the run being marked done."""
    from datetime import timedelta

    from django.utils import timezone

    run = sync(source, GOOD_FILE.read_bytes())
    totals = usage_totals()
    # As the dead worker left it: usage and ImportedFile committed, run still running.
    long_ago = timezone.now() - timedelta(hours=1)
    sm.SyncRun.objects.filter(pk=run.pk).update(
        status="running", heartbeat_at=long_ago, finished_at=None
    )
    assert runner.reconcile()["requeued"] == 1
    run.refresh_from_db()
    assert (run.status, run.attempt) == ("succeeded", 2)
    assert usage_totals() == totals
    assert sm.ImportedFile.objects.get().run_id == run.pk


def test_a_dry_run_writes_nothing_and_does_not_count_as_imported(source, sync):
    dry = sync(source, GOOD_FILE.read_bytes(), dry_run=True)
    assert dry.status == "succeeded" and dry.created == 5
    assert (m.UsageHour.objects.count(), m.Deployment.objects.count()) == (0, 0)
    real = sync(source, GOOD_FILE.read_bytes())
    assert real.status == "succeeded"
    assert m.UsageHour.objects.count() == 4


def test_imported_usage_joins_the_registered_deployment(source, sync):
    model = AIModelFactory(name="support-chat-llm")
    known = DeploymentFactory(model=model, endpoint="http://llm-gw.ml-serving.svc:8080")
    run = sync(source, GOOD_FILE.read_bytes())
    assert run.status == "succeeded"
    assert set(
        m.UsageHour.objects.filter(deployment=known).values_list(
            "caller_user", flat=True
        )
    ) == {"alice@example.com", "bob@example.com"}
    assert not m.Deployment.objects.filter(
        external_id__contains="support-chat-llm", source=source.source_label
    ).exists()


def test_a_gzipped_file_is_read(source, sync):
    run = sync(source, gzip.compress(GOOD_FILE.read_bytes()), name="traces.jsonl.gz")
    assert (run.status, run.seen) == ("succeeded", 3)
    assert usage_totals() == (4, 2, 152)


def test_a_failure_while_writing_writes_nothing_and_the_file_can_be_imported_again(
    source, sync, monkeypatch
):
    from sources.receivers import otlp

    real = otlp._touch_last_seen

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(otlp, "_touch_last_seen", broken)
    failed = sync(source, GOOD_FILE.read_bytes())
    assert failed.status == "failed" and "disk full" in failed.error
    assert (m.UsageHour.objects.count(), m.Deployment.objects.count()) == (0, 0)
    monkeypatch.setattr(otlp, "_touch_last_seen", real)
    retried = sync(source, GOOD_FILE.read_bytes())
    assert retried.status == "succeeded"
    assert usage_totals() == (4, 2, 152)


def test_lines_too_long_and_not_otlp_are_skipped(source, sync, settings):
    settings.OTLP_MAX_INFLATED_BYTES = 2000
    good = GOOD_FILE.read_text().splitlines()[2]  # the short hand-written line
    content = "\n".join(
        [
            good,
            '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}',
            "[1, 2, 3]",
            '{"resourceSpans": [' + "1, " * 1500 + "1]}",
        ]
    ).encode()
    run = sync(source, content)
    assert (run.status, run.seen, run.errors) == ("partial", 4, 3)
    reasons = dict(run.error_rows.values_list("external_id", "reason"))
    assert "not hex" in reasons["line 2"]
    assert "top level is not an object" in reasons["line 3"]
    assert "longer than 2000 bytes" in reasons["line 4"]
    assert m.UsageHour.objects.get().calls == 1


def test_import_otlp_command_prints_counts_and_refuses_a_second_import(
    settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    out = io.StringIO()
    call_command("import_otlp", str(BAD_LINE_FILE), stdout=out)
    text = out.getvalue()
    assert "succeeded, records skipped: 4 line(s) read, 1 skipped." in text
    assert "5 span(s): 4 GenAI, 1 without GenAI attributes" in text
    assert "4 hourly usage bucket(s) written for 3 deployment(s)" in text
    assert "skipped line 2: Not JSON: Expecting ',' delimiter at character 69." in text
    source = sm.DataSource.objects.get(kind="otlp")
    assert source.name == "OpenTelemetry traces"
    with pytest.raises(CommandError, match="already imported"):
        call_command("import_otlp", str(BAD_LINE_FILE), stdout=io.StringIO())
    assert m.UsageHour.objects.count() == 4


def test_connector_declares_an_upload_only_source():
    assert connector.OtlpConnector.pull is False
    assert connector.OtlpConnector.upload == "required"
    assert connector.OtlpConnector.owns == ()


@pytest.mark.parametrize("plain_first", [True, False])
def test_the_same_file_plain_and_gzipped_is_imported_once(source, sync, plain_first):
    """Issue 8, item 12: a file is known by its decompressed content."""
    plain = GOOD_FILE.read_bytes()
    uploads = [(plain, "traces.jsonl"), (gzip.compress(plain), "traces.jsonl.gz")]
    if not plain_first:
        uploads.reverse()
    first = sync(source, uploads[0][0], name=uploads[0][1])
    assert first.status == "succeeded", first.error
    before = usage_totals()
    again = sync(source, uploads[1][0], name=uploads[1][1])
    assert again.status == "failed"
    assert f"already imported in run {first.pk}" in again.error
    assert usage_totals() == before


def test_a_corrupt_gzip_file_fails_with_the_reason(source, sync):
    run = sync(source, gzip.compress(GOOD_FILE.read_bytes())[:-20], name="cut.jsonl.gz")
    assert run.status == "failed"
    assert run.error.startswith("The uploaded file cannot be read")
