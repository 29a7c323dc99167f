"""`manage.py bench` rows for findings, the proof card and the release gate (issue 10).

On top of the inventory the bench seeds, this adds hourly usage for some deployments
(default: 30 days for 5,000 of them, 3.6 million rows at full scale; PostgreSQL COPY, else
bulk_create in batches), then measures:

- the full detection run (`governance.detection.run()`, every registered detector):
  seconds, CPU seconds and the peak growth of the process's resident memory;
- detection after one push touching one deployment (`run(scope=scope_for_changes(...))`):
  median and p95 ms;
- the findings page (governance:finding_list) and a proof card (governance:deployment_proof),
  as ordinary bench pages (queries, CPU ms, p95 ms, beside the floor);
- the gate: POST /api/v1/gate through the test client with a `gate` token: p95 ms.

Pages and endpoints built by other parts of the issue are looked up at run time: a URL name
that does not resolve yet makes its row "not available", never a failure.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
import resource
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.management.base import CommandParser
from django.db import connection, reset_queries, transaction
from django.db.models import Max, Min
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from inventory import models as m
from inventory import services

USAGE_DAYS = 30
USAGE_DEPLOYMENTS = 5_000
# Hours per batch written at once (bulk_create), or per COPY progress line.
BATCH = 20_000
# Targets (issue 10, "Tests and figures").
TARGET_FULL_DETECTION_S = 20.0
TARGET_ONE_PUSH_MS = 1000.0
TARGET_FINDINGS_QUERIES = 6
TARGET_PROOF_QUERIES = 10
TARGET_PAGE_P95_OVER_FLOOR_MS = 25.0
TARGET_GATE_P95_MS = 10.0
GATE_BODY_NOT_FOUND = "no deployment to ask about"
NOT_AVAILABLE = "not available"
WARMUPS = 3

Out = Callable[[str], Any]


@dataclass
class Row:
    """One figure this module measures outside the page table."""

    name: str
    value: str = ""
    target: str = ""
    note: str = ""
    status: str = "ok"


def add_arguments(parser: CommandParser) -> None:
    group = parser.add_argument_group("findings, proof card and gate (issue 10)")
    group.add_argument(
        "--usage-days",
        type=int,
        default=USAGE_DAYS,
        help=f"Days of hourly usage to seed (default {USAGE_DAYS}).",
    )
    group.add_argument(
        "--usage-deployments",
        type=int,
        default=USAGE_DEPLOYMENTS,
        help=f"Deployments that get usage (default {USAGE_DEPLOYMENTS}; --quick: all "
        "of them, up to that).",
    )
    group.add_argument(
        "--no-findings",
        action="store_true",
        help="Skip the usage seeding, detection and gate rows.",
    )
    group.add_argument(
        "--skip-detection",
        action="store_true",
        help="Skip the three detection rows and read the findings already there (a "
        "--reuse run whose detection was measured before: a full run takes minutes).",
    )
    group.add_argument(
        "--only-findings",
        action="store_true",
        help="Of the page rows, time only the floor, the findings page and the proof "
        "card (with the gate and, unless skipped, the detection rows).",
    )


# ---------------------------------------------------------------------------
# Usage
# ---------------------------------------------------------------------------
USAGE_COLUMNS = (
    "deployment_id",
    "hour",
    "caller_service",
    "caller_user",
    "operation",
    "response_model",
    "calls",
    "errors",
    "duration_ms_total",
    "duration_ms_max",
    "input_tokens",
    "output_tokens",
)


def _usage_rows(
    deployment_ids: list[int], hours: list[dt.datetime], seed: int
) -> Iterator[tuple]:
    """One caller per deployment and hour; one deployment in 50 errs a lot and one in 40
    is slow, so the out-of-bounds detector has something to find."""
    rng = random.Random(seed)  # noqa: S311 - reproducible, not secret
    for dep_id in deployment_ids:
        noisy = dep_id % 50 == 0
        slow = dep_id % 40 == 0
        base = rng.randint(5, 400)
        service = f"svc-caller-{dep_id % 997}"
        for hour in hours:
            calls = base + rng.randint(0, base)
            errors = (calls // 5 if noisy else calls // 200) + rng.randint(0, 2)
            mean = (900.0 if slow else 80.0) + rng.random() * 40
            yield (
                dep_id,
                hour,
                service,
                "",
                "predict",
                "",
                calls,
                min(errors, calls),
                round(mean * calls, 1),
                round(mean * 3, 1),
                calls * 120,
                calls * 40,
            )


def _copy(rows: Iterator[tuple], total: int, out: Out) -> int:
    table = m.UsageHour._meta.db_table
    written = 0
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3 under Django's wrapper
        with raw.copy(f"COPY {table} ({', '.join(USAGE_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
                written += 1
                if written % (BATCH * 25) == 0:
                    out(f"    {written:,}/{total:,} usage rows")
    return written


def _bulk(rows: Iterator[tuple], total: int, out: Out) -> int:
    """Batches of plain INSERTs (executemany): building 3.6 million model instances for
    bulk_create costs more than the writing."""
    table = m.UsageHour._meta.db_table
    marks = ", ".join(["%s"] * len(USAGE_COLUMNS))
    sql = f"INSERT INTO {table} ({', '.join(USAGE_COLUMNS)}) VALUES ({marks})"  # noqa: S608 - constants only
    written = 0
    batch: list[tuple] = []
    with transaction.atomic(), connection.cursor() as cursor:
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                cursor.executemany(sql, batch)
                written += len(batch)
                batch = []
                if written % (BATCH * 25) == 0:
                    out(f"    {written:,}/{total:,} usage rows")
        if batch:
            cursor.executemany(sql, batch)
            written += len(batch)
    return written


def seed_usage(
    *,
    deployments: int,
    days: int,
    out: Out,
    seed: int = 7,
    now: dt.datetime | None = None,
) -> Row:
    """Hourly usage for the first `deployments` active deployments over `days` days, unless
    usage of that span is already there (a --reuse run)."""
    now = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    start = now - dt.timedelta(days=days)
    ids = list(
        m.Deployment.objects.filter(status=m.Deployment.Status.ACTIVE)
        .order_by("id")
        .values_list("id", flat=True)[:deployments]
    )
    total = len(ids) * days * 24
    name = f"usage seeded ({len(ids):,} deployments x {days} days hourly)"
    have = m.UsageHour.objects.filter(hour__gte=start).aggregate(
        lo=Min("hour"), hi=Max("hour")
    )
    if have["lo"] is not None:
        count = m.UsageHour.objects.count()
        return Row(name, f"{count:,} rows already there", note="reused")
    hours = [start + dt.timedelta(hours=h) for h in range(days * 24)]
    out(f"  Seeding {total:,} usage rows…")
    started = time.perf_counter()
    rows = _usage_rows(ids, hours, seed)
    if connection.vendor == "postgresql":
        written, how = _copy(rows, total, out), "COPY"
    else:
        written, how = _bulk(rows, total, out), f"executemany, {BATCH:,} a batch"
    # As inventory.usage.record_calls keeps it with the usage rows.
    m.Deployment.objects.filter(pk__in=ids).update(last_call_at=hours[-1])
    # Fresh statistics, as autovacuum would leave them after a while: a plan made for
    # an empty table is a nested loop over millions of rows.
    with connection.cursor() as cursor:
        cursor.execute(
            f"ANALYZE {connection.ops.quote_name(m.UsageHour._meta.db_table)}"
        )
    seconds = time.perf_counter() - started
    return Row(
        name,
        f"{written:,} rows in {seconds:.1f} s ({written / max(seconds, 1e-9):,.0f} rows/s)",
        note=how,
    )


# ---------------------------------------------------------------------------
# Detection
# ---------------------------------------------------------------------------
def _rss_kb() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


class _PeakRss:
    """The resident memory's peak during a block, sampled every 20 ms (ru_maxrss is the
    process's lifetime peak, which the seeding already set)."""

    def __init__(self) -> None:
        self.start = _rss_kb()
        self.peak = self.start or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            now = _rss_kb()
            if now is not None and now > self.peak:
                self.peak = now

    def __enter__(self) -> _PeakRss:
        if self.start is not None:
            self._thread.start()
        self._maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.start is None:
            return
        self._stop.set()
        self._thread.join()
        now = _rss_kb()
        if now is not None and now > self.peak:
            self.peak = now

    @property
    def growth_mb(self) -> float | None:
        if self.start is None:
            return None
        return (self.peak - self.start) / 1024


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, math.ceil(0.95 * len(values)) - 1)]


