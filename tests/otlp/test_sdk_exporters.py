"""The OpenTelemetry SDK's own OTLP/HTTP exporter sends to Runproof's live server.

Protobuf goes through `OTLPSpanExporter` (opentelemetry-exporter-otlp-proto-http), plain,
gzip and deflate, exactly as an instrumented application would send it. OTLP/JSON is not
sent by an SDK exporter here: the JSON HTTP exporter package pins a transport version that
conflicts with the protobuf exporter's, so it is not installed (see the research note).
Instead the SDK's own encoder (`encode_spans`) builds the request, protobuf's JSON mapping
writes it, and the ids are turned from base64 into the hex OTLP/JSON requires; `requests`
posts it. That is the same bytes the JSON exporter would produce, but not its client.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime

import pytest
import requests
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from inventory import models as m
from tests.otlp.spans import ENDPOINT, chat_spans, otlp_json, sdk_spans

START = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)


@pytest.fixture
def traces_url(live_server):
    return f"{live_server.url}/v1/traces"


def exporter(url: str, token: str, compression=None) -> OTLPSpanExporter:
    return OTLPSpanExporter(
        endpoint=url,
        headers={"Authorization": f"Bearer {token}"},
        compression=compression,
        timeout=10,
    )


@pytest.mark.parametrize(
    "compression",
    [Compression.NoCompression, Compression.Gzip, Compression.Deflate],
    ids=["plain", "gzip", "deflate"],
)
def test_sdk_protobuf_exporter(traces_url, telemetry_token, compression):
    sender = exporter(traces_url, telemetry_token, compression)
    chat = chat_spans(START, n=3, errors=1)
    embed = sdk_spans(
        {"service.name": "search-indexer", "deployment.environment.name": "staging"},
        [
            (
                "embeddings text-embed-3",
                START,
                40,
                {
                    "gen_ai.operation.name": "embeddings",
                    "gen_ai.system": "cohere",
                    "gen_ai.request.model": "text-embed-3",
                    "server.address": "embed.internal",
                    "user.id": "indexer-bot",
                },
                False,
            )
        ],
    )
    assert sender.export(chat) == SpanExportResult.SUCCESS
    assert sender.export(embed) == SpanExportResult.SUCCESS
    sender.shutdown()

    chat_usage = m.UsageHour.objects.get(deployment__endpoint=f"{ENDPOINT}:8080")
    assert (chat_usage.calls, chat_usage.errors, chat_usage.input_tokens) == (3, 1, 30)
    assert chat_usage.caller_service == "support-portal"
    embed_usage = m.UsageHour.objects.get(deployment__endpoint="embed.internal")
    assert (embed_usage.calls, embed_usage.caller_user) == (1, "indexer-bot")
    observed = m.Deployment.objects.filter(source__startswith="otlp:", owner=None)
    assert set(observed.values_list("name", "environment")) == {
        (f"support-chat-llm @ {ENDPOINT}:8080", "production"),
        ("text-embed-3 @ embed.internal", "staging"),
    }


def test_sdk_exporter_with_a_bad_token_fails_without_retrying(traces_url, issue_token):
    issue_token("read")  # a token exists, but not this one
    sender = exporter(traces_url, "rp_000000000000_wrong")
    assert sender.export(chat_spans(START)) == SpanExportResult.FAILURE
    sender.shutdown()
    assert not m.UsageHour.objects.exists()


@pytest.mark.parametrize("gzipped", [False, True], ids=["json", "json+gzip"])
def test_otlp_json_from_sdk_spans(traces_url, telemetry_token, gzipped):
    body = otlp_json(encode_spans(chat_spans(START, n=2, errors=0)))
    assert b'"traceId": "' in body
    headers = {
        "Authorization": f"Bearer {telemetry_token}",
        "Content-Type": "application/json",
    }
    if gzipped:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    response = requests.post(traces_url, data=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.content) == {}
    usage = m.UsageHour.objects.get()
    assert (usage.calls, usage.errors, usage.output_tokens) == (2, 0, 10)
