"""sources.receivers: each push path as decode -> aggregate -> apply, usable step by step.

The HTTP behaviour (statuses, bodies) is tested through the views in tests/otlp,
tests/connectors/test_mlflow.py and tests/sources/test_events.py; here, the steps.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from django.utils.module_loading import import_string
from rest_framework.exceptions import ValidationError as BadRequest

from inventory import models as m
from inventory import services as inventory_services
from sources import models as sm
from sources.receivers import otlp
from sources.receivers.base import Receiver, ReceiverError
from sources.receivers.cicd import (
    IDEMPOTENCY_KEY_TOO_LONG,
    CicdReceiver,
    CicdSource,
    DeployEvent,
)
from sources.receivers.webhooks import (
    BAD_SIGNATURE,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    UNSIGNED,
    MlflowWebhookReceiver,
    expected_signature,
)
from sources.sync import runner, services
from sources.sync.base import Connector, PushSource
from tests.otlp.spans import chat_spans, protobuf_body

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "whsec-test-value"


@pytest.fixture(autouse=True)
def _fresh_receiver_cache():
    otlp.reset_process_state()
    yield
    otlp.reset_process_state()


def test_a_push_kind_has_a_receiver_and_no_fetch_or_apply():
    cls = runner.connector_class("cicd")
    assert cls is CicdSource and issubclass(cls, PushSource)
    assert not issubclass(cls, Connector)
    assert not hasattr(cls, "fetch") and not hasattr(cls, "apply")
    assert issubclass(import_string(cls.receiver), Receiver)
    otlp_kind = runner.connector_class("otlp")
    assert issubclass(otlp_kind, Connector), "the file import still fetches"
    assert import_string(otlp_kind.receiver) is otlp.OtlpReceiver


def test_otlp_steps_decode_aggregate_then_apply_in_one_transaction():
    receiver = otlp.OtlpReceiver(max_inflated=1 << 20)
    headers = {"Content-Type": "application/x-protobuf"}
    body = protobuf_body(chat_spans(datetime(2026, 11, 2, 10, 5, tzinfo=UTC), n=3))

    message = receiver.decode(body, headers)
    batch = receiver.aggregate(message)
    assert (batch.spans, batch.genai) == (3, 3)
    assert not m.UsageHour.objects.exists(), "decode and aggregate write nothing"

    result = receiver.apply(batch)
    assert result.applied.buckets == 1
    assert sum(m.UsageHour.objects.values_list("calls", flat=True)) == 3


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({"Content-Type": "text/plain"}, "Content-Type must be"),
        (
            {"Content-Type": "application/json", "Content-Encoding": "br"},
            "Content-Encoding must be",
        ),
    ],
)
def test_otlp_refuses_a_type_or_encoding_before_reading_the_body(headers, fragment):
    with pytest.raises(ReceiverError) as refused:
        otlp.OtlpReceiver.check_headers(headers)
    assert refused.value.status == 415 and fragment in refused.value.message
    assert isinstance(refused.value, otlp.OtlpError)


@pytest.fixture
def mlflow_source(db):
    return services.source_create(
        actor=None,
        name="Registry",
        kind="mlflow",
        config={"tracking_uri": "http://mlflow.invalid:5000"},
        secrets_given={"webhook_secret": WEBHOOK_SECRET},
    )


def _signed(body: bytes, *, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    stamp, delivery = str(int(time.time())), "delivery-1"
    return {
        SIGNATURE_HEADER: expected_signature(secret, delivery, stamp, body),
        TIMESTAMP_HEADER: stamp,
        DELIVERY_HEADER: delivery,
    }


def test_webhook_steps_keep_registry_events_and_ask_for_one_sync(
    mlflow_source, django_capture_on_commit_callbacks
):
    receiver = MlflowWebhookReceiver(source=mlflow_source)
    prompt = b'{"entity": "prompt", "action": "created"}'
    ignored = receiver.receive(prompt, _signed(prompt))
    assert (ignored.run, ignored.ignored) == (None, "prompt")
    assert not sm.SyncRun.objects.exists()

    body = b'{"entity": "model_version", "action": "created"}'
    delivery = receiver.decode(body, _signed(body))
    assert receiver.aggregate(delivery).wanted
    with django_capture_on_commit_callbacks(execute=False):
        result = receiver.apply(receiver.aggregate(delivery))
    assert result.created and result.run.trigger == sm.SyncRun.Trigger.WEBHOOK


def test_webhook_decode_refuses_unsigned_and_forged_deliveries(mlflow_source):
    receiver = MlflowWebhookReceiver(source=mlflow_source)
    body = b'{"entity": "model_version"}'
    with pytest.raises(ReceiverError) as unsigned:
        receiver.decode(body, {})
    assert (unsigned.value.status, unsigned.value.message) == (401, UNSIGNED)
    with pytest.raises(ReceiverError) as forged:
        receiver.decode(body, _signed(body, secret="another-secret"))
    assert (forged.value.status, forged.value.message) == (401, BAD_SIGNATURE)


@pytest.fixture
def deploy_token(db):
    token, _ = inventory_services.api_token_issue(
        actor=None, actor_label="test", name="ci", scopes=["deploy"], days=1
    )
    return token


def test_cicd_decode_gives_the_event_and_apply_records_it_once(deploy_token):
    receiver = CicdReceiver(token=deploy_token)
    body = {
        "model": "fraud-scorer",
        "version": "3",
        "environment": "production",
        "endpoint": "https://fraud.internal/v1/score",
        "pipeline_run": "https://ci.example.com/runs/1",
    }
    event = receiver.decode(body, {"Idempotency-Key": " run-1 "})
    assert isinstance(event, DeployEvent) and event.key == "run-1"
    assert receiver.aggregate(event) is event, "one event is one batch"
    row, created = receiver.apply(event)
    again, created_again = receiver.apply(
        receiver.decode(body, {"Idempotency-Key": "run-1"})
    )
    assert (created, created_again, again.pk) == (True, False, row.pk)
    assert sm.DeploymentEvent.objects.count() == 1


def test_cicd_decode_refuses_bad_input_as_a_400(deploy_token):
    receiver = CicdReceiver(token=deploy_token)
    with pytest.raises(BadRequest) as long_key:
        receiver.decode({}, {"Idempotency-Key": "k" * 201})
    assert long_key.value.detail["Idempotency-Key"] == [IDEMPOTENCY_KEY_TOO_LONG]
    with pytest.raises(BadRequest) as missing:
        receiver.decode({"model": "m"}, {})
    assert {"version", "environment", "endpoint"} <= set(missing.value.detail)
    assert not sm.DeploymentEvent.objects.exists()
