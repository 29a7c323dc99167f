"""A real moto server (AWS APIs over HTTP) for the AWS connector tests.

Import the fixtures explicitly: `from tests.connectors.aws_server import moto_server, aws`.
One server per test session (per xdist worker); `aws` resets its state before each test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import boto3
import pytest
import requests

START_DEADLINE_SECONDS = 30
ACCOUNT_ID = "123456789012"  # moto's default account


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """The endpoint URL of a moto server on 127.0.0.1, stopped at the end of the session."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    log = open(log_path, "wb")  # noqa: SIM115 (closed at teardown)
    proc = subprocess.Popen(  # noqa: S603 (fixed argv)
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"moto server exited with {proc.returncode}: {log_path.read_text()[-2000:]}"
                )
            try:
                requests.get(f"{url}/moto-api/", timeout=1)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"moto server not ready after {START_DEADLINE_SECONDS} s: "
                        f"{log_path.read_text()[-2000:]}"
                    )
                time.sleep(0.1)
        yield url
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass
class Aws:
    """Clients on the moto server, with the credentials any caller may use there."""

    endpoint_url: str

    def client(
        self,
        service: str = "iam",
        key_id: str = "testing",
        secret: str = "testing",  # noqa: S107
    ):
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )


@pytest.fixture
def aws(moto_server):
    """The moto server, emptied: every test starts with no IAM users."""
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    return Aws(moto_server)
