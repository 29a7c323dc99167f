"""A small fake Kubernetes API server: recorded list JSON served with `limit`/`continue` paging.

No kube-apiserver can run on the build machines (kind, k3d and friends download binaries),
so the Kubernetes connector's tests and its benchmark talk to this instead. It serves what
the official `kubernetes` client and `kubectl get ... -o json` actually ask for: the
discovery documents, and the cluster-wide and namespaced list endpoints of apps/v1
Deployments, KServe InferenceServices and Seldon Models / SeldonDeployments. Like the real
server it pages with an opaque `continue` token, filters by `labelSelector`, leaves `kind`
and `apiVersion` out of built-in list items, and answers errors with a `Status` document.

It lives under `inventory/` rather than `tests/` because the benchmark (`bench_k8s`) runs it
in production installs, where `tests` is not importable. Run it on its own with
`python -m devtools.k8s_fake --synthetic 50000` (it prints `READY <port>` when listening).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import json
import ssl
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Resource:
    key: str
    group: str
    version: str
    plural: str
    kind: str
    singular: str
    short_names: tuple[str, ...] = ()
    # The real apiserver leaves kind/apiVersion out of built-in list items (CRDs keep them).
    builtin: bool = False

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}"


RESOURCES: dict[str, Resource] = {
    r.key: r
    for r in (
        Resource(
            "deployments",
            "apps",
            "v1",
            "deployments",
            "Deployment",
            "deployment",
            ("deploy",),
            builtin=True,
        ),
        Resource(
            "inferenceservices",
            "serving.kserve.io",
            "v1beta1",
            "inferenceservices",
            "InferenceService",
            "inferenceservice",
            ("isvc",),
        ),
        Resource(
            "seldon_models",
            "mlops.seldon.io",
            "v1alpha1",
            "models",
            "Model",
            "model",
            ("mlm",),
        ),
        Resource(
            "seldondeployments",
            "machinelearning.seldon.io",
            "v1",
            "seldondeployments",
            "SeldonDeployment",
            "seldondeployment",
            ("sdep",),
        ),
    )
}


@dataclass
class FakeCluster:
    """What the fake server serves, and how it misbehaves when a test asks it to.

    `objects` maps a resource key (see RESOURCES) to a sequence of full objects; a test may
    replace or edit the lists between requests. `token`: the bearer token required (None:
    no authentication, for kubectl over plain http, which never sends a token there).
    `fail_status`: answer every list request with this HTTP status. `missing_groups`: API
    groups that are not installed (404 and absent from discovery). `forbidden`: resource
    keys whose lists answer 403.
    """

    objects: dict[str, Sequence[dict[str, Any]]] = field(default_factory=dict)
    token: str | None = None
    fail_status: int | None = None
    missing_groups: set[str] = field(default_factory=set)
    forbidden: set[str] = field(default_factory=set)
    resource_version: str = "184467"
    requests: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=10_000)
    )

    def list_requests(self, key: str) -> list[dict[str, Any]]:
        """The list requests received for one resource, in order."""
        return [r for r in self.requests if r.get("resource") == key]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as urllib3 and kubectl expect
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: tests and the benchmark print their own results."""

    def do_GET(self) -> None:
        cluster = self.server.cluster
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        entry: dict[str, Any] = {"path": url.path, "query": query}
        cluster.requests.append(entry)
        expected = f"Bearer {cluster.token}"
        if cluster.token is not None and self.headers.get("Authorization") != expected:
            entry["status"] = 401
            self._status(401, "Unauthorized", "Unauthorized")
            return
        try:
            status, body = self._route(cluster, parts, query, entry)
        except _Problem as exc:
            entry["status"] = exc.code
            self._status(exc.code, exc.reason, exc.message)
            return
        entry["status"] = status
        self._json(status, body)

    # -- routing --------------------------------------------------------------------
    def _route(
        self,
        cluster: FakeCluster,
        parts: list[str],
        query: dict[str, str],
        entry: dict[str, Any],
    ) -> tuple[int, Any]:
        groups = [
            r for r in RESOURCES.values() if r.group not in cluster.missing_groups
        ]
        if parts == ["version"]:
            return 200, {
                "major": "1",
                "minor": "32",
                "gitVersion": "v1.32.0-runproof-fake",
                "platform": "linux/amd64",
            }
        if parts == ["api"]:
            host, port = self.server.server_address[:2]
            return 200, {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{host}:{port}"}
                ],
            }
        if parts == ["api", "v1"]:
            return 200, {
                "kind": "APIResourceList",
                "groupVersion": "v1",
                "resources": [
                    {
                        "name": "namespaces",
                        "singularName": "namespace",
                        "namespaced": False,
                        "kind": "Namespace",
                        "verbs": ["get", "list", "watch"],
                        "shortNames": ["ns"],
                    }
                ],
            }
        if parts == ["apis"]:
            return 200, {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [_group_doc(r) for r in groups],
            }
        if len(parts) == 2 and parts[0] == "apis":
            return 200, _group_doc(self._resource_for_group(groups, parts[1]))
        if len(parts) == 3 and parts[0] == "apis":
            res = self._resource_for_group(groups, parts[1], parts[2])
            return 200, {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": res.group_version,
                "resources": [
                    {
                        "name": res.plural,
                        "singularName": res.singular,
                        "namespaced": True,
                        "kind": res.kind,
                        "verbs": ["get", "list", "watch"],
                        "shortNames": list(res.short_names),
                    }
                ],
            }
        # /apis/{group}/{version}/{plural} or .../namespaces/{ns}/{plural}
        if parts[:1] == ["apis"] and len(parts) in (4, 6):
            namespace = None
            if len(parts) == 6:
                if parts[3] != "namespaces":
                    raise _Problem(404, "NotFound", _NOT_FOUND)
                namespace = parts[4]
            res = self._resource_for_group(groups, parts[1], parts[2], parts[-1])
            entry["resource"] = res.key
            entry["namespace"] = namespace
            if cluster.fail_status:
                raise _Problem(
                    cluster.fail_status,
                    "InternalError",
                    "etcdserver: request timed out",
                )
            if res.key in cluster.forbidden:
                who = "system:serviceaccount:runproof:reader"
                where = (
                    f'in the namespace "{namespace}"'
                    if namespace
                    else "at the cluster scope"
                )
                raise _Problem(
                    403,
                    "Forbidden",
                    f'{res.plural}.{res.group} is forbidden: User "{who}" cannot list '
                    f'resource "{res.plural}" in API group "{res.group}" {where}',
                )
            return 200, _list_page(
                cluster, res, cluster.objects.get(res.key, ()), namespace, query
            )
        raise _Problem(404, "NotFound", _NOT_FOUND)

    @staticmethod
    def _resource_for_group(
        groups: list[Resource],
        group: str,
        version: str | None = None,
        plural: str | None = None,
    ) -> Resource:
        for res in groups:
            if (
                res.group == group
                and version in (None, res.version)
                and plural in (None, res.plural)
            ):
                return res
        raise _Problem(404, "NotFound", _NOT_FOUND)

    # -- answers ----------------------------------------------------------------------
    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code: int, reason: str, message: str) -> None:
        self._json(
            code,
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": reason,
                "code": code,
            },
        )


