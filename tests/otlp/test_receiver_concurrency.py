"""Concurrent senders meeting endpoints the inventory has never seen (issue 8, item 14).

On PostgreSQL one request locked the new deployments by its upsert and then inserted
usage, another inserted usage first and then locked the same deployments: deadlocks,
answered 503. Locks are now taken in one order and a deadlock's victim is run again, so
the cold start answers 200 and every span is counted once.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.models import Sum
from django.test import Client

from inventory import models as m
from inventory import services
from sources.receivers import otlp
from tests.otlp.spans import chat_spans, protobuf_body

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
SENDERS = 8
ENDPOINTS = 12
ROUNDS = 4
SPANS = 2


def body_for(endpoints: list[str]) -> bytes:
    spans = []
    for address in endpoints:
        spans += chat_spans(START, n=SPANS, errors=0, address=address, model=address)
    return protobuf_body(spans)


class PerThreadCache:
    """One receiver cache per sender thread, as each gunicorn worker process has its own:
    a sender that created a deployment knows its id, the others find it in the database."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _cache(self) -> otlp.TTLCache:
        if not hasattr(self._local, "cache"):
            self._local.cache = otlp.TTLCache()
        return self._local.cache

    def __getattr__(self, name: str):
        return getattr(self._cache(), name)

    def __len__(self) -> int:
        return len(self._cache())


def test_concurrent_cold_starts_answer_200_and_count_every_span_once(monkeypatch):
    monkeypatch.setattr(otlp, "RECEIVER_CACHE", PerThreadCache())
    # The flush that ends a transactional test TRUNCATEs the audit table too; the trigger
    # allows that only in a session that asked for maintenance (tests/conftest.py).
    with connection.cursor() as cursor:
        cursor.execute("SET runproof.audit_maintenance = 'on'")
    _, raw = services.api_token_issue(
        actor=None, name="collector", scopes=["telemetry"], days=1
    )
    statuses: list[int] = []
    lock = threading.Lock()
    for round_ in range(ROUNDS):
        endpoints = [f"new-{round_}-{i}.svc" for i in range(ENDPOINTS)]
        bodies = []
        for sender in range(SENDERS):
            order = endpoints[:]
            random.Random(round_ * 100 + sender).shuffle(order)
            # Half the senders name only some endpoints: warm and cold paths cross.
            bodies.append(body_for(order if sender % 2 else order[: ENDPOINTS // 2]))
        barrier = threading.Barrier(SENDERS)

        def send(body: bytes, barrier: threading.Barrier = barrier) -> None:
            client = Client(headers={"Authorization": f"Bearer {raw}"})
            barrier.wait()
            try:
                response = client.generic(
                    "POST",
                    "/v1/traces",
                    data=body,
                    content_type="application/x-protobuf",
                )
                with lock:
                    statuses.append(response.status_code)
            finally:
                connection.close()

        threads = [threading.Thread(target=send, args=(b,)) for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert statuses == [200] * (SENDERS * ROUNDS)
    full = SENDERS // 2 * ENDPOINTS
    half = SENDERS // 2 * (ENDPOINTS // 2)
    assert (
        m.UsageHour.objects.aggregate(n=Sum("calls"))["n"]
        == ROUNDS * (full + half) * SPANS
    )
    assert m.Deployment.objects.count() == ROUNDS * ENDPOINTS