def _clear_findings() -> int:
    """Delete every finding, with its events and notifications (the bench's own data):
    the first run is then measured from nothing, as on a new install."""
    from governance.models import Finding, FindingEvent, Notification

    count = Finding.objects.count()
    # TRUNCATE outside a transaction only: inside one (a test), the rows' deferred
    # foreign-key checks are still pending and PostgreSQL refuses it.
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        tables = ", ".join(
            connection.ops.quote_name(model._meta.db_table)
            for model in (Notification, FindingEvent, Finding)
        )
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {tables}")
    else:
        Notification.objects.filter(finding__isnull=False).delete()
        FindingEvent.objects.all().delete()
        Finding.objects.all().delete()
    return count


def _timed_run(
    now: dt.datetime | None = None,
) -> tuple[float, float, float | None, Any]:
    from governance import detection

    with _PeakRss() as memory:
        started, started_cpu = time.perf_counter(), time.process_time()
        result = detection.run(now=now)
        seconds = time.perf_counter() - started
        cpu = time.process_time() - started_cpu
    return seconds, cpu, memory.growth_mb, result


def _figure(seconds: float, cpu: float, growth: float | None) -> str:
    return f"{seconds:.2f} s, {cpu:.2f} s CPU, peak RSS +" + (
        f"{growth:.0f} MB" if growth is not None else "? (no /proc)"
    )


