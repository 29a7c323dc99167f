"""A real `mlflow server` for the MLflow connector tests, started once per test session.

Test modules import the fixture explicitly (`from tests.connectors.mlflow_server import
mlflow_server_fixture`); it registers under the name `mlflow_server`. The server comes
from the pinned venv (`make mlflow-venv`, or RUNPROOF_TEST_MLFLOW_VENV); a missing venv
fails the tests with how to build it, it never skips them.

The registry is written with MLflow's own Python client, run by the server venv's Python
(Runproof's venv has no mlflow): `mlflow_client(server, [(method, kwargs), ...])` calls
`MlflowClient.<method>(**kwargs)` in order and returns what each call returned.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import requests

from devtools.bench_mlflow import MlflowServer, MlflowServerError, start_mlflow_server

CLIENT_SECONDS = 120

# Runs in the server's venv: reads [[method, kwargs], ...] on stdin, prints the results.
CLIENT_SCRIPT = r"""
import json, sys
from mlflow import MlflowClient

FIELDS = ("webhook_id", "success", "response_status", "response_body", "error_message",
          "name", "version")
uri = sys.argv[1]
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
out = []

def resolve(value):
    # "$<n>.<field>": a field of the result of call n (e.g. the run a version comes from).
    if isinstance(value, str) and value.startswith("$"):
        index, _, key = value[1:].partition(".")
        return out[int(index)][key]
    return value

for method, kwargs in json.load(sys.stdin):
    value = getattr(client, method)(**{k: resolve(v) for k, v in kwargs.items()})
    if value is None or isinstance(value, (str, int, float, bool)):
        out.append(value)
    elif hasattr(value, "info") and hasattr(value.info, "run_id"):
        out.append({"run_id": value.info.run_id})
    else:
        out.append({f: getattr(value, f) for f in FIELDS if hasattr(value, f)})
json.dump(out, sys.stdout, default=str)
"""


@pytest.fixture(scope="session", name="mlflow_server")
def mlflow_server_fixture(tmp_path_factory) -> MlflowServer:
    problem = ""
    try:
        with start_mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
            yield server
    except MlflowServerError as exc:
        problem = str(exc)
    if problem:  # failed outside the except block, so the report is the message alone
        pytest.fail(problem, pytrace=False)


def mlflow_client(
    server: MlflowServer, calls: list[tuple[str, dict[str, Any]]]
) -> list:
    """Call MlflowClient methods against the server, in the server's venv."""
    done = subprocess.run(  # noqa: S603  (the server venv's python, our own script)
        [str(server.python), "-c", CLIENT_SCRIPT, server.url],
        input=json.dumps(calls),
        capture_output=True,
        text=True,
        timeout=CLIENT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"MlflowClient calls failed:\n{done.stderr[-3000:]}", pytrace=False)
    return json.loads(done.stdout)


def rest(server: MlflowServer, path: str, **params: Any) -> dict[str, Any]:
    """GET one registry endpoint and return its JSON (for checks of the server's state)."""
    response = requests.get(server.api(path), params=params, timeout=30)
    response.raise_for_status()
    return response.json()