_NOT_FOUND = "the server could not find the requested resource"


class _Problem(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def _group_doc(res: Resource) -> dict[str, Any]:
    gv = {"groupVersion": res.group_version, "version": res.version}
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": res.group,
        "versions": [gv],
        "preferredVersion": gv,
    }


def _selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """`key`, `!key`, `key=value`, `key==value` and `key!=value`, comma-separated (AND)."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _encode_token(res: Resource, offset: int, query: dict[str, str]) -> str:
    blob = {
        "r": res.key,
        "o": offset,
        "q": query.get("labelSelector", ""),
        "n": "",
    }
    return base64.urlsafe_b64encode(json.dumps(blob).encode()).decode()


def _decode_token(res: Resource, token: str, query: dict[str, str]) -> int:
    try:
        blob = json.loads(base64.urlsafe_b64decode(token.encode()))
        if blob["r"] != res.key or blob["q"] != query.get("labelSelector", ""):
            raise ValueError("token from another list")
        return int(blob["o"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise _Problem(
            400, "BadRequest", f"continue key is not valid: {type(exc).__name__}"
        ) from None


def _list_page(
    cluster: FakeCluster,
    res: Resource,
    objects: Sequence[dict[str, Any]],
    namespace: str | None,
    query: dict[str, str],
) -> dict[str, Any]:
    limit = int(query.get("limit") or 0)
    selector = query.get("labelSelector", "")
    start = _decode_token(res, query["continue"], query) if query.get("continue") else 0
    items: list[dict[str, Any]] = []
    index = start
    total = len(objects)
    while index < total and (not limit or len(items) < limit):
        obj = objects[index]
        index += 1
        meta = obj.get("metadata") or {}
        if namespace is not None and meta.get("namespace") != namespace:
            continue
        if selector and not _selector_matches(selector, meta.get("labels") or {}):
            continue
        if res.builtin:
            obj = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
        items.append(obj)
    metadata: dict[str, Any] = {"resourceVersion": cluster.resource_version}
    if index < total:
        metadata["continue"] = _encode_token(res, index, query)
        if not selector and namespace is None:
            metadata["remainingItemCount"] = total - index
    return {
        "apiVersion": res.group_version,
        "kind": f"{res.kind}List",
        "metadata": metadata,
        "items": items,
    }


# ---------------------------------------------------------------------------
# Running it
# ---------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    cluster: FakeCluster


@dataclass
class RunningServer:
    """A started fake server: its URL, the cluster it serves, and how to stop it."""

    url: str
    cluster: FakeCluster
    ca_pem: str = ""
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


def serve(cluster: FakeCluster, *, tls: bool = False, port: int = 0) -> RunningServer:
    """Start the fake server on 127.0.0.1 (a free port by default) in a daemon thread."""
    server = _Server(("127.0.0.1", port), _Handler)
    server.cluster = cluster
    ca_pem = ""
    scheme = "http"
    if tls:
        cert_pem, key_pem = self_signed_certificate()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with tempfile.NamedTemporaryFile("w", suffix=".pem") as f:
            f.write(cert_pem + key_pem)
            f.flush()
            context.load_cert_chain(f.name)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        ca_pem, scheme = cert_pem, "https"
    thread = threading.Thread(
        target=server.serve_forever,
        name="k8s-fake",
        daemon=True,
        kwargs={"poll_interval": 0.05},
    )
    thread.start()
    url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    return RunningServer(url, cluster, ca_pem, server, thread)


def self_signed_certificate() -> tuple[str, str]:
    """A throwaway certificate for 127.0.0.1 (PEM cert, PEM key): the CA a test trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "runproof-fake-apiserver")]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )


# ---------------------------------------------------------------------------
# Synthetic clusters, for the benchmark: objects made on demand, never all held at once
# ---------------------------------------------------------------------------
class LazyObjects(Sequence[dict[str, Any]]):
    """A sequence of `count` objects where object i is `make(i)`, built when asked for."""

    def __init__(self, count: int, make: Callable[[int], dict[str, Any]]) -> None:
        self.count, self.make = count, make

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self.make(i) for i in range(*index.indices(self.count))]
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(index)
        return self.make(index)


# The share of each resource in a synthetic cluster (sums to 100).
SYNTHETIC_MIX = (
    ("deployments", 60),
    ("inferenceservices", 25),
    ("seldon_models", 10),
    ("seldondeployments", 5),
)
# When the synthetic workloads were created: about 13 months before the server started,
# the same for every object it serves (a fixed date would age with the calendar).
SYNTHETIC_CREATED = (
    dt.datetime.now(dt.UTC).replace(hour=9, minute=14, second=27, microsecond=0)
    - dt.timedelta(days=394)
).strftime("%Y-%m-%dT%H:%M:%SZ")
MODEL_LABEL = "mlflow.org/registered-model"
VERSION_LABEL = "mlflow.org/model-version"


@dataclass(frozen=True)
class SyntheticShape:
    objects: int = 50_000
    namespaces: int = 500
    service_accounts: int = 2_000
    secrets: int = 2_000
    models: int = 1_000
    versions_per_model: int = 5

    def counts(self) -> dict[str, int]:
        out, left = {}, self.objects
        for key, share in SYNTHETIC_MIX[:-1]:
            out[key] = self.objects * share // 100
            left -= out[key]
        out[SYNTHETIC_MIX[-1][0]] = left
        return out