def bench_detection(*, repeats: int, out: Out) -> list[Row]:
    from governance import detection

    rows: list[Row] = []
    target_s = f"<= {TARGET_FULL_DETECTION_S:.0f} s, memory bounded"
    cleared = _clear_findings()
    out(f"  Full detection run from no findings ({cleared:,} cleared)…")
    seconds, cpu, growth, result = _timed_run()
    summary = result.as_dict() if hasattr(result, "as_dict") else {}
    rows.append(
        Row(
            "detection: full run, first (no findings yet)",
            _figure(seconds, cpu, growth),
            target_s,
            _compact(summary),
            "met" if seconds <= TARGET_FULL_DETECTION_S else "missed",
        )
    )
    out("  Full detection run again at once…")
    seconds, cpu, growth, _ = _timed_run()
    rows.append(
        Row(
            "detection: full run again at once (nothing changes)",
            _figure(seconds, cpu, growth),
            target_s,
            "last seen fresh: no finding rewritten",
            "met" if seconds <= TARGET_FULL_DETECTION_S else "missed",
        )
    )
    later = timezone.now() + dt.timedelta(
        minutes=settings.FINDINGS_SEEN_REFRESH_MINUTES + 60
    )
    out("  Full detection run as if later (every last seen moves)…")
    seconds, cpu, growth, result = _timed_run(now=later)
    rows.append(
        Row(
            "detection: full run later (the nightly case)",
            _figure(seconds, cpu, growth),
            target_s,
            f"now + {settings.FINDINGS_SEEN_REFRESH_MINUTES + 60} min: every "
            f"unchanged finding's last seen moves; {_compact(result.as_dict())}",
            "met" if seconds <= TARGET_FULL_DETECTION_S else "missed",
        )
    )
    target = (
        m.Deployment.objects.filter(last_call_at__isnull=False)
        .order_by("id")
        .values_list("id", flat=True)
        .first()
        or m.Deployment.objects.order_by("id").values_list("id", flat=True).first()
    )
    if target is None:
        rows.append(
            Row("detection: after one push", NOT_AVAILABLE, note="no deployment")
        )
        return rows
    times = []
    for i in range(WARMUPS + repeats):
        started = time.perf_counter()
        scope = detection.scope_for_changes([("inventory.deployment", target)])
        detection.run(scope=scope)
        if i >= WARMUPS:
            times.append((time.perf_counter() - started) * 1000)
    p95 = _p95(times)
    rows.append(
        Row(
            "detection: after one push touching one deployment",
            f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms "
            f"({len(times)} runs)",
            f"<= {TARGET_ONE_PUSH_MS:.0f} ms",
            f"deployment #{target}",
            "met" if p95 <= TARGET_ONE_PUSH_MS else "missed",
        )
    )
    return rows


