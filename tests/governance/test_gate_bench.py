"""The bench rows of issue 10 (devtools.bench_findings) on a small inventory: the usage
they seed, the detection and gate rows, and "not available" for pages not routed yet."""

from __future__ import annotations

import pytest

from devtools import bench_findings
from governance.models import GateDecision
from inventory import models as m
from tests.factories import DeploymentFactory
from tests.governance.gate_helpers import clean_release

pytestmark = pytest.mark.django_db


def test_seed_usage_writes_hourly_rows_once(db):
    first, second, _ = DeploymentFactory.create_batch(3)
    row = bench_findings.seed_usage(deployments=2, days=1, out=lambda _: None)
    assert m.UsageHour.objects.count() == 2 * 24
    assert set(m.UsageHour.objects.values_list("deployment_id", flat=True)) == {
        first.pk,
        second.pk,
    }
    assert "48 rows" in row.value
    first.refresh_from_db()
    assert first.last_call_at is not None
    again = bench_findings.seed_usage(deployments=2, days=1, out=lambda _: None)
    assert again.note == "reused"
    assert m.UsageHour.objects.count() == 48


def test_detection_rows(db):
    from governance.models import Finding, FindingEvent

    DeploymentFactory.create_batch(3, owner=None)
    bench_findings.bench_detection(repeats=1, out=lambda _: None)
    assert Finding.objects.filter(kind="missing_owner").count() == 3
    rows = bench_findings.bench_detection(repeats=2, out=lambda _: None)
    names = [r.name for r in rows]
    assert names[:3] == [
        "detection: full run, first (no findings yet)",
        "detection: full run again at once (nothing changes)",
        "detection: full run later (the nightly case)",
    ]
    assert all(r.status == "met" for r in rows[:3])
    # The first run started from no findings: each finding now is a new one, opened once
    # (not the last bench's, updated), and no event of the last bench is left.
    assert Finding.objects.filter(kind="missing_owner").count() == 3
    assert not Finding.objects.exclude(times_opened=1).exists()
    assert FindingEvent.objects.count() == Finding.objects.count()
    assert set(FindingEvent.objects.values_list("action", flat=True)) == {"opened"}
    assert "after one push" in names[-1]
    assert "p95" in rows[-1].value


def test_gate_row_posts_real_requests(db):
    clean_release()
    row = bench_findings.bench_gate(requests=3, floor_p95=1.0, out=lambda _: None)
    assert "status 200" in row.note
    assert "queries" in row.value
    # 3 warm-ups, 1 counted, 3 timed: each one recorded.
    assert GateDecision.objects.count() == 7
    assert not m.APIToken.objects.filter(revoked_at__isnull=True).exists()


def test_pages_not_routed_are_not_available(db):
    from django.urls import NoReverseMatch, reverse

    class Case:
        def __init__(self, page, role, path, skip=""):
            self.page, self.role, self.path, self.skip = page, role, path, skip

    def named(page, role, name, *args):
        try:
            return Case(page, role, reverse(name, args=args))
        except NoReverseMatch:
            return Case(page, role, None, skip=f"URL {name!r} not routed yet")

    DeploymentFactory()
    cases = bench_findings.page_cases(named, Case, ("admin",))
    assert [c.page.split(" (")[0] for c in cases] == ["findings page", "proof card"]
    for case in cases:
        if case.path is None:
            assert case.skip.startswith(bench_findings.NOT_AVAILABLE)
    rows = bench_findings.page_rows(
        [type("R", (), {"case": c, "p95": None, "status": "skipped"})() for c in cases],
        None,
    )
    assert len(rows) == 2
