"""POST /v1/traces through Django's full stack: what is written, and what is refused."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from inventory import models as m
from inventory import services
from sources import models as sm
from sources.receivers import otlp
from tests.factories import AIModelFactory, DeploymentFactory, IdentityFactory
from tests.otlp.spans import (
    CHAT,
    ENDPOINT,
    chat_spans,
    fixture_requests,
    otlp_json,
    protobuf_body,
    sdk_spans,
)

pytestmark = pytest.mark.django_db

URL = "/v1/traces"
PROTOBUF = "application/x-protobuf"
START = datetime(2026, 3, 2, 10, 5, tzinfo=UTC)


def post(client, body, *, token=None, content_type=PROTOBUF, encoding=None, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if encoding:
        headers["Content-Encoding"] = encoding
    return client.generic(
        "POST", URL, data=body, content_type=content_type, headers=headers
    )


def written() -> tuple[int, ...]:
    return (
        m.UsageHour.objects.count(),
        m.Deployment.objects.count(),
        m.AIModel.objects.count(),
        sm.DataSource.objects.count(),
    )


def test_spans_become_usage_and_an_observed_unowned_deployment(client, telemetry_token):
    response = post(
        client, protobuf_body(chat_spans(START, n=3, errors=1)), token=telemetry_token
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == PROTOBUF
    assert (
        ExportTraceServiceResponse.FromString(response.content)
        == ExportTraceServiceResponse()
    )

    source = sm.DataSource.objects.get(kind="otlp")
    assert source.name == otlp.RECEIVER_SOURCE_NAME and source.health == "healthy"
    deployment = m.Deployment.objects.get()
    assert deployment.source == source.source_label
    assert deployment.external_id == f"otel:{ENDPOINT}:8080|support-chat-llm"
    assert deployment.name == f"support-chat-llm @ {ENDPOINT}:8080"
    assert deployment.endpoint == f"{ENDPOINT}:8080"
    assert (deployment.owner, deployment.team, deployment.platform) == (
        None,
        None,
        "openai",
    )
    assert deployment.environment == "production"
    assert deployment.last_seen_at == START + timedelta(milliseconds=300)
    # The last call, kept with the usage rows (inventory.usage.record_calls).
    assert deployment.last_call_at == START + timedelta(milliseconds=300)
    model = deployment.model
    assert (model.name, model.kind, model.provider, model.source) == (
        "support-chat-llm",
        "llm",
        "openai",
        source.source_label,
    )
    usage = m.UsageHour.objects.get()
    assert usage.deployment == deployment
    assert usage.hour == datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert (
        usage.caller_service,
        usage.caller_user,
        usage.operation,
        usage.response_model,
    ) == (
        "support-portal",
        "alice@example.com",
        "chat",
        "support-chat-llm-2025-06-01",
    )
    assert (usage.calls, usage.errors, usage.input_tokens, usage.output_tokens) == (
        3,
        1,
        30,
        15,
    )
    assert usage.duration_ms_total == pytest.approx(600.0)
    assert usage.duration_ms_max == pytest.approx(300.0)
    assert usage.identity is None


def test_a_second_export_adds_to_the_same_buckets(client, telemetry_token):
    body = protobuf_body(chat_spans(START, n=3, errors=1))
    for _ in range(2):
        assert post(client, body, token=telemetry_token).status_code == 200
    longer = protobuf_body(chat_spans(START, n=1, errors=1))  # one failed 100 ms call
    assert post(client, longer, token=telemetry_token).status_code == 200
    usage = m.UsageHour.objects.get()
    assert (usage.calls, usage.errors, usage.input_tokens) == (7, 3, 70)
    assert usage.duration_ms_max == pytest.approx(300.0)
    assert m.Deployment.objects.count() == 1 and m.AIModel.objects.count() == 1


def test_fixture_requests_create_one_deployment_per_endpoint_and_model(
    client, telemetry_token
):
    for request in fixture_requests():
        assert (
            post(client, request.SerializeToString(), token=telemetry_token).status_code
            == 200
        )
    assert m.UsageHour.objects.count() == 4
    by_ext = {d.external_id: d for d in m.Deployment.objects.select_related("model")}
    assert set(by_ext) == {
        "otel:llm-gw.ml-serving.svc:8080|support-chat-llm",
        "otel:embed.internal|text-embed-3",
        "otel:|text-embed-3",
    }
    embed = by_ext["otel:embed.internal|text-embed-3"]
    assert (embed.environment, embed.platform, embed.model.kind) == (
        "staging",
        "cohere",
        "embedding",
    )
    assert by_ext["otel:|text-embed-3"].name == "text-embed-3 @ unknown endpoint"
    assert embed.model_id == by_ext["otel:|text-embed-3"].model_id  # one observed model


def test_json_export_is_answered_in_json(client, telemetry_token):
    request = otlp.parse_protobuf(protobuf_body(chat_spans(START)))
    response = post(
        client,
        otlp_json(request),
        token=telemetry_token,
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == b"{}"
    assert m.UsageHour.objects.get().calls == 3


@pytest.mark.parametrize(
    "encoding,compress", [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
def test_compressed_exports(client, telemetry_token, encoding, compress):
    body = compress(protobuf_body(chat_spans(START)))
    assert (
        post(client, body, token=telemetry_token, encoding=encoding).status_code == 200
    )
    assert m.UsageHour.objects.get().calls == 3


def test_existing_deployment_is_matched_by_endpoint_and_model(client, telemetry_token):
    # The registry's model is retired, but its deployment still answers: a shadow.
    model = AIModelFactory(name="support-chat-llm", lifecycle="retired")
    long_ago = timezone.now() - timedelta(days=400)
    known = DeploymentFactory(
        model=model,
        endpoint=f"https://{ENDPOINT}:8080/v1/chat/completions",
        last_seen_at=long_ago,
    )
    DeploymentFactory(
        model=AIModelFactory(name="other"), endpoint=f"https://{ENDPOINT}:8080/"
    )
    assert (
        post(
            client, protobuf_body(chat_spans(START)), token=telemetry_token
        ).status_code
        == 200
    )
    usage = m.UsageHour.objects.get()
    assert usage.deployment_id == known.pk
    known.refresh_from_db()
    assert known.last_seen_at == START + timedelta(milliseconds=300)
    assert known.last_call_at == START + timedelta(milliseconds=300)
    assert not m.Deployment.objects.filter(source__startswith="otlp:").exists()
    assert m.AIModel.objects.count() == 2


def test_address_alone_matches_and_registered_model_is_reused(client, telemetry_token):
    model = AIModelFactory(name="support-chat-llm")
    known = DeploymentFactory(model=model, endpoint=ENDPOINT)
    spans = chat_spans(START)
    assert post(client, protobuf_body(spans), token=telemetry_token).status_code == 200
    assert m.UsageHour.objects.get().deployment_id == known.pk
    # A later span does not move last_seen_at back.
    known.refresh_from_db()
    seen = known.last_seen_at
    earlier = chat_spans(START - timedelta(hours=5))
    assert (
        post(client, protobuf_body(earlier), token=telemetry_token).status_code == 200
    )
    known.refresh_from_db()
    assert known.last_seen_at == seen


def test_two_endpoint_forms_of_one_deployment_in_one_request_are_merged(
    client, telemetry_token
):
    known = DeploymentFactory(
        model=AIModelFactory(name="support-chat-llm"),
        endpoint=f"https://{ENDPOINT}:8080/v1",
    )
    with_port = chat_spans(START, n=2, errors=0)
    without_port = sdk_spans(
        {"service.name": "support-portal", "deployment.environment.name": "prod"},
        [
            (
                "chat support-chat-llm",
                START,
                50,
                {
                    key: value
                    for key, value in with_port[0].attributes.items()
                    if key != "server.port"
                },
                False,
            )
        ],
    )
    body = protobuf_body(with_port + without_port)
    assert post(client, body, token=telemetry_token).status_code == 200
    usage = m.UsageHour.objects.get()
    assert (usage.deployment_id, usage.calls) == (known.pk, 3)


@pytest.mark.parametrize(
    "stored,address,port,matches",
    [
        ("https://gw:8080/v1", "gw", 8080, True),
        ("https://gw:8080/v1", "gw", 9090, False),  # another port: another deployment
        ("https://gw:8080/v1", "gw", None, True),  # the span named no port
        ("https://gw/v1", "gw", 8080, True),  # the inventory named no port
        ("gw", "GW", 8080, True),
        ("", "", None, False),  # no address: never a registered deployment's
    ],
)
def test_endpoint_matching_rules(
    client, telemetry_token, stored, address, port, matches
):
    known = DeploymentFactory(
        model=AIModelFactory(name="support-chat-llm"), endpoint=stored
    )
    attributes = {**CHAT, "server.address": address, "server.port": port}
    attributes = {k: v for k, v in attributes.items() if v not in (None, "")}
    spans = sdk_spans({"service.name": "svc"}, [("chat", START, 10, attributes, False)])
    assert post(client, protobuf_body(spans), token=telemetry_token).status_code == 200
    assert (m.UsageHour.objects.get().deployment_id == known.pk) is matches


def test_unknown_deployment_of_a_registered_model_uses_that_model(
    client, telemetry_token
):
    model = AIModelFactory(name="support-chat-llm")
    DeploymentFactory(model=model, endpoint="https://elsewhere:443/")
    assert (
        post(
            client, protobuf_body(chat_spans(START)), token=telemetry_token
        ).status_code
        == 200
    )
    observed = m.Deployment.objects.get(source__startswith="otlp:")
    assert observed.model_id == model.pk
    assert m.AIModel.objects.count() == 1


def test_usage_is_linked_to_the_identity_named_as_the_calling_service(
    client, telemetry_token
):
    identity = IdentityFactory(name="support-portal")
    assert (
        post(
            client, protobuf_body(chat_spans(START)), token=telemetry_token
        ).status_code
        == 200
    )
    assert m.UsageHour.objects.get().identity_id == identity.pk


def test_spans_without_genai_attributes_write_nothing_but_the_source(
    client, telemetry_token
):
    spans = sdk_spans(
        {"service.name": "web"},
        [("GET /", START, 5, {"http.request.method": "GET"}, False)],
    )
    assert post(client, protobuf_body(spans), token=telemetry_token).status_code == 200
    assert (m.UsageHour.objects.count(), m.Deployment.objects.count()) == (0, 0)


def test_rejected_spans_are_reported_as_partial_success(client, telemetry_token):
    request = otlp.parse_protobuf(protobuf_body(chat_spans(START, n=2)))
    request.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano = 1
    response = post(client, request.SerializeToString(), token=telemetry_token)
    assert response.status_code == 200
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "before 2000" in answer.partial_success.error_message
    assert m.UsageHour.objects.get().calls == 1


def test_steady_state_export_does_no_lookup_queries(
    client, telemetry_token, django_capture_on_commit_callbacks
):
    IdentityFactory(name="support-portal")
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            post(
                client, protobuf_body(chat_spans(START)), token=telemetry_token
            ).status_code
            == 200
        )
    body = protobuf_body(chat_spans(START + timedelta(minutes=1)))
    with CaptureQueriesContext(connection) as queries:
        assert post(client, body, token=telemetry_token).status_code == 200
    sql = [q["sql"] for q in queries.captured_queries]
    lookups = [
        s
        for s in sql
        if s.lstrip().upper().startswith("SELECT")
        and "inventory_apitoken" not in s  # the token's check, with its identity
        and any(
            t in s
            for t in (
                "inventory_deployment",
                "inventory_aimodel",
                "inventory_nonhumanidentity",
                "inventory_datasource",
            )
        )
    ]
    assert lookups == []
    writes = [s for s in sql if "inventory_usagehour" in s]
    assert len(writes) == 1 and "ON CONFLICT" in writes[0]
    assert len(sql) <= 6, sql  # token, savepoint, upsert, last seen, release
    assert m.UsageHour.objects.get().calls == 6


# ---------------------------------------------------------------------------
# Refusals: each writes nothing
# ---------------------------------------------------------------------------
def status_of(response) -> tuple[int, str]:
    if response["Content-Type"] == PROTOBUF:
        status = status_pb2.Status.FromString(response.content)
        return status.code, status.message
    body = json.loads(response.content)
    return body["code"], body["message"]


@pytest.mark.parametrize(
    "case,expected,message",
    [
        ("wrong content type", 415, "Content-Type must be"),
        ("form content type", 415, "Content-Type must be"),
        ("unknown encoding", 415, "Content-Encoding must be"),
        ("bad gzip", 400, "not valid gzip"),
        ("bad deflate", 400, "not valid deflate"),
        ("garbage protobuf", 400, "protobuf"),
        ("bad json", 400, "JSON"),
        ("json bad hex id", 400, "not hex"),
        ("oversized", 413, "larger than"),
        ("gzip bomb", 413, "inflates to more than"),
        ("bad content length", 400, "Content-Length"),
    ],
)
def test_bad_requests_are_refused_and_write_nothing(
    client, telemetry_token, settings, case, expected, message
):
    settings.OTLP_MAX_BODY_BYTES = 4096
    settings.OTLP_MAX_INFLATED_BYTES = 64 * 1024
    good = protobuf_body(chat_spans(START))
    kw: dict = {"token": telemetry_token}
    body = good
    if case == "wrong content type":
        kw["content_type"] = "text/plain"
    elif case == "form content type":
        kw["content_type"] = "application/x-www-form-urlencoded"
    elif case == "unknown encoding":
        body, kw["encoding"] = gzip.compress(good), "br"
    elif case == "bad gzip":
        body, kw["encoding"] = b"\x1f\x8b not really gzip", "gzip"
    elif case == "bad deflate":
        body, kw["encoding"] = gzip.compress(good), "deflate"
    elif case == "garbage protobuf":
        body = b"\xff\xfe\xfd garbage"
    elif case == "bad json":
        body, kw["content_type"] = b'{"resourceSpans": [', "application/json"
    elif case == "json bad hex id":
        obj = json.loads(otlp_json(otlp.parse_protobuf(good)))
        obj["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "xyz"
        body, kw["content_type"] = json.dumps(obj).encode(), "application/json"
    elif case == "oversized":
        body = good + b"\x00" * 5000
    elif case == "gzip bomb":
        body, kw["encoding"] = gzip.compress(b"\x0a" * (2 << 20)), "gzip"
        assert len(body) < 4096
    elif case == "bad content length":
        kw["CONTENT_LENGTH"] = "many"
    response = post(client, body, **kw)
    assert response.status_code == expected, response.content
    code, text = status_of(response)
    assert message in text
    assert code == {400: 3, 413: 8, 415: 3}[expected]
    assert written() == (0, 0, 0, 0)


def test_errors_on_a_protobuf_request_are_protobuf_status(client, telemetry_token):
    response = post(client, b"\xff garbage", token=telemetry_token)
    assert response.status_code == 400
    assert response["Content-Type"] == PROTOBUF
    assert status_pb2.Status.FromString(response.content).code == 3


@pytest.mark.parametrize(
    "case", ["no header", "not bearer", "unknown", "revoked", "expired"]
)
def test_without_a_valid_token_401(client, issue_token, case):
    raw = issue_token("telemetry")
    headers = {}
    if case == "not bearer":
        headers["Authorization"] = "Basic dXNlcjpwYXNz"
    elif case == "unknown":
        headers["Authorization"] = "Bearer rp_000000000000_nope"
    elif case in ("revoked", "expired"):
        token = m.APIToken.objects.get()
        if case == "revoked":
            services.api_token_revoke(actor=None, token=token)
        else:
            m.APIToken.objects.filter(pk=token.pk).update(
                expires_at=timezone.now() - timedelta(minutes=1)
            )
        headers["Authorization"] = f"Bearer {raw}"
    response = post(client, protobuf_body(chat_spans(START)), **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert status_of(response)[0] == 16
    assert written() == (0, 0, 0, 0)


def test_token_without_telemetry_scope_403(client, issue_token):
    raw = issue_token("read", "deploy")
    response = post(client, protobuf_body(chat_spans(START)), token=raw)
    assert response.status_code == 403
    assert "telemetry scope" in status_of(response)[1]
    assert written() == (0, 0, 0, 0)


def test_get_is_405(client, telemetry_token):
    response = client.get(URL, headers={"Authorization": f"Bearer {telemetry_token}"})
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert written() == (0, 0, 0, 0)


def test_disabled_source_refuses_traces(client, telemetry_token):
    sm.DataSource.objects.create(
        name="Traces", kind="otlp", enabled=False, schedule_minutes=0
    )
    response = post(client, protobuf_body(chat_spans(START)), token=telemetry_token)
    assert response.status_code == 403
    assert "disabled" in status_of(response)[1]
    assert written() == (0, 0, 0, 1)


def test_the_first_enabled_otlp_source_is_used(client, telemetry_token):
    sm.DataSource.objects.create(
        name="Old", kind="otlp", enabled=False, schedule_minutes=0
    )
    live = sm.DataSource.objects.create(name="Live", kind="otlp", schedule_minutes=0)
    assert (
        post(
            client, protobuf_body(chat_spans(START)), token=telemetry_token
        ).status_code
        == 200
    )
    assert m.Deployment.objects.get().source == live.source_label
    assert sm.DataSource.objects.count() == 2


def test_a_failure_half_way_writes_nothing(client, telemetry_token, monkeypatch):
    def broken(*args, **kwargs):
        raise OperationalError("disk full")  # after the source, deployment and usage

    monkeypatch.setattr(otlp, "_touch_last_seen", broken)
    response = post(client, protobuf_body(chat_spans(START)), token=telemetry_token)
    assert response.status_code == 503
    assert response["Retry-After"]
    assert written() == (0, 0, 0, 0)


def test_a_cached_deployment_deleted_since_is_looked_up_again(
    transactional_db, client, issue_token, monkeypatch
):
    token = issue_token("telemetry")
    clears = []
    real_clear = otlp.RECEIVER_CACHE.clear
    monkeypatch.setattr(
        otlp.RECEIVER_CACHE, "clear", lambda: clears.append(1) or real_clear()
    )
    assert (
        post(client, protobuf_body(chat_spans(START)), token=token).status_code == 200
    )
    first = m.Deployment.objects.get()
    assert len(otlp.RECEIVER_CACHE) > 0  # committed, so remembered
    first.delete()  # its usage goes with it (CASCADE)
    assert (
        post(client, protobuf_body(chat_spans(START)), token=token).status_code == 200
    )
    assert clears == [1], (
        "the stale id failed its foreign key at commit and was retried"
    )
    second = m.Deployment.objects.get()
    assert second.pk != first.pk
    assert m.UsageHour.objects.get().deployment_id == second.pk


def test_spans_without_an_address_keep_to_one_observed_deployment(
    client, telemetry_token
):
    spans = sdk_spans(
        {"service.name": "svc"},
        [("chat", START, 10, {"gen_ai.request.model": "local-llm"}, False)],
    )
    for _ in range(2):
        assert (
            post(client, protobuf_body(spans), token=telemetry_token).status_code == 200
        )
    deployment = m.Deployment.objects.get()
    assert (deployment.external_id, deployment.name) == (
        "otel:|local-llm",
        "local-llm @ unknown endpoint",
    )
    assert m.UsageHour.objects.get().calls == 2