def _compact(summary: dict[str, Any]) -> str:
    text = json.dumps(summary, sort_keys=True, default=str)
    return text if len(text) <= 160 else text[:157] + "..."


# ---------------------------------------------------------------------------
# Pages (measured by the command with its other pages)
# ---------------------------------------------------------------------------
def page_cases(
    named: Callable[..., Any], case_type: type, roles: tuple[str, ...]
) -> list:
    """The findings page and a proof card, as the command's Cases; a URL name not routed
    yet gives a skipped case ("not available")."""
    cases = []
    for role in roles:
        cases.append(named("findings page", role, "governance:finding_list"))
    deployment = _proof_deployment()
    for role in roles:
        if deployment is None:
            cases.append(case_type("proof card", role, None, skip="no deployment"))
            continue
        cases.append(
            named(
                "proof card (deployment with most identities)",
                role,
                "governance:deployment_proof",
                deployment,
            )
        )
    for case in cases:
        if case.path is None and "not routed" in case.skip:
            case.skip = f"{NOT_AVAILABLE}: {case.skip}"
    return cases


def _proof_deployment() -> int | None:
    """A production deployment with usage and the most bound identities: the heaviest
    card an administrator would open."""
    from django.db.models import Count

    return (
        m.Deployment.objects.filter(last_call_at__isnull=False)
        .annotate(n=Count("identities"))
        .order_by("-n", "id")
        .values_list("id", flat=True)
        .first()
        or m.Deployment.objects.order_by("id").values_list("id", flat=True).first()
    )


def page_rows(results: list, floor_p95: float | None) -> list[Row]:
    """The findings page and proof card against their targets (queries, p95 over the
    floor)."""
    rows = []
    for r in results:
        page = r.case.page
        if not (page.startswith("findings page") or page.startswith("proof card")):
            continue
        name = f"{page} [{r.case.role}]"
        if r.case.path is None:
            rows.append(Row(name, NOT_AVAILABLE, note=r.case.skip, status="n/a"))
            continue
        if r.p95 is None:
            rows.append(Row(name, r.status, status="error"))
            continue
        limit = (
            TARGET_FINDINGS_QUERIES
            if page.startswith("findings")
            else TARGET_PROOF_QUERIES
        )
        over = r.p95 - (floor_p95 or 0)
        met = (r.queries or 0) <= limit and over <= TARGET_PAGE_P95_OVER_FLOOR_MS
        rows.append(
            Row(
                name,
                f"{r.queries} queries, {r.cpu:.1f} ms CPU, p95 {r.p95:.1f} ms "
                f"({over:+.1f} over the floor)",
                f"<= {limit} queries, p95 <= floor + {TARGET_PAGE_P95_OVER_FLOOR_MS:.0f} ms",
                f"status {r.status}",
                "met" if met else "missed",
            )
        )
    return rows


