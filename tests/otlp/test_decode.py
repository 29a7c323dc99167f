"""Decoding and aggregating OTLP traces: pure functions, on fixtures made by the OTel SDK."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from sources.receivers import otlp
from tests.otlp.spans import (
    chat_spans,
    fixture_lines,
    fixture_requests,
    otlp_json,
    protobuf_body,
    sdk_spans,
)

HOUR_10 = int(datetime(2026, 3, 2, 10, tzinfo=UTC).timestamp())
HOUR_11 = HOUR_10 + 3600
GW = "llm-gw.ml-serving.svc:8080"
CHAT_MODEL = "support-chat-llm"
ANSWERED_BY = "support-chat-llm-2025-06-01"


def fixture_aggregate() -> otlp.Aggregate:
    return otlp.aggregate(fixture_requests())


def test_fixture_spans_become_hourly_buckets():
    agg = fixture_aggregate()
    assert (agg.spans, agg.genai, agg.ignored, agg.rejected) == (5, 4, 1, 0)
    assert agg.buckets == {
        # enduser.id wins over user.id; tokens summed; 250 ms.
        (
            GW,
            CHAT_MODEL,
            HOUR_10,
            "support-portal",
            "alice@example.com",
            "chat",
            ANSWERED_BY,
        ): [
            1,
            0,
            250.0,
            250.0,
            42,
            7,
        ],
        # Status ERROR counts as an error.
        (
            GW,
            CHAT_MODEL,
            HOUR_10,
            "support-portal",
            "bob@example.com",
            "chat",
            ANSWERED_BY,
        ): [
            1,
            1,
            1000.0,
            1000.0,
            10,
            0,
        ],
        # user.id when there is no enduser.id; error.type counts as an error; no port.
        (
            "embed.internal",
            "text-embed-3",
            HOUR_11,
            "batch-scorer",
            "svc-batch",
            "embeddings",
            "",
        ): [
            1,
            1,
            80.0,
            80.0,
            100,
            0,
        ],
        # The research note's hand-written line: no server.address, no user, no tokens.
        ("", "text-embed-3", HOUR_11, "json-client", "", "embeddings", ""): [
            1,
            0,
            pytest.approx(0.050962),
            pytest.approx(0.050962),
            0,
            0,
        ],
    }


def test_provider_from_either_attribute_and_environment_from_either_key():
    seen = fixture_aggregate().deployments
    # gen_ai.provider.name (and gen_ai.system) on the chat spans, deployment.environment.name=prod
    assert seen[(GW, CHAT_MODEL)].provider == "openai"
    assert seen[(GW, CHAT_MODEL)].environment == "production"
    # only the deprecated gen_ai.system, and the older deployment.environment=staging
    assert seen[("embed.internal", "text-embed-3")].provider == "cohere"
    assert seen[("embed.internal", "text-embed-3")].environment == "staging"
    # nothing said: production
    assert seen[("", "text-embed-3")].environment == "production"
    assert seen[("", "text-embed-3")].operation == "embeddings"


def test_json_ids_are_hex_and_decode_to_the_right_bytes():
    line = fixture_lines()[2]
    request = otlp.parse_json(line.encode())
    span = request.resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "04269f07813c0a5f17261db93c847c07"
    assert span.span_id.hex() == "4ad49edd40b06d92"
    assert span.start_time_unix_nano == 1772449200211496684  # int64 sent as a string


def test_protobuf_and_json_of_the_same_spans_aggregate_alike():
    spans = chat_spans(datetime(2026, 3, 2, 9, 30, tzinfo=UTC), n=4, errors=2)
    body = protobuf_body(spans)
    from_protobuf = otlp.aggregate([otlp.parse_protobuf(body)])
    as_json = otlp_json(otlp.parse_protobuf(body))
    assert b'"traceId": "' in as_json and b"==" not in as_json  # hex, not base64
    from_json = otlp.aggregate([otlp.parse_json(as_json)])
    assert from_protobuf.buckets == from_json.buckets
    ((key, bucket),) = from_protobuf.buckets.items()
    assert key[:3] == (GW, CHAT_MODEL, HOUR_10 - 3600)
    assert bucket == [4, 2, 1000.0, 400.0, 40, 20]


def test_fixture_round_trips_through_protobuf():
    bodies = [r.SerializeToString() for r in fixture_requests()]
    again = otlp.aggregate(otlp.parse_protobuf(b) for b in bodies)
    assert again.buckets == fixture_aggregate().buckets


@pytest.mark.parametrize(
    "encoding,compress",
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib format, as the OTel exporters send it
        (
            "deflate",
            lambda b: zlib.compress(b)[2:-4],
        ),  # raw deflate, as some clients do
        ("", lambda b: b),
    ],
    ids=["gzip", "deflate-zlib", "deflate-raw", "identity"],
)
def test_inflate_each_encoding(encoding, compress):
    body = protobuf_body(chat_spans(datetime(2026, 3, 2, 9, tzinfo=UTC)))
    assert otlp.inflate(compress(body), encoding, 1 << 20) == body


def test_inflate_reads_every_gzip_member():
    assert (
        otlp.inflate(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", 10) == b"abcd"
    )


@pytest.mark.parametrize(
    "encoding,body",
    [
        ("gzip", b"this is not gzip"),
        ("gzip", gzip.compress(b"x" * 1000, mtime=0)[:-12]),
        ("deflate", b"\x78\x9c garbage"),
        ("gzip", b""),
    ],
    # Readable ids, the same in every xdist worker (bytes would make them long).
    ids=["not-gzip", "gzip-cut-short", "deflate-garbage", "gzip-empty"],
)
def test_inflate_refuses_bad_data_with_400(encoding, body):
    with pytest.raises(otlp.OtlpError) as exc:
        otlp.inflate(body, encoding, 1 << 20)
    assert exc.value.status == 400


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_inflate_stops_a_bomb_at_the_limit(encoding):
    compress = gzip.compress if encoding == "gzip" else zlib.compress
    bomb = compress(b"\0" * (8 << 20))
    assert len(bomb) < 64 << 10
    with pytest.raises(otlp.OtlpError) as exc:
        otlp.inflate(bomb, encoding, 1 << 20)
    assert exc.value.status == 413


def test_inflate_without_encoding_still_checks_the_limit():
    with pytest.raises(otlp.OtlpError) as exc:
        otlp.inflate(b"x" * 11, "", 10)
    assert exc.value.status == 413


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}',
        b'{"resourceSpans": "nope"}',
        b'{"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": {"stringValue": "\\ud800"}}]}}]}',
        b"\xff\xfe",
        b"[" * 100_000,
    ],
    ids=[
        "not-json",
        "top-level-list",
        "bad-hex-id",
        "wrong-shape",
        "lone-surrogate",
        "not-utf8",
        "deep-nesting",
    ],
)
def test_bad_json_is_a_400(body):
    with pytest.raises(otlp.OtlpError) as exc:
        otlp.parse_json(body)
    assert exc.value.status == 400


def test_unknown_json_fields_are_ignored():
    obj = json.loads(fixture_lines()[2])
    obj["somethingNew"] = {"x": 1}
    obj["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["futureField"] = 3
    request = otlp.parse_json(json.dumps(obj))
    assert otlp.aggregate([request]).genai == 1


@pytest.mark.parametrize(
    "body", [b"\xff\xff\xff\xff garbage", b"\x0a\x05abc"], ids=["garbage", "cut-short"]
)
def test_garbage_protobuf_is_a_400(body):
    with pytest.raises(otlp.OtlpError) as exc:
        otlp.parse_protobuf(body)
    assert exc.value.status == 400


def test_spans_with_impossible_times_are_rejected_not_bucketed():
    good = datetime(2026, 3, 2, 9, tzinfo=UTC)
    spans = sdk_spans(
        {"service.name": "clock-skew"},
        [
            ("chat a", good, 10, {"gen_ai.request.model": "m"}, False),
            (
                "chat b",
                datetime(1990, 1, 1, tzinfo=UTC),
                10,
                {"gen_ai.request.model": "m"},
                False,
            ),
        ],
    )
    request = encode_request(spans)
    request.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano = 0
    request.resource_spans[0].scope_spans[0].spans[0].end_time_unix_nano = 0
    agg = otlp.aggregate(
        [request], now_ns=int(datetime(2026, 3, 3, tzinfo=UTC).timestamp()) * 10**9
    )
    assert (agg.genai, agg.rejected, agg.buckets) == (0, 2, {})


def test_text_attributes_are_cleaned_to_fit_their_columns():
    spans = sdk_spans(
        {"service.name": "svc\x00" + "s" * 500},
        [
            (
                "chat",
                datetime(2026, 3, 2, 9, tzinfo=UTC),
                5,
                {
                    "gen_ai.request.model": "m" * 300,
                    "gen_ai.usage.input_tokens": -5,
                    "gen_ai.usage.output_tokens": "12",
                    "server.port": "not a port",
                    "server.address": "host",
                    "enduser.id": 42,
                },
                False,
            )
        ],
    )
    ((key, bucket),) = otlp.aggregate([encode_request(spans)]).buckets.items()
    endpoint, model, _, service, user, _, _ = key
    assert endpoint == "host" and len(model) == 200
    assert service == "svc" + "s" * 197 and "\x00" not in service
    assert user == "42"
    assert bucket[4:] == [0, 12]


@pytest.mark.parametrize(
    "endpoint,forms,host",
    [
        (
            "https://LLM-gw:8080/v1/chat",
            {"https://llm-gw:8080/v1/chat", "llm-gw:8080"},
            "llm-gw",
        ),
        ("https://llm-gw/v1", {"https://llm-gw/v1", "llm-gw"}, "llm-gw"),
        ("llm-gw:8080", {"llm-gw:8080"}, "llm-gw"),
        ("llm-gw", {"llm-gw"}, "llm-gw"),
        ("http://llm-gw:notaport/", {"http://llm-gw:notaport/"}, ""),
        ("", set(), ""),
    ],
)
def test_endpoint_forms(endpoint, forms, host):
    assert otlp.endpoint_keys(endpoint) == (forms, host)


@pytest.mark.parametrize(
    "value,expected",
    [
        ("prod", "production"),
        ("Production", "production"),
        ("stage", "staging"),
        ("staging", "staging"),
        ("dev", "development"),
        ("qa", "development"),
        ("", "production"),
    ],
)
def test_environment_names(value, expected):
    assert otlp.environment_choice(value) == expected


def test_success_response_in_each_encoding():
    assert otlp.response_body(0, "", as_json=True) == b"{}"
    assert otlp.response_body(0, "", as_json=False) == b""
    partial = json.loads(otlp.response_body(2, "two dropped", as_json=True))
    assert partial == {
        "partialSuccess": {"rejectedSpans": "2", "errorMessage": "two dropped"}
    }


def encode_request(spans) -> ExportTraceServiceRequest:
    return otlp.parse_protobuf(protobuf_body(spans))
