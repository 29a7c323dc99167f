"""The fake Kubernetes API server (devtools.k8s_fake) serving the recorded fixtures.

Import the fixtures explicitly:
`from tests.connectors.fake_apiserver import k8s_api, k8s_api_tls, k8s_source`.

The server runs in a thread of the test process, so a test can change what the "cluster"
holds (`k8s_api.cluster.objects[...]`), make it fail, and read the requests it received.
"""

from __future__ import annotations

import copy
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devtools.k8s_fake import RESOURCES, FakeCluster, RunningServer, serve
from sources import models as sm
from sources.sync import secrets

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "k8s"
TOKEN = "test-token-3f9a"
READY_DEADLINE_SECONDS = 10


def fixture_objects() -> dict[str, list[dict[str, Any]]]:
    """The recorded objects, per resource key, as fresh copies a test may edit."""
    out = {}
    for key in RESOURCES:
        doc = json.loads((FIXTURES / f"{key}.json").read_text())
        out[key] = copy.deepcopy(doc["items"])
    return out


def start(cluster: FakeCluster, *, tls: bool = False) -> RunningServer:
    """Start the fake server and wait (with a deadline) until it answers."""
    import ssl
    import time

    running = serve(cluster, tls=tls)
    context = None
    if tls:
        context = ssl.create_default_context(cadata=running.ca_pem)
    deadline = time.monotonic() + READY_DEADLINE_SECONDS
    while True:
        try:
            with urllib.request.urlopen(  # noqa: S310 (our own local URL)
                f"{running.url}/version", timeout=1, context=context
            ):
                break
        except urllib.error.HTTPError:
            break  # it answered (401 without a token): it is up
        except OSError as exc:
            if time.monotonic() > deadline:
                running.stop()
                pytest.fail(f"fake apiserver not ready at {running.url}: {exc}")
            time.sleep(0.05)
    # The readiness probe is not a request the tests care about.
    cluster.requests.clear()
    return running


@pytest.fixture
def k8s_api():
    """A fake apiserver over http serving the fixtures; requires the bearer TOKEN."""
    running = start(FakeCluster(objects=fixture_objects(), token=TOKEN))
    yield running
    running.stop()


@pytest.fixture
def k8s_api_tls():
    """The same over https, with a self-signed certificate (`.ca_pem` is its CA)."""
    running = start(FakeCluster(objects=fixture_objects(), token=TOKEN), tls=True)
    yield running
    running.stop()


@pytest.fixture
def k8s_source(db):
    """Make a Kubernetes DataSource: k8s_source(url, token=TOKEN, **settings)."""

    def make(url: str = "", *, token: str | None = TOKEN, **config: Any):
        return sm.DataSource.objects.create(
            name=f"Cluster {sm.DataSource.objects.count() + 1}",
            kind="kubernetes",
            config={"api_url": url, **config},
            secrets_encrypted=secrets.encrypt({"token": token} if token else {}),
        )

    return make


def write_kubeconfig(path: Path, url: str, token: str, ca_pem: str = "") -> Path:
    """A kubeconfig for the fake server, as kubectl and the client's loader read it."""
    import base64

    cluster: dict[str, Any] = {"server": url}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(
            ca_pem.encode()
        ).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": cluster}],
        "users": [{"name": "reader", "user": {"token": token}}],
        "contexts": [
            {"name": "fake", "context": {"cluster": "fake", "user": "reader"}}
        ],
        "current-context": "fake",
    }
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def list_file(path: Path, objects: dict[str, list[dict[str, Any]]]) -> Path:
    """A kubectl-style `List` export of these objects (kubectl's key order and indent)."""
    items = [obj for key in RESOURCES for obj in objects.get(key, [])]
    doc = {
        "apiVersion": "v1",
        "items": items,
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    }
    path.write_text(json.dumps(doc, indent=4))
    return path
