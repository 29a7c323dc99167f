"""Two workers detecting at once, each on its own PostgreSQL connection, leave one open
finding per kind and subject (the per-kind advisory lock and the partial unique
constraint); two change consumers at once share the notices without doing one twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
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
    assert detection._parallel(groups, None) == 2

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