# ---------------------------------------------------------------------------
# Gate
# ---------------------------------------------------------------------------
def _gate_body() -> dict[str, Any] | None:
    """An existing production deployment and the version it runs (or any version)."""
    deployment = (
        m.Deployment.objects.filter(environment=m.Deployment.Environment.PRODUCTION)
        .select_related("model", "observed_version")
        .order_by("id")
        .first()
    ) or m.Deployment.objects.select_related("model", "observed_version").first()
    if deployment is None:
        return None
    version = (
        deployment.observed_version
        or m.ModelVersion.objects.filter(model=deployment.model).first()
    )
    return {
        "model": deployment.model.name,
        "version": version.version if version else "1",
        "environment": deployment.environment,
        "deployment": deployment.pk,
    }


def bench_gate(*, requests: int, floor_p95: float | None, out: Out) -> Row:
    name = "gate: POST /api/v1/gate (token with the gate scope)"
    try:
        path = reverse("api:gate")
    except NoReverseMatch:
        return Row(
            name, NOT_AVAILABLE, note="URL 'api:gate' not routed yet", status="n/a"
        )
    body = _gate_body()
    if body is None:
        return Row(name, NOT_AVAILABLE, note=GATE_BODY_NOT_FOUND, status="n/a")
    token, raw = services.api_token_issue(
        actor=None, actor_label="bench", name="bench gate", scopes=["gate"], days=1
    )
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    secure = settings.SECURE_SSL_REDIRECT
    data = json.dumps(body)
    times: list[float] = []
    cpu: list[float] = []
    statuses: set[int] = set()
    answers: set[str] = set()
    try:
        for _ in range(WARMUPS):
            client.post(path, data=data, content_type="application/json", secure=secure)
        # The debug query log is bounded (9,000): a full one captures nothing new.
        reset_queries()
        with CaptureQueriesContext(connection) as queries:
            client.post(path, data=data, content_type="application/json", secure=secure)
        # Read now: captured_queries slices the live log, which later requests reset.
        query_count = len(queries.captured_queries)
        for _ in range(requests):
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.post(
                path, data=data, content_type="application/json", secure=secure
            )
            cpu.append((time.process_time() - started_cpu) * 1000)
            times.append((time.perf_counter() - started) * 1000)
            statuses.add(response.status_code)
            if response.status_code == 200:
                answers.add(response.json()["decision"])
    finally:
        services.api_token_revoke(actor=None, token=token, actor_label="bench")
    p95 = _p95(times)
    floor = f", floor p95 {floor_p95:.1f} ms" if floor_p95 is not None else ""
    return Row(
        name,
        f"{query_count} queries, {statistics.median(cpu):.1f} ms CPU, "
        f"p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms{floor}",
        f"p95 <= {TARGET_GATE_P95_MS:.0f} ms",
        f"status {'/'.join(map(str, sorted(statuses)))}, answered "
        f"{'/'.join(sorted(answers)) or '-'}; each request records a decision and an "
        "audit event",
        "met" if p95 <= TARGET_GATE_P95_MS and statuses == {200} else "missed",
    )


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------
def report(rows: list[Row], out: Out) -> None:
    if not rows:
        return
    out("")
    out("Findings, proof card and gate (issue 10):")
    header = ("row", "figure", "target", "verdict", "note")
    table = [(r.name, r.value, r.target, r.status, r.note) for r in rows]
    widths = [max(len(header[i]), *(len(t[i]) for t in table)) for i in range(4)]

    def line(cells: tuple[str, ...]) -> str:
        return " | ".join(
            [cells[i].ljust(widths[i]) for i in range(4)] + [cells[4]]
        ).rstrip()

    out(line(header))
    out("-+-".join("-" * w for w in widths) + "-+-" + "-" * 4)
    for t in table:
        out(line(t))
