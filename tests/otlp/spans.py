"""Spans made by the real OpenTelemetry SDK, and the request bodies built from them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import Status, StatusCode

from sources.receivers import otlp

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "otlp"
ENDPOINT = "llm-gw.ml-serving.svc"
CHAT = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "support-chat-llm",
    "gen_ai.response.model": "support-chat-llm-2025-06-01",
    "server.address": ENDPOINT,
    "server.port": 8080,
}


def ns(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000) * 1000


def sdk_spans(
    resource: dict[str, Any],
    spans: Iterable[tuple[str, datetime, float, dict[str, Any], bool]],
) -> list[ReadableSpan]:
    """Finished SDK spans: (name, start, duration ms, attributes, error) each."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("runproof-tests")
    for name, start, duration_ms, attributes, error in spans:
        span = tracer.start_span(
            name,
            kind=trace.SpanKind.CLIENT,
            start_time=ns(start),
            attributes=attributes,
        )
        if error:
            span.set_status(Status(StatusCode.ERROR, "upstream failed"))
        span.end(end_time=ns(start) + int(duration_ms * 1_000_000))
    provider.shutdown()
    return list(memory.get_finished_spans())


def chat_spans(
    start: datetime,
    n: int = 3,
    *,
    service: str = "support-portal",
    errors: int = 1,
    model: str = "support-chat-llm",
    address: str = ENDPOINT,
) -> list[ReadableSpan]:
    """n chat calls from one service, the first `errors` failed: 100, 200, 300 ms …"""
    attributes = {**CHAT, "gen_ai.request.model": model, "server.address": address}
    return sdk_spans(
        {"service.name": service, "deployment.environment.name": "prod"},
        [
            (
                f"chat {model}",
                start,
                100.0 * (i + 1),
                {
                    **attributes,
                    "gen_ai.usage.input_tokens": 10,
                    "gen_ai.usage.output_tokens": 5,
                    "enduser.id": "alice@example.com",
                },
                i < errors,
            )
            for i in range(n)
        ],
    )


def protobuf_body(spans: list[ReadableSpan]) -> bytes:
    return encode_spans(spans).SerializeToString()


def otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """OTLP/JSON as the spec writes it: protobuf's JSON mapping with hex ids."""
    obj = json_format.MessageToDict(request)
    for rs in obj.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for span in ss.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(obj).encode()


def fixture_lines(name: str = "genai_spans.jsonl") -> list[str]:
    return (FIXTURES / name).read_text().splitlines()


def fixture_requests(
    name: str = "genai_spans.jsonl",
) -> list[ExportTraceServiceRequest]:
    return [otlp.parse_json(line) for line in fixture_lines(name) if line.strip()]
