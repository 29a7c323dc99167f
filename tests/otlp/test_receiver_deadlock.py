"""The cold-start deadlock of issue 8, item 14, replayed step by step on two connections.

Before the fix a request that had to upsert a deployment (cold: its lookup ran before
another request committed the row) locked it and then inserted usage, while a request
that already knew the deployment (warm: cached) inserted the usage row first and then
locked the deployment to move its last-seen time. PostgreSQL broke the cycle by killing
one of them (40P01) and the view answered 503, since only an IntegrityError was retried.

The test pauses thread A right after it has locked the deployment, lets thread B run until
it waits on a lock, then lets A go on. With the locks in one order B waits for A before it
touches any usage row and both answer 200; in the old order the two wait on each other.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from django.db import OperationalError, connection
from django.db.models import Sum
from django.test import Client

from inventory import models as m
from inventory import services
from sources.receivers import otlp
from tests.otlp.spans import chat_spans, protobuf_body

START = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
ENDPOINT = "cold-start.svc"
SPANS = 2
WAIT = 10.0  # seconds any step may wait for the other thread: a wrong order never hangs
LOCK_TIMEOUT = "5s"  # per transaction: a lock nobody releases fails the request instead


def _body(minute: int) -> bytes:
    """Spans of one hour's bucket; a later minute moves the deployment's last-seen."""
    start = START.replace(minute=minute)
    return protobuf_body(
        chat_spans(start, n=SPANS, errors=0, address=ENDPOINT, model=ENDPOINT)
    )


def _lock_waiters() -> int:
    """Other backends of this database waiting for a heavyweight lock."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_cold_upsert_and_warm_usage_do_not_deadlock(transactional_db, monkeypatch):
    # `services` tests run only on PostgreSQL (tests/plugins/services.py): never a skip.
    assert connection.vendor == "postgresql"
    _, raw = services.api_token_issue(
        actor=None, name="collector", scopes=["telemetry"], days=1
    )
    otlp.create_receiver_source()  # committed: neither request has to create it

    a_looked_up = threading.Event()  # A's lookup found nothing
    d_committed = threading.Event()  # B's first request created the deployment
    a_locked = threading.Event()  # A upserted (and so locked) the deployment
    go_a = threading.Event()  # B waits on a lock: A may go on
    timeouts: list[str] = []
    errors: list[str] = []
    statuses: dict[str, list[int]] = {"A": [], "B": []}

    def wait(event: threading.Event, what: str) -> None:
        if not event.wait(WAIT):
            timeouts.append(f"{threading.current_thread().name}: {what}")

    def in_thread(name: str) -> bool:
        return threading.current_thread().name == name

    def wrap(name: str, before: Callable[[], None] | None, after: Callable[[], None]):
        original = getattr(otlp, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if before is not None:
                before()
            value = original(*args, **kwargs)
            after()
            return value

        monkeypatch.setattr(otlp, name, wrapper)

    def bound_locks() -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")

    def after_lookup() -> None:
        if in_thread("A"):  # the other request commits the row after A looked
            a_looked_up.set()
            wait(d_committed, "the deployment to be committed")

    def after_deployments() -> None:
        if in_thread("A") and not a_locked.is_set():  # first attempt only
            a_locked.set()
            wait(go_a, "B to wait on a lock")

    original_ingest = otlp.ingest_aggregate

    def ingest_aggregate(*args: Any, **kwargs: Any) -> Any:
        bound_locks()
        try:
            return original_ingest(*args, **kwargs)
        except Exception as exc:
            cause = exc.__cause__
            errors.append(
                f"{threading.current_thread().name}: {type(exc).__name__}"
                f" [{getattr(cause, 'sqlstate', None)}] {str(exc).splitlines()[0]}"
            )
            raise

    monkeypatch.setattr(otlp, "ingest_aggregate", ingest_aggregate)
    wrap("_match_existing", None, after_lookup)
    wrap("_deployment_ids", None, after_deployments)

    def post(name: str, minute: int) -> None:
        client = Client(headers={"Authorization": f"Bearer {raw}"})
        response = client.generic(
            "POST",
            "/v1/traces",
            data=_body(minute),
            content_type="application/x-protobuf",
        )
        statuses[name].append(response.status_code)

    def thread_a() -> None:
        try:
            post("A", 5)  # cold: upserts the deployment, paused holding its lock
        finally:
            connection.close()

    def thread_b() -> None:
        try:
            wait(a_looked_up, "A to look the deployment up")
            post("B", 0)  # cold, alone: creates the deployment and commits
            d_committed.set()
            wait(a_locked, "A to lock the deployment")
            post("B", 10)  # warm: the cache knows the deployment
        finally:
            d_committed.set()
            connection.close()

    a = threading.Thread(target=thread_a, name="A")
    b = threading.Thread(target=thread_b, name="B")
    a.start()
    b.start()
    b_waited = False
    if a_locked.wait(WAIT):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and not (b_waited := _lock_waiters() > 0):
            time.sleep(0.02)
    go_a.set()
    a.join(3 * WAIT)
    b.join(3 * WAIT)
    assert not a.is_alive() and not b.is_alive(), "a request hung"

    outcome = {"statuses": statuses, "errors": errors, "timeouts": timeouts}
    assert b_waited, f"B never waited for A's lock: no interleaving, {outcome}"
    assert statuses == {"A": [200], "B": [200, 200]}, outcome
    assert not errors and not timeouts, outcome
    deployments = m.Deployment.objects.filter(model__name=ENDPOINT)
    assert deployments.count() == 1
    calls = m.UsageHour.objects.filter(deployment__in=deployments).aggregate(
        n=Sum("calls")
    )["n"]
    assert calls == 3 * SPANS  # every span once: B's two requests and A's


def _deadlock(sqlstate: str = "40P01") -> OperationalError:
    """What Django raises for a psycopg error of this SQLSTATE."""
    cls = psycopg.errors.lookup(sqlstate)
    exc = OperationalError("deadlock detected")
    exc.__cause__ = cls("deadlock detected")
    return exc


def test_retryable_knows_deadlock_and_serialization_failure():
    assert otlp._retryable(_deadlock("40P01"))
    assert otlp._retryable(_deadlock("40001"))
    assert not otlp._retryable(_deadlock("55P03"))  # lock_timeout: not run again
    assert not otlp._retryable(OperationalError("no cause"))


@pytest.mark.django_db
def test_apply_runs_a_deadlock_victim_again(monkeypatch):
    calls: list[int] = []
    done = object()

    def ingest(batch: Any, *, cache: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise _deadlock()
        return done

    monkeypatch.setattr(otlp, "ingest_aggregate", ingest)
    monkeypatch.setattr(otlp.time, "sleep", lambda _: None)
    receiver = otlp.OtlpReceiver(max_inflated=1 << 20, cache=otlp.TTLCache())
    assert receiver.apply(otlp.Aggregate()) is done
    assert len(calls) == 2


@pytest.mark.django_db
def test_apply_gives_up_after_ingest_attempts(monkeypatch):
    calls: list[int] = []

    def ingest(batch: Any, *, cache: Any) -> Any:
        calls.append(1)
        raise _deadlock("40001")

    monkeypatch.setattr(otlp, "ingest_aggregate", ingest)
    monkeypatch.setattr(otlp.time, "sleep", lambda _: None)
    receiver = otlp.OtlpReceiver(max_inflated=1 << 20, cache=otlp.TTLCache())
    with pytest.raises(OperationalError):
        receiver.apply(otlp.Aggregate())
    assert len(calls) == otlp.INGEST_ATTEMPTS
