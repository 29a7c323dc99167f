"""OpenTelemetry traces from a file: the JSON lines an OTel Collector's file exporter writes.

Each line is one OTLP/JSON ExportTraceServiceRequest (the collector's `file` exporter, the
Python `opentelemetry-exporter-otlp-json-file` exporter). The file is read line by line;
each line is decoded and aggregated (`sources.receivers.otlp`, the receiver's own code) into a
small per-line summary, so memory follows the number of usage buckets, not of spans. A line
that is not JSON or not OTLP is recorded as a skipped record ("line N") and the rest goes on.
A gzip-compressed file is read as such.

Idempotency. Usage counts are sums: importing the same file twice would count every call
twice. So the SHA-256 of the file is the import's identity. The buckets are written once,
in `finish()`, in the same transaction that records the digest as the first entry of the
run's `changes` (guarded by the run's lease); a later run with the same digest is refused
("already imported in run N"). Batches therefore only merge summaries in memory: a run cut
short writes nothing, and its retry starts from a clean slate. One narrow window remains:
a worker that dies after finish() commits but before the runner marks the run succeeded
leaves it RUNNING; the reconciler re-queues it and the claim clears its `changes`, so the
retry would import again. Closing it needs a record the claim keeps (a unique
(source, sha256) row), which is the runner's and the schema's to give.

Counts on the run: seen = lines read; created = observed deployments and models created;
updated = hour buckets written. Rows never go "gone": usage is history, and an observed
deployment stays until a registry or runtime claims it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, ClassVar

from django.conf import settings
from django.db.models import Model

from inventory import models as m
from sources import models as sm
from sources.receivers import otlp
from sources.sync.base import (
    Connector,
    FetchContext,
    Malformed,
    Record,
    SourceConfigError,
)

if TYPE_CHECKING:
    from sources.sync.engine import ApplyContext

ALREADY_IMPORTED = (
    "This file (SHA-256 {digest:.12}…) was already imported in run {run}; importing it "
    "again would count its calls twice."
)
NO_FILE = "Choose a JSON-lines file of OTLP trace exports to import."
UNREADABLE = "The uploaded file cannot be read: {reason}"
LINE_TOO_LONG = "The line is longer than {limit} bytes."
NOT_UTF8 = "The line is not UTF-8 text."
DIGEST_ACTION = "imported"
GZIP_MAGIC = b"\x1f\x8b"
# The most distinct buckets one import may hold in memory (about 300 bytes each).
MAX_BUCKETS = 500_000
TOO_MANY_BUCKETS = (
    "The file holds more than {limit} distinct usage buckets; split it into smaller "
    "files."
)


class OtlpConnector(Connector):
    kind = "otlp"
    label = "OpenTelemetry traces (OTLP)"
    description = (
        "Who calls which model, from GenAI trace spans: sent live to /v1/traces by the "
        "OpenTelemetry SDKs or a collector (a token with the telemetry scope), or "
        "imported from a collector's JSON-lines file."
    )
    pull = False
    upload = "required"
    upload_help = (
        "A JSON-lines file from an OpenTelemetry Collector's file exporter: one OTLP/JSON "
        "ExportTraceServiceRequest per line (gzip accepted). Each file is imported once."
    )
    owns: ClassVar[tuple[type[Model], ...]] = ()
    # Live exports to /v1/traces go through the receiver; this connector imports files.
    receiver = "sources.receivers.otlp.OtlpReceiver"

    def __init__(self, source: sm.DataSource) -> None:
        super().__init__(source)
        self.total = otlp.Aggregate()
        self.digest = ""
        self.run_id: int | None = None
        self.already_applied = False

    # -- fetch: outside any transaction -------------------------------------------------
    def fetch(self, ctx: FetchContext) -> Iterator[Record | Malformed]:
        if not ctx.upload_path:
            raise SourceConfigError(NO_FILE)
        self.digest, lines, as_uploaded = _file_digest(ctx.upload_path)
        self.run_id = ctx.run_id
        if lines:
            ctx.expect(lines)
        earlier = _earlier_import(ctx.source, self.digest)
        if earlier is None and as_uploaded != self.digest:
            # Compressed files imported before files were known by their content.
            earlier = _earlier_import(ctx.source, as_uploaded)
        if earlier is not None and earlier != self.run_id:
            raise SourceConfigError(
                ALREADY_IMPORTED.format(digest=self.digest, run=earlier)
            )
        if earlier is not None:
            # This very run committed the file's usage, then its worker died before
            # the run was marked done: the retry finds the work done and adds nothing.
            self.already_applied = True
            return
        limit = settings.OTLP_MAX_INFLATED_BYTES
        with _open(ctx.upload_path) as f:
            number = 0
            while True:
                line = f.readline(limit + 1)
                if not line:
                    break
                number += 1
                ext = f"line {number}"
                if len(line) > limit and not line.endswith(b"\n"):
                    _skip_rest_of_line(f, limit)
                    yield Malformed(ext, LINE_TOO_LONG.format(limit=limit), "")
                    continue
                if not line.strip():
                    continue  # blank lines are not records
                # apply() merges between yields; the check sits here because a failure
                # raised in apply() would be retried record by record.
                if len(self.total.buckets) > MAX_BUCKETS:
                    raise SourceConfigError(TOO_MANY_BUCKETS.format(limit=MAX_BUCKETS))
                yield _parse_line(ext, line)

    # -- apply: in the runner's batch transaction ---------------------------------------
    def apply(self, batch: list[Record], ctx: ApplyContext) -> None:
        """Merge the lines' summaries; the database is written once, in finish()."""
        for record in batch:
            self.total.merge(record.payload)

    def finish(self, ctx: ApplyContext) -> None:
        """Write the whole file's usage and record its digest, in one transaction."""
        if not self.digest or self.already_applied:
            return
        if not ctx.dry_run:
            # The unique (source, digest) row commits with the usage, or neither does.
            sm.ImportedFile.objects.create(
                source=ctx.source, sha256=self.digest, run=ctx.run
            )
        entry: dict[str, Any] = {
            "action": DIGEST_ACTION,
            "kind": "file",
            "external_id": f"sha256:{self.digest}",
        }
        result = otlp.apply_aggregate(self.total, source_label=ctx.label, cache=None)
        ctx.counts.created += len(result.deployments_created) + len(
            result.models_created
        )
        ctx.counts.updated += result.buckets
        entry.update(
            spans=self.total.spans,
            genai_spans=self.total.genai,
            ignored_spans=self.total.ignored,
            rejected_spans=self.total.rejected,
            buckets=result.buckets,
            deployments=result.deployments,
        )
        otlp.push_record(source=ctx.source, result=result, run_id=ctx.run.pk)
        for ext in result.deployments_created:
            ctx._note_change("created", m.Deployment, ext)
        for ext in result.models_created:
            ctx._note_change("created", m.AIModel, ext)
        changes = [entry, *ctx.changes]
        if not ctx.dry_run:
            # Recorded in this transaction, with the usage, and only while this attempt
            # still holds the run: a run presumed dead and re-claimed writes nothing.
            from sources.sync.runner import LostLease

            owned = sm.SyncRun.objects.filter(
                pk=ctx.run.pk, attempt=ctx.run.attempt, status=sm.SyncRun.Status.RUNNING
            ).update(changes=changes)
            if not owned:
                raise LostLease(ctx.run.pk)
        ctx.changes[:] = changes


