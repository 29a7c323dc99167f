"""`manage.py bench`: time the pages people use, in-process, at a realistic scale.

Each page is fetched through the full middleware stack with django.test.Client: 3 warm-ups,
one request under CaptureQueriesContext for its SQL query count and SQL time, then N timed
requests for p50/p95. Pages are fetched as an administrator (reads everything) and as a model
owner (two teams' objects), so scoped queries show up. A floor row (a view that returns "ok")
shows what the middleware stack alone costs.

    manage.py bench --quick                      # small data, smoke test
    manage.py bench --reuse --requests 20        # reuse an already seeded tier-M database
    manage.py bench --sources                    # the sources instead: OTLP spans/s against
                                                 # PostgreSQL COPY, a full MLflow sync of 1,000
                                                 # models / 10,000 versions, a Kubernetes sync
                                                 # of 50,000 objects
"""

from __future__ import annotations

import functools
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import NoReverseMatch, Resolver404, resolve, reverse

from devtools import bench_findings, demo
from devtools.bench_urls import FLOOR_PATH
from governance.models import Finding
from inventory import models as m
from inventory import selectors, services, summary
from inventory.pagination import encode_cursor
from inventory.views import SPECS

QUICK_SCALE = (60, 200, 600)
# Targets (issue 7, item 9): queries per page, and server CPU for a 50-row list page.
MAX_LIST_QUERIES = 6
MAX_DETAIL_QUERIES = 8
MAX_LIST_CPU_MS = 12.0
WARMUPS = 3
# How deep into the deployment list the "deep page" starts, as a share of the visible rows.
DEEP_PAGE_AT = 0.9
API_DEPLOYMENTS = "/api/v1/deployments/"
ROLES = ("admin", "owner")
# The relation whose size makes each detail page heaviest; the bench times the heaviest one.
DETAIL_HEAVIEST_BY = {
    "team": "deployments",
    "aimodel": "deployments",
    "modelversion": "observed_in",
    "system": "deployments",
    "deployment": "identities",
    "identity": "deployments",
}
FILTERED = [
    ("deployment", "environment=production&risk=external"),
    ("deployment", "risk=drift"),
    ("deployment", "risk=ownerless"),
    ("deployment", "q=fraud"),
    # Free-text search (issue 9, item 8): a term that matches nothing reads the whole
    # table unless an index answers it; a term that matches pages through its matches.
    ("deployment", "q=zzzqqq"),
    ("identity", "q=zzzqqq"),
    ("identity", "q=fraud"),
    ("aimodel", "q=zzzqqq"),
    ("modelversion", "q=zzzqqq"),
    ("deployment", "sort=-last_seen_at"),
    # Issue 9, item 5: the sorts on owner, team and last call (nullable, keyset, indexed).
    ("deployment", "sort=owner"),
    ("deployment", "sort=-team"),
    ("deployment", "sort=-last_call_at"),
    ("identity", "risk=stale"),
    ("identity", "risk=retired_model"),
    ("identity", "risk=ownerless"),
    ("aimodel", "lifecycle=retired"),
]
SOURCE_LISTS = [
    ("source list", "sources:source_list"),
    ("sync run list", "sources:run_list"),
    ("deployment event list", "sources:event_list"),
]
NOT_EMPTY = (
    "The inventory holds {models} models, {deployments} deployments and {identities} "
    "identities, short of the target {target}. Bench an empty database (it seeds one), or "
    "pass --reuse with a database already seeded at that scale."
)


@dataclass
class Case:
    page: str
    role: str
    path: str | None
    headers: dict[str, str] = field(default_factory=dict)
    skip: str = ""
    before: Callable[[], None] | None = None  # run before each request, not timed


@dataclass
class Result:
    case: Case
    status: str = ""
    queries: int | None = None
    sql_ms: float | None = None
    cpu: float | None = None
    p50: float | None = None
    p95: float | None = None
    kb: float | None = None

    @property
    def kind(self) -> str:
        page = self.case.page
        if "detail" in page:
            return "detail"
        if "list" in page or page.startswith("audit log"):
            return "list"
        return ""


