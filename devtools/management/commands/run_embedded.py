"""`manage.py run_embedded`: the embedded default in one command (what `make run` calls).

Migrates, seeds the demo organisation into an empty inventory, ensures the demo accounts,
then supervises its children until Ctrl-C:

- the web server: Django's threaded `runserver --noreload`. DEBUG stays off; WhiteNoise
  serves static files from the source folders (WHITENOISE_USE_FINDERS in embedded mode).
  It listens on loopback for one user, so a WSGI server would only add a dependency.
- one Celery worker with embedded beat, on the filesystem broker under ./var/broker;
- the demo's Kubernetes API server (devtools.k8s_fake, on RUNPROOF_DEMO_CLUSTER_PORT, 8001),
  serving the demo's workloads, so the demo Kubernetes source's "Sync now" really pulls.

Each child runs in its own process group, so Ctrl-C reaches only this supervisor, which
stops the children in order (SIGTERM, wait, then SIGKILL of the whole group). Children
also get SIGTERM if the supervisor dies (PR_SET_PDEATHSIG), so nothing is left behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

STOP_TIMEOUT_SECONDS = 20  # a warm Celery shutdown waits for the running task
READY_TIMEOUT_SECONDS = 60
POLL_SECONDS = 0.5
PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    name: str
    args: list[str]
    process: subprocess.Popen | None = None


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGTERM it when the supervisor dies."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not glibc Linux: the process group still lets us stop it
        pass


class Command(BaseCommand):
    help = "Run Runproof's embedded default: migrate, seed demo data, start web + Celery worker/beat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-demo",
            action="store_true",
            help="Do not seed demo data into an empty inventory (accounts are still ensured).",
        )

    def handle(self, *args: Any, host: str, port: int, no_demo: bool, **options: Any):
        self._stopping = False
        self._signals = 0
        self._prepare(seed=not no_demo)
        accounts = self._accounts()
        # Children open their own connections; this process needs none while it waits.
        connections.close_all()
        self._check_port_free(host, port)

        python = sys.executable
        children = [
            Child(
                "web server",
                [python, "manage.py", "runserver", "--noreload", f"{host}:{port}"],
            ),
            Child(
                "celery worker",
                # --quiet drops Celery's start-up banner so ours stays readable.
                [python, "-m", "celery", "--quiet", "-A", "config", "worker", "-B"]
                + ["--loglevel", "INFO", "--concurrency", "2"],
            ),
        ]
        children += self._demo_cluster(python)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        try:
            for child in children:
                child.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                    child.args,
                    cwd=settings.BASE_DIR,
                    process_group=0,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads here yet
                )
            failed = self._wait_until_ready(children, host, port)
            if failed is None:
                self._banner(host, port, accounts)
                failed = self._watch(children)
        finally:
            self._stop_all(children)
        if failed is not None:
            raise CommandError(
                f"The {failed.name} stopped unexpectedly (exit code {failed.process.returncode}); "
                "everything else was stopped. See its output above."
            )
        self.stdout.write("Runproof stopped.")

    # -- before the children -------------------------------------------------
    def _prepare(self, *, seed: bool) -> None:
        from devtools import demo

        self.stdout.write("Applying migrations…")
        call_command("migrate", interactive=False, verbosity=0)
        if seed and not demo.has_demo_data():
            self.stdout.write(
                "Empty inventory: seeding the demo organisation (seed 7)…"
            )
            started = time.perf_counter()
            counts = demo.seed_demo(
                seed=7, progress=lambda message: self.stdout.write(f"  {message}")
            )
            summary = ", ".join(f"{count} {name}" for name, count in counts.items())
            self.stdout.write(
                f"Seeded in {time.perf_counter() - started:.1f} s: {summary}."
            )
            from devtools import demo_sources

            if not demo_sources.has_demo_sources():
                self.stdout.write("Demo sources, each synced once from a demo file:")
                demo_sources.seed_demo_sources(
                    seed=7, progress=lambda message: self.stdout.write(f"  {message}")
                )

    def _accounts(self) -> list[tuple[str, str, str]]:
        from devtools import demo

        return demo.ensure_demo_accounts()

    def _demo_cluster(self, python: str) -> list[Child]:
        """The demo's Kubernetes API server (devtools.k8s_fake serving the demo's
        workloads), when the demo sources were seeded: the Kubernetes source's "Sync now"
        pulls from it. If its port is taken the source's runs fail and say why."""
        from devtools import demo_sources

        path = demo_sources.demo_cluster_file()
        if not path.exists():
            return []
        port = demo_sources.DEMO_CLUSTER_PORT
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                self.stderr.write(
                    f"Port {port} is taken: the demo Kubernetes cluster does not start "
                    "(set RUNPROOF_DEMO_CLUSTER_PORT before the first seed to move it)."
                )
                return []
        return [
            Child(
                "demo Kubernetes API server",
                [python, "-m", "devtools.k8s_fake", "--from-file", str(path)]
                + ["--port", str(port)],
            )
        ]

    def _check_port_free(self, host: str, port: int) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            if sock.connect_ex((host, port)) == 0:
                raise CommandError(
                    f"Something already listens on {host}:{port}. Stop it, or pass --port."
                )

    # -- supervising ------------------------------------------------------------
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if not self._stopping:
            self.stdout.write(
                f"\n{signal.Signals(signum).name} received: stopping everything…"
            )
        self._stopping = True

    def _first_dead(self, children: list[Child]) -> Child | None:
        for child in children:
            if child.process is not None and child.process.poll() is not None:
                return child
        return None

    def _wait_until_ready(
        self, children: list[Child], host: str, port: int
    ) -> Child | None:
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while not self._stopping and time.monotonic() < deadline:
            dead = self._first_dead(children)
            if dead is not None:
                return dead
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                if sock.connect_ex((host, port)) == 0:
                    return None
            time.sleep(POLL_SECONDS)
        if not self._stopping:
            self.stderr.write(
                f"The web server did not answer on {host}:{port} within {READY_TIMEOUT_SECONDS} s."
            )
            return children[0]
        return None

    def _watch(self, children: list[Child]) -> Child | None:
        while not self._stopping:
            dead = self._first_dead(children)
            if dead is not None:
                return dead
            time.sleep(POLL_SECONDS)
        return None

    def _banner(self, host: str, port: int, accounts: list[tuple[str, str, str]]):
        rule = "=" * 72
        lines = [
            "",
            rule,
            f"  Runproof is running at http://{host}:{port}",
            "",
            "  Demo accounts (one per role):",
        ]
        width = max((len(username) for username, _, _ in accounts), default=8)
        for username, password, role in accounts:
            lines.append(f"    {str(role):<20} {username:<{width}}  {password}")
        lines += [
            "",
            "  Ctrl-C stops everything (web server, Celery worker and beat).",
            rule,
            "",
        ]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

    def _stop_all(self, children: list[Child]) -> None:
        running = [c for c in children if c.process and c.process.poll() is None]
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for child in running:
            # A second Ctrl-C means "now": skip the grace period.
            while child.process.poll() is None and time.monotonic() < deadline:
                if self._signals > 1:
                    break
                time.sleep(0.1)
            if child.process.poll() is None:
                self.stderr.write(f"The {child.name} did not stop in time; killing it.")
        for child in children:
            if child.process is None:
                continue
            # Whatever is left in the child's group (a pool process, beat): kill it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
