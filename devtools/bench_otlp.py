"""The OTLP receiver's throughput, end to end, against PostgreSQL COPY of the same spans.

`bench_otlp()` builds protobuf ExportTraceServiceRequests of GenAI spans (about 50
deployments, 200 callers, a few hours), issues a telemetry token, and POSTs them through
Django's full WSGI stack in-process (django.test.Client: every middleware, the view, the
upserts on the current database). Spans per second there is the receiver's figure.

For scale, the same spans, one row each with the columns a raw-span table would need, are
COPYed into a TEMP table with psycopg's `cursor.copy()` on the same PostgreSQL database:
about the fastest a database takes rows. The ratio says what aggregating instead of
storing spans costs (or saves). COPY is PostgreSQL-only; on SQLite only the receiver is
measured.

The bench writes what it measures: usage rows and observed deployments named
`bench-gw-*.bench.invalid`, which a bench database can keep.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.test import Client
from django.test.utils import override_settings
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from inventory import models as m
from inventory import services
from sources.receivers import otlp

URL = "/v1/traces"
DEPLOYMENTS = 50
MODELS = 20
CALLERS = 200
SERVICES = 40
HOURS = 3
PROVIDERS = ("openai", "anthropic", "aws.bedrock", "azure.ai.openai", "gcp.vertex_ai")
ERROR_RATE = 0.02
RAW_SPAN_COLUMNS = (
    "trace_id",
    "span_id",
    "start_ts",
    "end_ts",
    "model",
    "endpoint",
    "service",
    "user_id",
    "status",
    "input_tokens",
    "output_tokens",
)


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build_requests(
    *, spans: int, batch: int, seed: int = 7, now: datetime | None = None
) -> tuple[list[bytes], list[tuple]]:
    """Protobuf bodies of `batch` spans each, and one raw row per span for COPY."""
    rng = random.Random(seed)  # noqa: S311 - repeatable test data, not secrets
    now = now or datetime.now(UTC)
    start_ns = int((now - timedelta(hours=HOURS)).timestamp() * 1e9)
    window_ns = HOURS * otlp.NS_PER_HOUR - 60 * 10**9
    targets = [
        (
            f"bench-gw-{i:02d}.bench.invalid",
            8000 + i % 4,
            f"bench-model-{i % MODELS:02d}",
            PROVIDERS[i % len(PROVIDERS)],
        )
        for i in range(DEPLOYMENTS)
    ]
    callers = [
        (f"bench-svc-{i % SERVICES:02d}", f"user-{i:03d}@example.com")
        for i in range(CALLERS)
    ]
    bodies: list[bytes] = []
    rows: list[tuple] = []
    remaining = spans
    while remaining > 0:
        size = min(batch, remaining)
        remaining -= size
        by_service: dict[str, list] = {}
        for _ in range(size):
            address, port, model, provider = rng.choice(targets)
            service, user = rng.choice(callers)
            embeddings = model.endswith(("3", "7"))
            begin = start_ns + rng.randrange(window_ns)
            end = begin + rng.randrange(20, 4000) * 10**6
            error = rng.random() < ERROR_RATE
            tokens_in = rng.randrange(10, 4000)
            tokens_out = 0 if embeddings else rng.randrange(1, 800)
            trace_id, span_id = rng.randbytes(16), rng.randbytes(8)
            by_service.setdefault(service, []).append(
                (
                    trace_id,
                    span_id,
                    begin,
                    end,
                    error,
                    [
                        _kv(
                            "gen_ai.operation.name",
                            "embeddings" if embeddings else "chat",
                        ),
                        _kv("gen_ai.provider.name", provider),
                        _kv("gen_ai.request.model", model),
                        _kv("gen_ai.response.model", f"{model}-2025-06-01"),
                        _kv("gen_ai.response.id", f"resp-{rng.getrandbits(48):x}"),
                        _kv("gen_ai.usage.input_tokens", tokens_in),
                        _kv("gen_ai.usage.output_tokens", tokens_out),
                        _kv("server.address", address),
                        _kv("server.port", port),
                        _kv("enduser.id", user),
                    ],
                )
            )
            rows.append(
                (
                    trace_id,
                    span_id,
                    datetime.fromtimestamp(begin / 1e9, UTC),
                    datetime.fromtimestamp(end / 1e9, UTC),
                    model,
                    f"{address}:{port}",
                    service,
                    user,
                    2 if error else 0,
                    tokens_in,
                    tokens_out,
                )
            )
        request = ExportTraceServiceRequest()
        for service, items in by_service.items():
            rs = request.resource_spans.add()
            rs.resource.attributes.extend(
                [
                    _kv("service.name", service),
                    _kv("deployment.environment.name", "prod"),
                    _kv("telemetry.sdk.language", "python"),
                ]
            )
            ss = rs.scope_spans.add()
            ss.scope.name = "opentelemetry.instrumentation.openai_v2"
            for trace_id, span_id, begin, end, error, attributes in items:
                span = ss.spans.add()
                span.trace_id, span.span_id = trace_id, span_id
                span.name = "chat"
                span.kind = 3  # CLIENT
                span.start_time_unix_nano, span.end_time_unix_nano = begin, end
                span.attributes.extend(attributes)
                if error:
                    span.status.code = otlp.STATUS_ERROR
        bodies.append(request.SerializeToString())
    return bodies, rows


def _post_all(client: Client, bodies: list[bytes], token: str) -> list[float]:
    latencies = []
    for body in bodies:
        started = time.perf_counter()
        response = client.generic(
            "POST",
            URL,
            data=body,
            content_type="application/x-protobuf",
            headers={"Authorization": f"Bearer {token}"},
        )
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise RuntimeError(
                f"/v1/traces answered {response.status_code}: {response.content[:200]!r}"
            )
    return latencies


def _copy_rows(rows: list[tuple]) -> float:
    """Seconds to COPY the rows into a TEMP table (PostgreSQL, psycopg 3)."""
    columns = ", ".join(RAW_SPAN_COLUMNS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_raw_spans (trace_id bytea, span_id bytea, "
            "start_ts timestamptz, end_ts timestamptz, model text, endpoint text, "
            "service text, user_id text, status smallint, input_tokens integer, "
            "output_tokens integer) ON COMMIT DROP"
        )
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        started = time.perf_counter()
        with raw.copy(f"COPY bench_raw_spans ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        elapsed = time.perf_counter() - started
        cursor.execute("SELECT count(*) FROM bench_raw_spans")
        (copied,) = cursor.fetchone()
    if copied != len(rows):
        raise RuntimeError(f"COPY wrote {copied} rows of {len(rows)}.")
    return elapsed


def bench_otlp(
    *,
    spans: int = 51200,
    batch: int = 512,
    out: Callable[[str], Any] = print,
    profile: bool = False,
) -> dict:
    """Measure the receiver (spans/s through the full stack) and COPY (rows/s); report both.

    Returns the figures as a dict. With `profile`, prints cProfile's top functions of the
    receiver run.
    """
    built = time.perf_counter()
    bodies, rows = build_requests(spans=spans, batch=batch)
    warmup, _ = build_requests(spans=batch, batch=batch, seed=8)
    out(
        f"Built {len(bodies)} protobuf requests of up to {batch} GenAI spans "
        f"({sum(map(len, bodies)) / len(bodies) / 1024:.0f} KiB each, {DEPLOYMENTS} "
        f"deployments, {CALLERS} callers, {HOURS} h) in {time.perf_counter() - built:.1f} s."
    )
    token, raw = services.api_token_issue(
        actor=None,
        actor_label="bench",
        name="bench-otlp",
        scopes=["telemetry"],
        days=1,
    )
    profiler = cProfile.Profile() if profile else None
    try:
        with override_settings(ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"]):
            client = Client()
            before = m.UsageHour.objects.aggregate(n=Sum("calls"))["n"] or 0
            cold = _post_all(client, warmup, raw)[0]
            if profiler:
                profiler.enable()
            started = time.perf_counter()
            latencies = _post_all(client, bodies, raw)
            elapsed = time.perf_counter() - started
            if profiler:
                profiler.disable()
            after = m.UsageHour.objects.aggregate(n=Sum("calls"))["n"] or 0
    finally:
        services.api_token_revoke(actor=None, token=token, actor_label="bench")
    applied = after - before - batch
    if applied != spans:
        raise RuntimeError(f"{spans} spans sent, {applied} calls counted.")
    receiver_rate = spans / elapsed
    latencies.sort()
    result: dict[str, Any] = {
        "database": connection.vendor,
        "spans": spans,
        "batch": batch,
        "requests": len(bodies),
        "receiver_seconds": elapsed,
        "receiver_spans_per_s": receiver_rate,
        "request_p50_ms": statistics.median(latencies) * 1000,
        "request_p95_ms": latencies[int(0.95 * (len(latencies) - 1))] * 1000,
        "first_request_ms": cold * 1000,
        "usage_rows": m.UsageHour.objects.filter(
            deployment__endpoint__contains=".bench.invalid"
        ).count(),
    }
    out(
        f"Receiver ({connection.vendor}, full WSGI stack): {spans} spans in {elapsed:.2f} s = "
        f"{receiver_rate:,.0f} spans/s; per request p50 {result['request_p50_ms']:.1f} ms, "
        f"p95 {result['request_p95_ms']:.1f} ms (first, creating the deployments: "
        f"{result['first_request_ms']:.0f} ms); {result['usage_rows']} usage rows."
    )
    if connection.vendor == "postgresql":
        copy_seconds = _copy_rows(rows)
        copy_rate = len(rows) / copy_seconds
        result.update(
            copy_seconds=copy_seconds,
            copy_rows_per_s=copy_rate,
            ratio=receiver_rate / copy_rate,
        )
        out(
            f"PostgreSQL COPY of the same spans as raw rows ({len(RAW_SPAN_COLUMNS)} "
            f"columns, TEMP table): {len(rows)} rows in {copy_seconds:.2f} s = "
            f"{copy_rate:,.0f} rows/s."
        )
        out(
            f"Ratio receiver ÷ COPY: {result['ratio']:.2f} (the receiver decodes, "
            "authenticates, aggregates and upserts; COPY only appends rows)."
        )
    else:
        out("COPY comparison: PostgreSQL only (this database is SQLite).")
    if profiler:
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).sort_stats("cumulative").print_stats(25)
        out(buffer.getvalue())
    return result