def _parse_line(ext: str, line: bytes) -> Record | Malformed:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return Malformed(ext, NOT_UTF8, _excerpt(line))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:  # its own "line 2" would not be the file's
        return Malformed(
            ext, f"Not JSON: {exc.msg} at character {exc.pos + 1}.", _excerpt(line)
        )
    except (ValueError, RecursionError) as exc:
        return Malformed(ext, f"Not JSON: {exc}", _excerpt(line))
    try:
        request = otlp.request_from_json(obj)
    except otlp.OtlpError as exc:
        return Malformed(ext, exc.message, _excerpt(line))
    return Record(ext, otlp.Aggregate().add_request(request))


def _excerpt(line: bytes) -> str:
    return line[:300].decode("utf-8", "replace")


def _open(path: str) -> IO[bytes]:
    try:
        with open(path, "rb") as probe:
            magic = probe.read(2)
        return gzip.open(path, "rb") if magic == GZIP_MAGIC else open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise SourceConfigError(UNREADABLE.format(reason=exc.strerror)) from None


def _skip_rest_of_line(f: IO[bytes], chunk: int) -> None:
    while True:
        rest = f.readline(chunk)
        if not rest or rest.endswith(b"\n"):
            return


def _file_digest(path: str) -> tuple[str, int, str]:
    """SHA-256 of the file's content (decompressed), its line count, and the SHA-256 of
    the file as uploaded.

    A file is known by its content, so the same collector file uploaded once plain and
    once gzip-compressed is imported once.
    """
    content, uploaded = hashlib.sha256(), hashlib.sha256()
    lines = 0
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                uploaded.update(block)
        with _open(path) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                content.update(block)
                lines += block.count(b"\n")
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise SourceConfigError(UNREADABLE.format(reason=reason)) from None
    return content.hexdigest(), lines, uploaded.hexdigest()


def _earlier_import(source: sm.DataSource, digest: str) -> int | None:
    """The run of this source that already imported a file with this digest, if any.

    The ImportedFile row is written in the transaction that adds the usage, so a run
    that failed or was cut short before that commit left none.
    """
    return (
        sm.ImportedFile.objects.filter(source=source, sha256=digest)
        .values_list("run_id", flat=True)
        .first()
    )