def _uid(key: str, i: int) -> str:
    h = hashlib.md5(f"{key}:{i}".encode(), usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def synthetic_object(shape: SyntheticShape, key: str, i: int) -> dict[str, Any]:
    """Object i of a resource in a synthetic cluster: realistic fields, deterministic."""
    per_ns_sa = max(1, shape.service_accounts // shape.namespaces)
    per_ns_secret = max(1, shape.secrets // shape.namespaces)
    ns_index = (i * 7 + len(key)) % shape.namespaces
    ns = f"team-{ns_index:03d}"
    sa = f"model-runner-{i % per_ns_sa}"
    secret = f"model-store-creds-{(i // 3) % per_ns_secret}"
    model_no = (i * 13 + len(key)) % shape.models
    model = f"model-{model_no:04d}"
    version = str(1 + (i % shape.versions_per_model))
    created = SYNTHETIC_CREATED
    labels = {
        "app.kubernetes.io/name": model,
        "app.kubernetes.io/part-of": "scoring",
        MODEL_LABEL: model,
        VERSION_LABEL: version,
    }
    res = RESOURCES[key]
    base: dict[str, Any] = {
        "apiVersion": res.group_version,
        "kind": res.kind,
        "metadata": {
            "name": f"{model}-{key[:4]}-{i}",
            "namespace": ns,
            "uid": _uid(key, i),
            "generation": 1 + i % 4,
            "resourceVersion": str(100000 + i),
            "creationTimestamp": created,
            "labels": labels,
        },
    }
    image = f"registry.example.com/ml/{model}:{version}.0.{i % 10}"
    env = [
        {"name": "MODEL_URI", "value": f"models:/{model}/{version}"},
        {
            "name": "AWS_SECRET_ACCESS_KEY",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": "secret"}},
        },
    ]
    if key == "deployments":
        if i % 10 == 9:  # some plain deployments carry no model label
            del labels[MODEL_LABEL], labels[VERSION_LABEL]
        base["spec"] = {
            "replicas": 2,
            "selector": {"matchLabels": {"app": base["metadata"]["name"]}},
            "template": {
                "metadata": {"labels": {"app": base["metadata"]["name"]}},
                "spec": {
                    "serviceAccountName": sa,
                    "containers": [
                        {
                            "name": "server",
                            "image": image,
                            "env": env,
                            "ports": [{"containerPort": 8080}],
                        }
                    ],
                    "imagePullSecrets": [{"name": "registry-pull"}],
                },
            },
        }
        base["status"] = {
            "replicas": 2,
            "readyReplicas": 2,
            "availableReplicas": 2,
            "observedGeneration": base["metadata"]["generation"],
        }
    elif key == "inferenceservices":
        base["metadata"]["annotations"] = {
            "serving.kserve.io/deploymentMode": "Serverless",
            "serving.kserve.io/storageSecretName": secret,
        }
        name = base["metadata"]["name"]
        base["spec"] = {
            "predictor": {
                "serviceAccountName": sa,
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "protocolVersion": "v2",
                    "storageUri": f"s3://models/{model}/{version}",
                },
            }
        }
        base["status"] = {
            "url": f"https://{name}-{ns}.ml.example.com"
            if i % 4 == 0
            else f"http://{name}.{ns}.svc.cluster.local",
            "address": {"url": f"http://{name}-predictor.{ns}.svc.cluster.local"},
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    elif key == "seldon_models":
        base["spec"] = {
            "storageUri": f"gs://seldon-models/{model}/{version}",
            "requirements": ["sklearn"],
            "memory": "100Ki",
            "secretName": secret,
        }
        base["status"] = {
            "replicas": 1,
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    else:
        base["spec"] = {
            "predictors": [
                {
                    "name": "default",
                    "replicas": 1,
                    "graph": {
                        "name": "classifier",
                        "implementation": "SKLEARN_SERVER",
                        "modelUri": f"models:/{model}/{version}",
                        "envSecretRefName": secret,
                    },
                    "componentSpecs": [
                        {
                            "spec": {
                                "serviceAccountName": sa,
                                "containers": [{"name": "classifier", "image": image}],
                            }
                        }
                    ],
                }
            ]
        }
        base["status"] = {"state": "Available"}
    return base


def synthetic_cluster(shape: SyntheticShape, token: str | None = None) -> FakeCluster:
    return FakeCluster(
        objects={
            key: LazyObjects(n, lambda i, key=key: synthetic_object(shape, key, i))
            for key, n in shape.counts().items()
        },
        token=token,
    )


def iter_synthetic(
    shape: SyntheticShape, *, with_type: bool = True
) -> Iterator[dict[str, Any]]:
    """Every object of a synthetic cluster in list order (for writing an upload file)."""
    for key, n in shape.counts().items():
        for i in range(n):
            obj = synthetic_object(shape, key, i)
            if not with_type:
                obj.pop("kind", None)
                obj.pop("apiVersion", None)
            yield obj


def write_list_file(path: str, objects: Iterator[dict[str, Any]]) -> int:
    """Write objects as one kubectl-style `List` document, streamed; return how many."""
    count = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"apiVersion": "v1", "items": [')
        for obj in objects:
            f.write(",\n" if count else "\n")
            f.write(json.dumps(obj))
            count += 1
        f.write('\n], "kind": "List", "metadata": {"resourceVersion": ""}}\n')
    return count


def cluster_from_list(
    document: dict[str, Any], token: str | None = None
) -> FakeCluster:
    """A cluster serving the items of one kubectl `List` document (what `kubectl get
    ... -A -o json` prints), each under the resource its kind and API group name.
    Items of kinds the server does not serve are refused, not dropped silently."""
    by_kind = {(r.group, r.kind): r.key for r in RESOURCES.values()}
    objects: dict[str, list[dict[str, Any]]] = {key: [] for key in RESOURCES}
    for item in document.get("items") or []:
        group = str(item.get("apiVersion", "")).rpartition("/")[0]
        key = by_kind.get((group, item.get("kind")))
        if key is None:
            raise ValueError(
                f"cannot serve {item.get('apiVersion')!r} {item.get('kind')!r}"
            )
        objects[key].append(item)
    return FakeCluster(objects=dict(objects), token=token)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=None)
    parser.add_argument("--synthetic", type=int, default=0, help="objects to serve")
    parser.add_argument(
        "--from-file",
        default="",
        help="serve the items of this kubectl List document instead of synthetic ones",
    )
    parser.add_argument("--namespaces", type=int, default=SyntheticShape.namespaces)
    parser.add_argument(
        "--service-accounts", type=int, default=SyntheticShape.service_accounts
    )
    parser.add_argument("--secrets", type=int, default=SyntheticShape.secrets)
    parser.add_argument("--models", type=int, default=SyntheticShape.models)
    args = parser.parse_args(argv)
    shape = SyntheticShape(
        objects=args.synthetic,
        namespaces=args.namespaces,
        service_accounts=args.service_accounts,
        secrets=args.secrets,
        models=args.models,
    )
    if args.from_file:
        with open(args.from_file, encoding="utf-8") as f:
            cluster = cluster_from_list(json.load(f), token=args.token)
    else:
        cluster = synthetic_cluster(shape, token=args.token)
    running = serve(cluster, port=args.port)
    sys.stdout.write(f"READY {running.url.rsplit(':', 1)[1]}\n")
    sys.stdout.flush()
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        running.stop()
        sys.exit(0)


if __name__ == "__main__":
    main()
