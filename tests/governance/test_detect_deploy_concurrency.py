"""Two workers detecting at once, each on its own PostgreSQL connection, leave one open
finding per kind and subject (the per-kind advisory lock and the partial unique
constraint); two change consumers at once share the notices without doing one twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from governance import detection, detection_runner
from governance.models import Finding
from inventory import history
from inventory import models as im
from tests.factories import DeploymentFactory, IdentityFactory, ModelVersionFactory

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]
K = Finding.Kind
KINDS = [K.UNAPPROVED_VERSION, K.MISSING_PURPOSE, K.MISSING_CHANGE_WINDOW]
WORKERS = 2
N = 25


def at_once(target) -> list:
    barrier = threading.Barrier(WORKERS)
    results: list = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            results.append(target())
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return results


def unresolved_per_subject() -> Counter:
    return Counter(
        Finding.objects.exclude(status="resolved").values_list(
            "kind", "subject_type", "subject_id"
        )
    )


def test_two_full_runs_at_once_leave_one_finding_each():
    assert connection.vendor == "postgresql"
    for _ in range(N):
        DeploymentFactory(
            business_purpose="",
            observed_version=ModelVersionFactory(approval="pending"),
        )

    results = at_once(lambda: detection.run(kinds=KINDS, notify=False))

    per_subject = unresolved_per_subject()
    assert len(per_subject) == N * len(KINDS)
    assert set(per_subject.values()) == {1}
    # One worker opened each; the other found it open and updated it.
    for kind in KINDS:
        assert sum(r.by_kind[kind].get("opened", 0) for r in results) == N
        assert sum(r.by_kind[kind].get("updated", 0) for r in results) == N


def test_two_change_consumers_at_once_share_the_notices():
    assert connection.vendor == "postgresql"
    deployments = [DeploymentFactory(business_purpose="") for _ in range(N)]
    for d in deployments:
        history.announce(objects=[(history.DEPLOYMENT, d.pk)])

    at_once(lambda: detection_runner.detect_changes(batch=5))

    assert not im.ChangeNotice.objects.filter(consumed_at__isnull=True).exists()
    per_subject = unresolved_per_subject()
    assert {sid for kind, _, sid in per_subject if kind == K.MISSING_PURPOSE} == {
        d.pk for d in deployments
    }
    assert set(per_subject.values()) == {1}


def test_a_full_run_scans_the_subject_types_side_by_side(settings):
    """Outside a transaction on PostgreSQL a full run gives each subject type its own
    thread and connection: the findings are those of a run in one thread, and running
    it again in one thread changes nothing."""
    assert connection.vendor == "postgresql" and not connection.in_atomic_block
    settings.FINDINGS_DETECT_THREADS = 2
    deployments = [DeploymentFactory(owner=None) for _ in range(N)]
    old = timezone.now() - timedelta(days=400)
    identities = [
        IdentityFactory(issued_at=old, rotated_at=None, last_used_at=None)
        for _ in range(N)
    ]
    groups = detection._by_subject_type(None)
    assert {t for t, _ in groups} >= {"deployment", "identity"}
    assert detection._parallel(None) == 2

    first = detection.run(notify=False)

    opened = unresolved_per_subject()
    assert set(opened.values()) == {1}
    assert first.counts["opened"] == len(opened)
    kinds = {k for k, _, _ in opened}
    assert {K.MISSING_OWNER, K.STALE_CREDENTIAL, K.UNUSED_CREDENTIAL} <= kinds
    found = Finding.objects.exclude(status="resolved")
    assert set(
        found.filter(kind=K.MISSING_OWNER, subject_type="deployment").values_list(
            "subject_id", flat=True
        )
    ) == {d.pk for d in deployments}
    assert set(
        found.filter(kind=K.STALE_CREDENTIAL).values_list("subject_id", flat=True)
    ) == {i.pk for i in identities}

    settings.FINDINGS_DETECT_THREADS = 1
    again = detection.run(notify=False)
    assert again.counts["opened"] == again.counts["resolved"] == 0
    assert again.counts["updated"] == len(opened)
    assert unresolved_per_subject() == opened


def test_the_chunks_of_one_subject_type_go_side_by_side(settings, monkeypatch):
    """A full run's threads take chunks of any subject type as they free up: with small
    chunks, the identities' chunks run on both threads, and the findings are those of a
    run in one thread."""
    settings.FINDINGS_DETECT_THREADS = 2
    monkeypatch.setattr(detection, "RANGE_CHUNK", 10)
    monkeypatch.setattr(detection, "RANGE_CHUNKS", {})
    old = timezone.now() - timedelta(days=400)
    identities = [
        IdentityFactory(issued_at=old, rotated_at=None, last_used_at=None)
        for _ in range(N)
    ]
    ranges = list(detection._ranges("identity"))
    assert len(ranges) >= 3
    assert all(lo % 10 == 0 and hi - lo == 10 for lo, hi in ranges)
    threads: dict[tuple[int, int], str] = {}
    run_range = detection._run_range

    def recorded(subject_type, detectors, id_range, *args):
        if subject_type == "identity":
            threads[id_range] = threading.current_thread().name
        return run_range(subject_type, detectors, id_range, *args)

    monkeypatch.setattr(detection, "_run_range", recorded)
    first = detection.run(kinds=[K.STALE_CREDENTIAL, K.UNUSED_CREDENTIAL], notify=False)

    assert set(threads) == set(ranges)
    assert len(set(threads.values())) == 2
    assert first.counts["opened"] == 2 * N
    opened = unresolved_per_subject()
    assert {sid for kind, _, sid in opened if kind == K.STALE_CREDENTIAL} == {
        i.pk for i in identities
    }
    settings.FINDINGS_DETECT_THREADS = 1
    again = detection.run(kinds=[K.STALE_CREDENTIAL, K.UNUSED_CREDENTIAL], notify=False)
    assert again.counts["opened"] == again.counts["resolved"] == 0
    assert unresolved_per_subject() == opened


def test_chunk_locks_share_the_kind_and_exclude_its_whole_kind_lock():
    """Two chunks of one kind hold their locks at once; the kind's own lock (a change
    scope, a person's action) waits until no chunk holds it, and a chunk for it."""
    kind = K.STALE_CREDENTIAL
    held, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def chunk_holder() -> None:
        try:
            with transaction.atomic():
                detection._lock(kind, (0, detection.RANGE_CHUNK))
                held.set()
                release.wait(30)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    def try_lock(*args) -> bool:
        """Whether `_lock(kind, *args)` is granted within a moment, on a connection of
        its own."""
        granted: list[bool] = []

        def attempt() -> None:
            try:
                with transaction.atomic():
                    with connection.cursor() as cursor:
                        cursor.execute("SET LOCAL lock_timeout = '300ms'")
                    try:
                        with transaction.atomic():
                            detection._lock(kind, *args)
                        granted.append(True)
                    except OperationalError:
                        granted.append(False)
            finally:
                connection.close()

        thread = threading.Thread(target=attempt)
        thread.start()
        thread.join(30)
        assert len(granted) == 1, "the attempt neither got the lock nor timed out"
        return granted[0]

    holder = threading.Thread(target=chunk_holder)
    holder.start()
    try:
        assert held.wait(30)
        other = (detection.RANGE_CHUNK, 2 * detection.RANGE_CHUNK)
        assert try_lock(other)  # another chunk of the kind: side by side
        assert not try_lock((0, detection.RANGE_CHUNK))  # the same chunk: waits
        assert not try_lock()  # the whole kind: waits for the chunk in flight
    finally:
        release.set()
        holder.join(30)
    assert not errors, errors
    assert try_lock()  # free again