class Command(BaseCommand):
    help = "Time the dashboard, lists, details, audit log and API in-process; print p50/p95 and query counts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--models", type=int, default=10_000)
        parser.add_argument("--deployments", type=int, default=50_000)
        parser.add_argument("--identities", type=int, default=250_000)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--reuse",
            action="store_true",
            help="Use the data already there if it is at least the target scale.",
        )
        parser.add_argument(
            "--requests",
            type=int,
            default=50,
            help="Timed requests per page and role (default 50).",
        )
        parser.add_argument(
            "--quick",
            action="store_true",
            help=f"Small scale for a smoke test: {QUICK_SCALE[0]} models, "
            f"{QUICK_SCALE[1]} deployments, {QUICK_SCALE[2]} identities.",
        )
        sources = parser.add_argument_group("sources (with --sources)")
        sources.add_argument(
            "--sources",
            action="store_true",
            help="Benchmark the sources instead of the pages.",
        )
        sources.add_argument(
            "--only",
            choices=["otlp", "mlflow", "kubernetes"],
            action="append",
            help="Run only these source benchmarks (repeatable).",
        )
        sources.add_argument("--spans", type=int, default=51_200)
        sources.add_argument("--mlflow-models", type=int, default=1_000)
        sources.add_argument("--mlflow-versions", type=int, default=10_000)
        sources.add_argument("--k8s-objects", type=int, default=50_000)
        parser.add_argument(
            "--no-vacuum",
            action="store_true",
            help="Time the pages without VACUUM (ANALYZE) first (PostgreSQL; see _vacuum).",
        )
        bench_findings.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["sources"]:
            self._bench_sources(options)
            return
        if options["requests"] < 1:
            raise CommandError("--requests must be at least 1.")
        scale = (
            QUICK_SCALE
            if options["quick"]
            else (options["models"], options["deployments"], options["identities"])
        )
        self._prepare_data(scale, reuse=options["reuse"], seed=options["seed"])
        demo.ensure_demo_accounts()
        users = {
            u.username: u for u in get_user_model().objects.filter(username__in=ROLES)
        }
        # Issue 10: usage for the detectors, then detection before the pages read findings.
        findings_rows = []
        if not options["no_findings"]:
            findings_rows.append(
                bench_findings.seed_usage(
                    deployments=options["usage_deployments"],
                    days=options["usage_days"],
                    out=self.stdout.write,
                )
            )
            if options["skip_detection"]:
                findings_rows.append(
                    bench_findings.Row(
                        "detection",
                        "skipped (--skip-detection)",
                        note=f"{Finding.objects.count():,} findings already there",
                        status="n/a",
                    )
                )
            else:
                if not options["no_vacuum"]:
                    self._vacuum()
                findings_rows += bench_findings.bench_detection(
                    repeats=min(options["requests"], 20), out=self.stdout.write
                )
        if not options["no_vacuum"]:
            self._vacuum()
        token, raw = services.api_token_issue(
            actor=None, actor_label="bench", name="bench", scopes=["read"], days=1
        )
        try:
            with override_settings(
                ROOT_URLCONF="devtools.bench_urls",
                ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"],
            ):
                self._load_before = _load()
                results = self._run_all(
                    users,
                    raw,
                    options["requests"],
                    only_findings=options["only_findings"],
                )
                floor = [r.p95 for r in results if r.case.path == FLOOR_PATH and r.p95]
                if not options["no_findings"]:
                    findings_rows.append(
                        bench_findings.bench_gate(
                            requests=options["requests"],
                            floor_p95=min(floor, default=None),
                            out=self.stdout.write,
                        )
                    )
                self._load_after = _load()
        finally:
            services.api_token_revoke(actor=None, token=token, actor_label="bench")
        self._report(results, options["requests"])
        findings_rows += bench_findings.page_rows(results, min(floor, default=None))
        bench_findings.report(findings_rows, self.stdout.write)

    def _vacuum(self) -> None:
        """On PostgreSQL, VACUUM (ANALYZE) the database before detection and again before
        the pages are timed, as autovacuum would have after the seeding, the tiers and
        detection wrote it: their updates leave dead rows (50,000 per tier recompute of
        the deployments) that make the planner guess tables twice their size, and pages
        without a visibility map make index-only scans read the table. A database whose
        autovacuum is off (the bench's machine) would otherwise be measured as no
        maintained one is. `--no-vacuum` skips it."""
        if connection.vendor != "postgresql" or connection.in_atomic_block:
            return
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE)")
        self.stdout.write(
            f"  VACUUM (ANALYZE) of the database: {time.perf_counter() - started:.1f} s"
        )

    # -- data --------------------------------------------------------------------
    def _bench_sources(self, options: dict[str, Any]) -> None:
        """Each source benchmark cleans up the rows it wrote (audit events stay)."""
        from devtools.bench_k8s import bench_k8s_sync
        from devtools.bench_mlflow import bench_mlflow_sync
        from devtools.bench_otlp import bench_otlp

        wanted = options["only"] or ["otlp", "mlflow", "kubernetes"]
        out = self.stdout.write
        with connection.cursor() as cursor:
            cursor.execute(
                "SHOW server_version"
                if connection.vendor == "postgresql"
                else "SELECT sqlite_version()"
            )
            version = cursor.fetchone()[0]
        out(f"Database: {connection.vendor} {version}; {os.cpu_count()} CPUs.")
        if "otlp" in wanted:
            out("\n== OTLP /v1/traces (protobuf, 512 spans a request) ==")
            bench_otlp(spans=options["spans"], batch=512, out=out)
        if "mlflow" in wanted:
            out("\n== MLflow registry sync ==")
            bench_mlflow_sync(
                models=options["mlflow_models"],
                versions=options["mlflow_versions"],
                out=out,
            )
        if "kubernetes" in wanted:
            out("\n== Kubernetes sync ==")
            bench_k8s_sync(objects=options["k8s_objects"], out=out)

    def _prepare_data(
        self, scale: tuple[int, int, int], *, reuse: bool, seed: int
    ) -> None:
        models, deployments, identities = scale
        have = (
            m.AIModel.objects.count(),
            m.Deployment.objects.count(),
            # Runproof's own API tokens (one per bench run) do not count towards the scale.
            m.NonHumanIdentity.objects.exclude(
                kind=m.NonHumanIdentity.Kind.RUNPROOF_TOKEN
            ).count(),
        )
        if have[0] == 0:
            self.stdout.write(
                f"Seeding {models} models, {deployments} deployments, {identities} identities…"
            )
            started = time.perf_counter()
            demo.seed_demo(
                seed=seed,
                models=models,
                deployments=deployments,
                identities=identities,
                progress=lambda message: self.stdout.write(f"  {message}"),
            )
            self.stdout.write(f"Seeded in {time.perf_counter() - started:.1f} s.")
            return
        if reuse and all(h >= t for h, t in zip(have, scale, strict=True)):
            self.stdout.write("Reusing the data already in the database.")
            return
        raise CommandError(
            NOT_EMPTY.format(
                models=have[0],
                deployments=have[1],
                identities=have[2],
                target="/".join(map(str, scale)),
            )
        )

    # -- cases -------------------------------------------------------------------
    def _cases(self, users: dict[str, Any]) -> list[Case]:
        cases: list[Case] = []
        for role in ROLES:
            cases.append(Case("floor (middleware only)", role, FLOOR_PATH))
        for role in ROLES:
            cases.append(self._named("dashboard", role, "dashboard"))
        for role in ROLES:  # no cache to bypass: the same page with the cache cleared
            case = self._named("dashboard (uncached)", role, "dashboard")
            case.before = cache.clear
            cases.append(case)
        for (
            role
        ) in ROLES:  # a write marked the largest team: the page recounts it first
            case = self._named("dashboard after a write", role, "dashboard")
            case.before = _mark_largest_team
            cases.append(case)
        for key in SPECS:
            for role in ROLES:
                cases.append(self._named(f"{key} list", role, f"inventory:{key}_list"))
        for role in ROLES:
            cases.append(self._deep_page(role, users[role]))
        for role in ROLES:
            case = self._named(
                "deployment list (htmx fragment)", role, "inventory:deployment_list"
            )
            case.headers = {"HX-Request": "true"}
            cases.append(case)
        for key, query in FILTERED:
            for role in ROLES:
                case = self._named(
                    f"{key} list ?{query}", role, f"inventory:{key}_list"
                )
                if case.path:
                    case.path += f"?{query}"
                cases.append(case)
        for key in SPECS:
            for role in ROLES:
                cases.append(self._detail(key, role, users[role]))
        for role in ROLES:
            cases.append(self._named("audit log", role, "governance:audit_list"))
        for page, name in SOURCE_LISTS:
            for role in ROLES:
                cases.append(self._named(page, role, name))
        cases += bench_findings.page_cases(self._named, Case, ROLES)
        cases.append(
            self._literal("API GET /api/v1/deployments/", "token:read", API_DEPLOYMENTS)
        )
        return cases

    def _named(self, page: str, role: str, name: str, *args: Any) -> Case:
        try:
            return Case(page, role, reverse(name, args=args))
        except NoReverseMatch:
            return Case(page, role, None, skip=f"URL {name!r} not routed yet")

    def _literal(self, page: str, role: str, path: str) -> Case:
        try:
            resolve(path)
        except Resolver404:
            return Case(page, role, None, skip=f"{path} not routed yet")
        return Case(page, role, path)

    def _deep_page(self, role: str, user: Any) -> Case:
        page = f"deployment list, page at row {DEEP_PAGE_AT:.0%}"
        case = self._named(page, role, "inventory:deployment_list")
        if not case.path:
            return case
        visible = selectors.deployment_list(user=user).order_by("name", "pk")
        total = visible.count()
        if total < 2:
            case.skip = "too few deployments"
            case.path = None
            return case
        name, pk = visible.values_list("name", "pk")[int(total * DEEP_PAGE_AT) - 1]
        case.page = f"deployment list, after row {int(total * DEEP_PAGE_AT)}/{total}"
        case.path += f"?after={encode_cursor([name, pk])}"
        return case

    def _detail(self, key: str, role: str, user: Any) -> Case:
        spec = SPECS[key]
        pk = (
            spec.selector(user=user)
            .annotate(bench_related=Count(DETAIL_HEAVIEST_BY[key]))
            .order_by("-bench_related", "pk")
            .values_list("pk", flat=True)
            .first()
        )
        if pk is None:
            return Case(f"{key} detail", role, None, skip="nothing visible")
        return self._named(
            f"{key} detail (most {DETAIL_HEAVIEST_BY[key]})",
            role,
            f"inventory:{key}_detail",
            pk,
        )

    # -- measuring ---------------------------------------------------------------
    def _run_all(
        self,
        users: dict[str, Any],
        raw_token: str,
        requests: int,
        *,
        only_findings: bool = False,
    ) -> list[Result]:
        clients: dict[str, Client] = {}
        for role in ROLES:
            clients[role] = Client()
            clients[role].force_login(
                users[role], backend="django.contrib.auth.backends.ModelBackend"
            )
        clients["token:read"] = Client(headers={"Authorization": f"Bearer {raw_token}"})
        results = []
        cases = self._cases(users)
        if only_findings:
            cases = [c for c in cases if c.path == FLOOR_PATH or _issue10_page(c)]
        for case in cases:
            result = self._measure(clients[case.role], case, requests)
            self.stdout.write(
                f"  {case.page} [{case.role}]: {result.status}"
                + (f", p95 {result.p95:.1f} ms" if result.p95 is not None else "")
            )
            results.append(result)
        return results

    def _measure(self, client: Client, case: Case, requests: int) -> Result:
        result = Result(case)
        if case.path is None:
            result.status = "skipped"
            return result
        secure = settings.SECURE_SSL_REDIRECT

        def get():
            return client.get(case.path, headers=case.headers, secure=secure)

        def prepare():
            if case.before is not None:
                case.before()

        try:
            for _ in range(WARMUPS):
                prepare()
                get()
            prepare()
            with CaptureQueriesContext(connection) as queries:
                response = get()
            result.queries = len(queries.captured_queries)
            result.sql_ms = 1000 * sum(
                float(q["time"]) for q in queries.captured_queries
            )
            result.kb = len(response.content) / 1024
            statuses = {response.status_code}
            times = []
            cpu = []
            for _ in range(requests):
                prepare()
                started, started_cpu = time.perf_counter(), time.process_time()
                statuses.add(get().status_code)
                # The client runs in this process: CPU time is the server's work (plus
                # the test client's), steadier than wall time on a shared machine.
                cpu.append((time.process_time() - started_cpu) * 1000)
                times.append((time.perf_counter() - started) * 1000)
        except (
            Exception
        ) as exc:  # report the failure in the table, keep benching the rest
            result.status = f"error: {type(exc).__name__}: {exc}"[:300]
            return result
        result.status = "/".join(str(s) for s in sorted(statuses))
        result.cpu = statistics.median(cpu)
        result.p50 = statistics.median(times)
        result.p95 = sorted(times)[max(0, math.ceil(0.95 * len(times)) - 1)]
        return result

    # -- report ------------------------------------------------------------------
    def _report(self, results: list[Result], requests: int) -> None:
        self.stdout.write("")
        self.stdout.write(self._environment(requests))
        header = (
            "page",
            "role",
            "status",
            "queries",
            "SQL ms",
            "CPU ms",
            "p50 ms",
            "p95 ms",
            "KB",
            "target",
        )
        rows = [
            (
                r.case.page,
                r.case.role,
                # Errors are spelled out under the table, where they fit.
                r.status.split(":", 1)[0],
                _fmt(r.queries, "{}"),
                _fmt(r.sql_ms, "{:.1f}"),
                _fmt(r.cpu, "{:.1f}"),
                _fmt(r.p50, "{:.1f}"),
                _fmt(r.p95, "{:.1f}"),
                _fmt(r.kb, "{:.0f}"),
                # Lists and details: "met", or what it misses (queries, CPU).
                ", ".join(self._misses(r)) or ("met" if r.kind and r.cpu else ""),
            )
            for r in results
        ]
        widths = [
            max(len(header[i]), *(len(row[i]) for row in rows))
            for i in range(len(header))
        ]
        numeric = {3, 4, 5, 6, 7, 8}  # the target column reads left-aligned

        def line(cells: tuple[str, ...]) -> str:
            return " | ".join(
                cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i])
                for i, cell in enumerate(cells)
            )

        self.stdout.write(line(header))
        self.stdout.write("-+-".join("-" * w for w in widths))
        for row in rows:
            self.stdout.write(line(row))
        problems = [
            r for r in results if r.status and r.status != "200" and r.case.path
        ]
        floor = [r for r in results if r.case.path == FLOOR_PATH and r.queries == 0]
        if floor:
            self.stdout.write(
                self.style.WARNING(
                    "The floor ran 0 queries: query capture is not working."
                )
            )
        self.stdout.write(self._targets(results))
        for r in problems:
            self.stdout.write(
                self.style.WARNING(
                    f"Not 200: {r.case.page} [{r.case.role}]: {r.status}"
                )
            )
        for r in results:
            if r.case.path is None:
                self.stdout.write(
                    f"Skipped: {r.case.page} [{r.case.role}]: {r.case.skip}"
                )

    @staticmethod
    def _misses(r: Result) -> list[str]:
        """What one page misses: queries on lists and details, CPU on lists."""
        if r.queries is None or not r.kind:
            return []
        misses = []
        limit = MAX_LIST_QUERIES if r.kind == "list" else MAX_DETAIL_QUERIES
        if r.queries > limit:
            misses.append(f"{r.queries} queries")
        if r.kind == "list" and r.cpu is not None and r.cpu >= MAX_LIST_CPU_MS:
            misses.append(f"{r.cpu:.1f} ms CPU")
        return misses

    def _targets(self, results: list[Result]) -> str:
        """Which pages miss the targets: queries on lists and details, CPU on lists."""
        misses = [
            f"{r.case.page} [{r.case.role}]: {', '.join(self._misses(r))}"
            for r in results
            if self._misses(r)
        ]
        floor = [r.cpu for r in results if r.case.path == FLOOR_PATH and r.cpu]
        if floor:
            misses_note = (
                f"Floor (middleware only) in this run: {min(floor):.1f} ms CPU; "
                f"machine load (1-minute average) {self._load_before} before, "
                f"{self._load_after} after.\n"
            )
        else:
            misses_note = ""
        head = misses_note + (
            f"Targets: lists at most {MAX_LIST_QUERIES} queries and under "
            f"{MAX_LIST_CPU_MS:.0f} ms CPU, detail pages at most {MAX_DETAIL_QUERIES} "
            "queries: "
        )
        return head + (
            "all met." if not misses else "missed by\n  " + "\n  ".join(misses)
        )

    def _environment(self, requests: int) -> str:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SHOW server_version")
            else:
                cursor.execute("SELECT sqlite_version()")
            version = cursor.fetchone()[0]
        counts = ", ".join(
            f"{model._meta.verbose_name_plural}: {model.objects.count()}"
            for model in demo.SEEDED_ENTITIES
        )
        return (
            f"Database: {connection.vendor} {version}; {os.cpu_count()} CPUs; "
            f"{WARMUPS} warm-ups then {requests} timed requests per row.\n"
            f"Scale: {counts}; identity bindings: "
            f"{m.NonHumanIdentity.deployments.through.objects.count()}.\n"
        )


def _load() -> str:
    """The 1-minute load average, as uptime prints it (a shared machine's CPU figures
    mean little without it)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def _issue10_page(case: Case) -> bool:
    return case.page.startswith(("findings page", "proof card"))


def _fmt(value: float | int | None, pattern: str) -> str:
    return "" if value is None else pattern.format(value)


@functools.cache
def _largest_team() -> int | None:
    return (
        m.NonHumanIdentity.objects.filter(team__isnull=False)
        .values("team_id")
        .annotate(n=Count("pk"))
        .order_by("-n")
        .values_list("team_id", flat=True)
        .first()
    )


def _mark_largest_team() -> None:
    """As a write in the largest team would (its recount is left to the reader)."""
    summary.mark_dirty([_largest_team()], inline=False)
