"""Kubernetes: what is actually running (Deployments, KServe, Seldon) and what it runs as.

Reads apps/v1 Deployments, KServe InferenceServices, Seldon Core v2 Models and Seldon Core
v1 SeldonDeployments, either from the API (the official `kubernetes` client, paged with
`limit`/`continue`) or from an uploaded `kubectl get deployments,inferenceservices,... -A -o
json` file (read as a stream, so a 50,000-object export never sits in memory at once).

Each object becomes a Deployment row (which model, which version is running, where it
answers, whether it is reachable from outside the cluster) and the identities it runs as:
its pod service account and every Secret it reads (env, envFrom, image pull secrets, model
storage credentials), bound to the deployments that use them.

Why some choices:
* apps/v1 lists are fetched raw (`_preload_content=False`) and parsed as JSON: the typed
  models cost 3-5x more (bench_k8s, 10,000 Deployments: 4.1-4.7 s typed, 0.9-1.6 s raw)
  and rename every field, while the CRDs arrive as plain dicts anyway; one shape for all.
* Model, version and identity rows are looked up and written in bulk per batch (a fixed
  number of queries per batch); identity bindings are collected as ids across batches
  and applied once, in finish(), because one service account serves many batches.
* A CRD whose API group is not installed (404) is skipped with a note, not a failure: a
  cluster without Seldon is normal.
* Deployments that KServe or Seldon created for their own resources are skipped, so an
  InferenceService is one inventory row, not two.
* The running version comes from, in order: the version label, a `models:/name/version`
  storage URI, a registry version whose artifact URI is the storage URI, the
  `app.kubernetes.io/version` label, the image tag. An alias URI (`models:/name@champion`)
  names the model but not the version: the alias may have moved since the pod loaded it.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError

from inventory import models as m
from sources import models as sm
from sources.sync.base import (
    Connector,
    FetchContext,
    Malformed,
    Record,
    Setting,
    SourceConfigError,
    SourceUnavailable,
    chunked,
    excerpt,
)

if TYPE_CHECKING:
    from sources.sync.engine import ApplyContext

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# What is read
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    key: str  # the settings value
    label: str
    kind: str
    group: str
    version: str
    plural: str
    platform: str


KINDS: tuple[Kind, ...] = (
    Kind(
        "deployments",
        "Deployments (apps/v1)",
        "Deployment",
        "apps",
        "v1",
        "deployments",
        "kubernetes",
    ),
    Kind(
        "inferenceservices",
        "KServe InferenceServices",
        "InferenceService",
        "serving.kserve.io",
        "v1beta1",
        "inferenceservices",
        "kserve",
    ),
    Kind(
        "seldon_models",
        "Seldon Core v2 Models",
        "Model",
        "mlops.seldon.io",
        "v1alpha1",
        "models",
        "seldon",
    ),
    Kind(
        "seldondeployments",
        "Seldon Core v1 SeldonDeployments",
        "SeldonDeployment",
        "machinelearning.seldon.io",
        "v1",
        "seldondeployments",
        "seldon",
    ),
)
KIND_BY_KEY = {k.key: k for k in KINDS}
KIND_BY_TYPE = {(k.group, k.kind): k for k in KINDS}

DEFAULT_MODEL_LABEL = "mlflow.org/registered-model"
DEFAULT_VERSION_LABEL = "mlflow.org/model-version"
ENV_LABELS = ("environment", "app.kubernetes.io/environment")
ENV_ALIASES = {
    "production": "production",
    "prod": "production",
    "prd": "production",
    "live": "production",
    "staging": "staging",
    "stage": "staging",
    "stg": "staging",
    "preprod": "staging",
    "development": "development",
    "dev": "development",
    "test": "development",
}
# Container env vars that carry the model's storage URI in plain Deployments.
MODEL_URI_ENV = ("MODEL_URI", "MLFLOW_MODEL_URI", "STORAGE_URI", "MODEL_STORAGE_URI")
# Older KServe InferenceServices name the framework: spec.predictor.sklearn.storageUri.
KSERVE_FRAMEWORKS = (
    "sklearn",
    "xgboost",
    "lightgbm",
    "tensorflow",
    "pytorch",
    "onnx",
    "triton",
    "pmml",
    "paddle",
    "huggingface",
)
KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")
KSERVE_STORAGE_SECRET_ANNOTATION = "serving.kserve.io/storageSecretName"
# The secret KServe reads `spec.predictor.model.storage.key` from (inferenceservice-config).
KSERVE_STORAGE_SPEC_SECRET = "storage-config"
# Deployments created by a serving platform for its own resource (one row is enough).
OWNED_BY_PLATFORM_KINDS = {
    "InferenceService",
    "InferenceGraph",
    "Revision",  # Knative, which KServe's serverless mode runs on
    "SeldonDeployment",
    "Server",
    "Pipeline",
}
OWNED_BY_PLATFORM_LABELS = (
    "serving.kserve.io/inferenceservice",
    "serving.knative.dev/revision",
    "seldon-deployment-id",
)
NOT_A_VERSION = {"latest", "production", "staging", "archived", "none", "stable"}

NOTE_GROUP_MISSING = (
    "{label} were not read: the {group} API group is not installed in the cluster."
)
NOTE_OTHER_KINDS = "{count} object(s) of other kinds in the file were ignored."
ERR_NOT_JSON = (
    "The uploaded file is not JSON. Export it with "
    "`kubectl get deployments,inferenceservices -A -o json`."
)
ERR_NOT_LIST = (
    "The uploaded file is a single {kind} object, not a List. Export it with "
    "`kubectl get deployments,inferenceservices -A -o json`."
)
ERR_NO_ITEMS = "The uploaded {kind} has no `items` array."
ERR_BAD_JSON = "The uploaded file is not valid JSON ({detail}); nothing was synced."


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    api_url: str = ""
    kubeconfig_path: str = ""
    verify_tls: bool = True
    ca_cert: str = ""
    namespaces: tuple[str, ...] = ()
    resources: tuple[str, ...] = tuple(k.key for k in KINDS)
    page_size: int = 500
    model_label: str = DEFAULT_MODEL_LABEL
    version_label: str = DEFAULT_VERSION_LABEL
    environment: str = "production"
    deployments_scope: str = "labelled"

    @classmethod
    def from_settings(cls, raw: dict[str, Any]) -> Options:
        """Stored settings through the connector's schema, defaults applied; raises
        ValidationError keyed by setting name on bad values."""
        schema = KubernetesConnector.schema
        return cls.from_typed(schema.typed(schema.validate(raw)))

    @classmethod
    def from_typed(cls, typed: Any) -> Options:
        """From the schema's TypedSettings (or the dict `Schema.typed` gives)."""
        return cls(**{name: typed[name] for name in cls.__dataclass_fields__})


BAD_API_URL = "Enter the API server's URL, e.g. https://10.0.0.1:6443."
BAD_NAMESPACE = "Not a namespace name: {names}."
BAD_LABEL_KEY = "Not a Kubernetes label key."
BAD_CA_CERT = "Paste the CA certificate in PEM form (-----BEGIN CERTIFICATE-----)."


def _api_url(value: str) -> str:
    return value.rstrip("/")


def _namespaces(names: list[str]) -> list[str]:
    bad = [n for n in names if not _DNS_LABEL.fullmatch(n)]
    if bad:
        raise ValidationError(BAD_NAMESPACE.format(names=", ".join(bad)))
    return list(dict.fromkeys(names))


def _resources(keys: list[str]) -> list[str]:
    """In the order KINDS lists them, each once."""
    return [k.key for k in KINDS if k.key in keys]


def _label_key(value: str) -> str:
    if not _LABEL_KEY.fullmatch(value):
        raise ValidationError(BAD_LABEL_KEY)
    return value


def _ca_cert(value: str) -> str:
    if value and "-----BEGIN CERTIFICATE-----" not in value:
        raise ValidationError(BAD_CA_CERT)
    return value


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)


# ---------------------------------------------------------------------------
# Parsing one object (pure functions, unit-tested on their own)
# ---------------------------------------------------------------------------
class BadObject(ValueError):
    """The object cannot be read; the message says why."""


@dataclass(slots=True)
class Parsed:
    """What one Kubernetes object says, reduced to what the inventory keeps."""

    kind: str
    namespace: str
    name: str
    uid: str
    platform: str
    endpoint: str
    exposure: str
    environment: str
    model_name: str
    model_explicit: bool  # named by a label or a models:/ URI, not guessed
    version: str  # from the version label or a models:/name/version URI
    fallback_version: str  # app.kubernetes.io/version, else the image tag
    storage_uri: str
    image: str
    service_accounts: tuple[str, ...]
    secrets: tuple[str, ...]
    traffic: tuple[tuple[str, int], ...] = ()  # KServe revisions and their percent

    @property
    def external_id(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    def identity_ids(self) -> list[str]:
        return [f"sa/{self.namespace}/{sa}" for sa in self.service_accounts] + [
            f"secret/{self.namespace}/{s}" for s in self.secrets
        ]


@dataclass(frozen=True, slots=True)
class ModelUri:
    name: str
    version: str = ""
    alias: str = ""


def parse_model_uri(uri: str) -> ModelUri | None:
    """`models:/name/3` -> (name, "3"); `models:/name@champion` -> (name, alias); else None.

    A stage (`models:/name/Production`) or `latest` names the model but not a version.
    """
    if not uri or not uri.startswith("models:/"):
        return None
    rest = uri[len("models:/") :].strip("/")
    if "@" in rest:
        name, alias = rest.rsplit("@", 1)
        return ModelUri(name.strip("/"), alias=alias) if name else None
    if "/" not in rest:
        return ModelUri(rest) if rest else None
    name, ref = rest.rsplit("/", 1)
    if not name:
        return None
    if ref.lower() in NOT_A_VERSION or not ref:
        return ModelUri(name, alias=ref)
    return ModelUri(name, version=ref)


@dataclass(frozen=True, slots=True)
class Image:
    repository: str
    tag: str
    digest: str


def parse_image(image: str) -> Image:
    """Split `registry:5000/team/app:1.2@sha256:…` into repository, tag and digest."""
    image = (image or "").strip()
    rest, _, digest = image.partition("@")
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        return Image(rest[:colon], rest[colon + 1 :], digest)
    return Image(rest, "", digest)


def endpoint_host(endpoint: str) -> str:
    if not endpoint:
        return ""
    text = endpoint if "://" in endpoint else f"//{endpoint}"
    try:
        return (urlsplit(text).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def exposure_for(endpoint: str) -> str:
    """External unless the host is cluster-internal (*.svc, *.cluster.local) or private."""
    host = endpoint_host(endpoint)
    if not host or host == "localhost" or "." not in host:
        return m.Deployment.Exposure.INTERNAL
    if host.endswith((".svc", ".cluster.local")):
        return m.Deployment.Exposure.INTERNAL
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return m.Deployment.Exposure.EXTERNAL
    if address.is_private or address.is_loopback or address.is_link_local:
        return m.Deployment.Exposure.INTERNAL
    return m.Deployment.Exposure.EXTERNAL


def environment_for(labels: dict[str, str], default: str) -> str:
    for key in ENV_LABELS:
        value = ENV_ALIASES.get(str(labels.get(key, "")).strip().lower())
        if value:
            return value
    return default


def pod_secret_refs(pod: dict[str, Any]) -> list[str]:
    """Secrets a pod spec reads: env secretKeyRef, envFrom secretRef, imagePullSecrets."""
    names: list[str] = []
    for container in _list(pod.get("containers")) + _list(pod.get("initContainers")):
        names += container_secret_refs(_dict(container))
    for ref in _list(pod.get("imagePullSecrets")):
        names.append(_str(_dict(ref).get("name")))
    return [n for n in dict.fromkeys(names) if n]


def container_secret_refs(container: dict[str, Any]) -> list[str]:
    names = []
    for env in _list(container.get("env")):
        ref = _dict(_dict(_dict(env).get("valueFrom")).get("secretKeyRef"))
        names.append(_str(ref.get("name")))
    for source in _list(container.get("envFrom")):
        names.append(_str(_dict(_dict(source).get("secretRef")).get("name")))
    return [n for n in names if n]


def container_env(container: dict[str, Any], names: Iterable[str]) -> str:
    wanted = set(names)
    for env in _list(container.get("env")):
        env = _dict(env)
        if env.get("name") in wanted and isinstance(env.get("value"), str):
            return env["value"]
    return ""


def is_platform_owned(meta: dict[str, Any]) -> bool:
    labels = _dict(meta.get("labels"))
    if any(key in labels for key in OWNED_BY_PLATFORM_LABELS):
        return True
    return any(
        _dict(ref).get("kind") in OWNED_BY_PLATFORM_KINDS
        for ref in _list(meta.get("ownerReferences"))
    )


def kind_of(obj: dict[str, Any]) -> Kind | None:
    """The resource an object (as kubectl exports it, with apiVersion and kind) is."""
    api_version = _str(obj.get("apiVersion"))
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    return KIND_BY_TYPE.get((group, _str(obj.get("kind"))))


def parse_object(obj: Any, kind: Kind, opts: Options) -> Parsed | None:
    """One object as the inventory sees it; None if it is not one to keep.

    Raises BadObject when the object cannot be read (no name, fields of the wrong type).
    """
    if not isinstance(obj, dict):
        raise BadObject(f"The {kind.kind} is not a JSON object.")
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise BadObject(f"The {kind.kind} has no metadata.")
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str) or not name:
        raise BadObject(f"The {kind.kind} has no metadata.name.")
    if not isinstance(namespace, str) or not namespace:
        raise BadObject(f"The {kind.kind} {name} has no metadata.namespace.")
    try:
        return _parse(obj, meta, kind, opts, name, namespace)
    except (AttributeError, TypeError, ValueError) as exc:
        raise BadObject(
            f"The {kind.kind} {namespace}/{name} has a field of the wrong type "
            f"({type(exc).__name__}: {exc})."
        ) from None


def _parse(
    obj: dict[str, Any],
    meta: dict[str, Any],
    kind: Kind,
    opts: Options,
    name: str,
    namespace: str,
) -> Parsed | None:
    labels = _labels(meta.get("labels"))
    annotations = _labels(meta.get("annotations"))
    spec = _dict(obj.get("spec"))
    status = _dict(obj.get("status"))
    svc_endpoint = f"{name}.{namespace}.svc"
    endpoint = svc_endpoint
    image = storage_uri = ""
    service_accounts: list[str] = []
    secrets: list[str] = []
    traffic: tuple[tuple[str, int], ...] = ()
    extra_labels: dict[str, str] = {}

    if kind.kind == "Deployment":
        if is_platform_owned(meta):
            return None
        if opts.deployments_scope == "labelled" and opts.model_label not in labels:
            return None
        template = _dict(spec.get("template"))
        extra_labels = _labels(_dict(template.get("metadata")).get("labels"))
        pod = _dict(template.get("spec"))
        containers = [_dict(c) for c in _list(pod.get("containers"))]
        image = _str(containers[0].get("image")) if containers else ""
        storage_uri = next(
            (u for c in containers if (u := container_env(c, MODEL_URI_ENV))), ""
        )
        service_accounts.append(_service_account(pod) or "default")
        secrets += pod_secret_refs(pod)

    elif kind.kind == "InferenceService":
        endpoint = (
            _str(status.get("url"))
            or _str(_dict(status.get("address")).get("url"))
            or svc_endpoint
        )
        predictor = _dict(spec.get("predictor"))
        model_spec = _dict(predictor.get("model"))
        if not model_spec:
            model_spec = next(
                (_dict(predictor[f]) for f in KSERVE_FRAMEWORKS if f in predictor), {}
            )
        containers = [_dict(c) for c in _list(predictor.get("containers"))]
        storage_uri = _str(model_spec.get("storageUri")) or next(
            (u for c in containers if (u := container_env(c, ("STORAGE_URI",)))), ""
        )
        image = _str(model_spec.get("image")) or (
            _str(containers[0].get("image")) if containers else ""
        )
        for component_name in KSERVE_COMPONENTS:
            if component_name not in spec:
                continue
            component = _dict(spec.get(component_name))
            service_accounts.append(_service_account(component) or "default")
            secrets += pod_secret_refs(component)
            for f in ("model", *KSERVE_FRAMEWORKS):
                secrets += container_secret_refs(_dict(component.get(f)))
        if _dict(model_spec.get("storage")):
            secrets.append(KSERVE_STORAGE_SPEC_SECRET)
        if annotations.get(KSERVE_STORAGE_SECRET_ANNOTATION):
            secrets.append(annotations[KSERVE_STORAGE_SECRET_ANNOTATION])
        split = _list(
            _dict(_dict(status.get("components")).get("predictor")).get("traffic")
        )
        traffic = tuple(
            (_str(t.get("revisionName")), int(t.get("percent") or 0))
            for t in map(_dict, split)
        )

    elif kind.kind == "Model":  # Seldon Core v2
        storage_uri = _str(spec.get("storageUri"))
        if spec.get("secretName"):
            secrets.append(_str(spec.get("secretName")))

    else:  # SeldonDeployment, Seldon Core v1
        predictors = [_dict(p) for p in _list(spec.get("predictors"))]
        # The predictor taking the most traffic is the one "running"; the rest are canaries.
        main = max(predictors, key=lambda p: int(p.get("traffic") or 0), default={})
        graph = _dict(main.get("graph"))
        storage_uri = _graph_model_uri(graph)
        for predictor in predictors:
            node = _dict(predictor.get("graph"))
            if node.get("serviceAccountName"):
                service_accounts.append(_str(node.get("serviceAccountName")))
            if node.get("envSecretRefName"):
                secrets.append(_str(node.get("envSecretRefName")))
            for component in map(_dict, _list(predictor.get("componentSpecs"))):
                pod = _dict(component.get("spec"))
                if _service_account(pod):
                    service_accounts.append(_service_account(pod))
                secrets += pod_secret_refs(pod)
                containers = [_dict(c) for c in _list(pod.get("containers"))]
                if predictor is main and containers and not image:
                    image = _str(containers[0].get("image"))
        if not service_accounts:
            service_accounts.append("default")

    all_labels = {**extra_labels, **labels}
    parsed_uri = parse_model_uri(storage_uri)
    model_name, explicit = all_labels.get(opts.model_label, ""), True
    if not model_name and parsed_uri:
        model_name = parsed_uri.name
    if not model_name:
        explicit = False
        model_name = all_labels.get("app.kubernetes.io/name") or name
    version = all_labels.get(opts.version_label, "")
    if not version and parsed_uri and parsed_uri.name == model_name:
        version = parsed_uri.version
    fallback = all_labels.get("app.kubernetes.io/version", "") or _image_version(image)
    return Parsed(
        kind=kind.kind,
        namespace=namespace,
        name=name,
        uid=_str(meta.get("uid")),
        platform=kind.platform,
        endpoint=endpoint,
        exposure=exposure_for(endpoint),
        environment=environment_for(all_labels, opts.environment),
        model_name=model_name.strip(),
        model_explicit=explicit,
        version=version.strip(),
        fallback_version=fallback.strip(),
        storage_uri=storage_uri.strip(),
        image=image,
        service_accounts=tuple(dict.fromkeys(service_accounts)),
        secrets=tuple(dict.fromkeys(s for s in secrets if s)),
        traffic=traffic,
    )


def _image_version(image: str) -> str:
    tag = parse_image(image).tag
    return "" if tag.lower() in NOT_A_VERSION else tag


def _graph_model_uri(graph: dict[str, Any]) -> str:
    """The first modelUri in a Seldon inference graph, root first."""
    stack = [graph]
    while stack:
        node = stack.pop(0)
        if node.get("modelUri"):
            return _str(node["modelUri"])
        stack += [_dict(c) for c in _list(node.get("children"))]
    return ""


def _service_account(pod: dict[str, Any]) -> str:
    return _str(pod.get("serviceAccountName")) or _str(pod.get("serviceAccount"))


def _dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected text, got {type(value).__name__}")


def _labels(value: Any) -> dict[str, str]:
    return {str(k): _str(v) for k, v in _dict(value).items()}


# ---------------------------------------------------------------------------
# The connector
# ---------------------------------------------------------------------------
class KubernetesConnector(Connector):
    kind = "kubernetes"
    label = "Kubernetes (Deployments, KServe, Seldon)"
    description = (
        "What runs in a cluster: Deployments, KServe InferenceServices and Seldon models, "
        "the model version each serves, and the service accounts and secrets they use."
    )
    pull = True
    upload = "optional"
    upload_json = True
    fetch_state = ("_notes",)  # what an upload's reading noted, for finish()
    upload_help = (
        "Or upload the output of `kubectl get deployments,inferenceservices,"
        "models.mlops.seldon.io,seldondeployments -A -o json` (one List document). "
        "The file is taken as the whole cluster: objects of the selected resources it "
        "does not contain are marked gone."
    )
    owns = (m.Deployment, m.NonHumanIdentity)
    revocable = ()
    settings_spec = (
        Setting(
            "api_url",
            "API server URL",
            kind="url",
            default="",
            help="e.g. https://10.0.0.1:6443. Leave empty to use the in-cluster "
            "service account, or the kubeconfig below.",
            validators=(_api_url,),
        ),
        Setting(
            "kubeconfig_path",
            "Kubeconfig path",
            default="",
            help="Used when the API server URL is empty and Runproof runs outside the "
            "cluster; empty means ~/.kube/config.",
        ),
        Setting(
            "verify_tls",
            "Verify the server's TLS certificate",
            kind="bool",
            default=True,
        ),
        Setting(
            "ca_cert",
            "CA certificate (PEM)",
            kind="textarea",
            default="",
            help="The cluster's CA, if it is not publicly trusted.",
            validators=(_ca_cert,),
        ),
        Setting(
            "namespaces",
            "Namespaces",
            many=True,
            default="",
            help="Comma-separated; empty reads all namespaces.",
            validators=(_namespaces,),
        ),
        Setting(
            "resources",
            "Resources",
            many=True,
            default=",".join(k.key for k in KINDS),
            choices=tuple((k.key, k.label) for k in KINDS),
            help="Comma-separated, any of: " + ", ".join(k.key for k in KINDS) + ".",
            validators=(_resources,),
        ),
        Setting(
            "page_size",
            "Page size",
            kind="int",
            default=500,
            min_value=1,
            max_value=10_000,
        ),
        Setting(
            "model_label",
            "Model label",
            default=DEFAULT_MODEL_LABEL,
            help="The label naming the registered model an object serves.",
            validators=(_label_key,),
        ),
        Setting(
            "version_label",
            "Version label",
            default=DEFAULT_VERSION_LABEL,
            help="The label naming the model version an object serves.",
            validators=(_label_key,),
        ),
        Setting(
            "environment",
            "Environment",
            kind="choice",
            default="production",
            choices=tuple(m.Deployment.Environment.choices),
            help="Unless an object's `environment` or `app.kubernetes.io/environment` label says otherwise.",
        ),
        Setting(
            "deployments_scope",
            "Plain Deployments",
            kind="choice",
            default="labelled",
            choices=(
                ("labelled", "Only those with the model label"),
                ("all", "All of them"),
            ),
        ),
        Setting(
            "token",
            "Bearer token",
            secret=True,
            help="A service account token allowed to list these resources.",
        ),
    )

    def __init__(self, source: sm.DataSource) -> None:
        super().__init__(source)
        # Kept across batches for finish(): ids only, bounded by the number of objects.
        self._identity_pk: dict[str, int] = {}
        self._bindings: dict[int, set[int]] = {}
        self._notes: list[tuple[str, str]] = []

    # -- fetch --------------------------------------------------------------------------
    def fetch(self, ctx: FetchContext) -> Iterator[Record | Malformed]:
        opts = Options.from_typed(ctx.options)  # SourceConfigError on bad settings
        if ctx.upload_path:
            yield from self._fetch_file(ctx, opts)
        else:
            yield from self._fetch_api(ctx, opts)

    def _emit(self, obj: Any, kind: Kind, opts: Options) -> Record | Malformed | None:
        try:
            parsed = parse_object(obj, kind, opts)
        except BadObject as exc:
            meta = obj.get("metadata") if isinstance(obj, dict) else None
            meta = meta if isinstance(meta, dict) else {}
            ext = f"{kind.kind}/{meta.get('namespace', '?')}/{meta.get('name', '?')}"
            return Malformed(ext, str(exc), excerpt(_dump(obj)))
        if parsed is None:
            return None
        return Record(parsed.external_id, parsed)

    # The API --------------------------------------------------------------------------
    def _fetch_api(
        self, ctx: FetchContext, opts: Options
    ) -> Iterator[Record | Malformed]:
        from kubernetes import client

        with (
            _ca_file(opts.ca_cert) as ca_file,
            client.ApiClient(
                _client_configuration(opts, ctx.secrets.get("token", ""), ca_file)
            ) as api,
        ):
            cfg = api.configuration
            for key in opts.resources:
                kind = KIND_BY_KEY[key]
                try:
                    for obj in self._list_all(
                        api, kind, opts, bool(ctx.secrets.get("token"))
                    ):
                        item = self._emit(obj, kind, opts)
                        if item is not None:
                            yield item
                except _GroupMissing:
                    if kind.key == "deployments":
                        raise SourceConfigError(
                            f"The server at {cfg.host} has no apps/v1 API: is the API "
                            "server URL that of a Kubernetes API server?"
                        ) from None
                    self._note(
                        kind.kind,
                        NOTE_GROUP_MISSING.format(label=kind.label, group=kind.group),
                    )

    def _list_all(
        self, api: Any, kind: Kind, opts: Options, has_token: bool
    ) -> Iterator[dict[str, Any]]:
        """Every object of one kind, page by page (`limit` + `continue`)."""
        from kubernetes import client

        selector = None
        if kind.key == "deployments" and opts.deployments_scope == "labelled":
            selector = opts.model_label  # existence: filtered by the server
        apps = client.AppsV1Api(api)
        custom = client.CustomObjectsApi(api)
        for namespace in opts.namespaces or (None,):
            token = ""
            while True:
                kwargs: dict[str, Any] = {
                    "limit": opts.page_size,
                    "_preload_content": False,
                    "_request_timeout": django_settings.SYNC_HTTP_TIMEOUT,
                }
                if token:
                    kwargs["_continue"] = token
                if selector:
                    kwargs["label_selector"] = selector
                page = _call(
                    _list_request(apps, custom, kind, namespace, kwargs),
                    kind,
                    api.configuration.host,
                    has_token,
                )
                yield from _list(page.get("items"))
                token = _str(_dict(page.get("metadata")).get("continue"))
                if not token:
                    break

    # An uploaded file -----------------------------------------------------------------
    def _fetch_file(
        self, ctx: FetchContext, opts: Options
    ) -> Iterator[Record | Malformed]:
        import ijson

        path = ctx.upload_path or ""
        offset = _check_list_document(path)
        wanted = {KIND_BY_KEY[k].kind for k in opts.resources}
        # A first streaming pass checks the whole document parses and counts what will
        # come, so a truncated or corrupt file fails before anything is written (half a
        # file must not mark the other half gone).
        total = 0
        with open(path, "rb") as f:
            f.seek(offset)
            try:
                for item in ijson.items(f, "items.item", use_float=True):
                    kind = kind_of(item) if isinstance(item, dict) else None
                    total += kind is None or kind.kind in wanted
            except ijson.JSONError as exc:
                raise SourceConfigError(
                    ERR_BAD_JSON.format(detail=_short(exc))
                ) from None
        ctx.expect(total)
        other = 0
        with open(path, "rb") as f:
            f.seek(offset)
            for index, obj in enumerate(ijson.items(f, "items.item", use_float=True)):
                kind = kind_of(obj) if isinstance(obj, dict) else None
                if kind is None:
                    if (
                        isinstance(obj, dict)
                        and obj.get("kind")
                        and obj.get("apiVersion")
                    ):
                        other += 1
                        continue
                    yield Malformed(
                        f"item {index}",
                        "The item has no recognisable apiVersion and kind.",
                        excerpt(_dump(obj)),
                    )
                    continue
                if kind.key not in opts.resources:
                    continue
                item = self._emit(obj, kind, opts)
                if item is not None:
                    yield item
        if other:
            self._note("", NOTE_OTHER_KINDS.format(count=other))

    # -- apply --------------------------------------------------------------------------
    def apply(self, batch: list[Record], ctx: ApplyContext) -> None:
        parsed: list[Parsed] = [r.payload for r in batch]
        team_id = ctx.team_id()
        by_uri = self._versions_by_uri(
            ctx, {p.storage_uri for p in parsed if p.storage_uri}
        )

        # Which model each object serves: an explicit name wins; otherwise a registry
        # version stored at the same URI names it; otherwise the guessed name.
        model_of: dict[str, int] = {}
        matched: dict[str, int] = {}  # ext -> the version stored at its URI
        to_ensure: set[str] = set()
        for p in parsed:
            hit = _pick(by_uri.get(p.storage_uri, ()), p.model_name)
            if hit and (not p.model_explicit or hit.model_name == p.model_name):
                model_of[p.external_id] = hit.model_id
                matched[p.external_id] = hit.pk
            else:
                to_ensure.add(p.model_name)
        ids = ctx.ensure_models(to_ensure, {"team_id": team_id} if team_id else None)
        for p in parsed:
            if p.external_id not in model_of and p.model_name in ids:
                model_of[p.external_id] = ids[p.model_name]

        # Which version: label or models:/ URI, then the artifact match, then tags.
        wanted: dict[str, tuple[int, str]] = {}
        for p in parsed:
            model_id = model_of.get(p.external_id)
            if not model_id:
                continue
            if p.version:
                wanted[p.external_id] = (model_id, p.version)
            elif p.external_id not in matched and p.fallback_version:
                wanted[p.external_id] = (model_id, p.fallback_version)
        versions = ctx.version_ids(wanted.values())
        # A workload serves its model's team (one cluster, many teams); the source's team
        # takes only those whose model has none.
        model_team = self._model_teams(ctx, set(model_of.values()))

        rows = []
        for p in parsed:
            model_id = model_of.get(p.external_id)
            if not model_id:
                ctx.error(
                    p.external_id, f"No model could be named for {p.external_id}."
                )
                continue
            version_pk = None
            if p.version:
                version_pk = versions.get((model_id, p.version))
            elif p.external_id in matched:
                version_pk = matched[p.external_id]
            elif p.fallback_version:
                version_pk = versions.get((model_id, p.fallback_version))
            fields = {
                "name": f"{p.namespace}/{p.name}",
                "model_id": model_id,
                "observed_version_id": version_pk,
                # What the runtime says it runs, even when the registry has no such
                # version (then observed_version stays empty and this says why).
                "observed_version_label": (p.version or p.fallback_version or "")[:100],
                "environment": p.environment,
                "endpoint": p.endpoint,
                "platform": p.platform,
                "platform_locator": f"{p.namespace}/{p.kind}/{p.name}",
                "exposure": p.exposure,
            }
            team = model_team.get(model_id) or team_id
            if team:
                fields["team_id"] = team
            rows.append((p.external_id, fields))
        deployment_pk = ctx.upsert(m.Deployment, rows)

        # Identities: each upserted once per run (seen_at then keeps them alive), and
        # bound to every deployment that uses it in finish(), once all batches are in.
        new_identities: dict[str, dict[str, Any]] = {}
        for p in parsed:
            for ext in p.identity_ids():
                if ext not in self._identity_pk and ext not in new_identities:
                    new_identities[ext] = _identity_fields(ext, team_id)
        identity_pk = ctx.upsert(m.NonHumanIdentity, new_identities.items())

        # Only now (nothing above raised) does the run's state take in this batch.
        self._identity_pk.update(identity_pk)
        for p in parsed:
            dep = deployment_pk.get(p.external_id)
            if dep is None:
                continue
            for ext in p.identity_ids():
                pk = self._identity_pk.get(ext)
                if pk is not None:
                    self._bindings.setdefault(pk, set()).add(dep)

    def _model_teams(self, ctx: ApplyContext, model_ids: set[int]) -> dict[int, int]:
        """Each model's team (models without one left out), cached for the run."""
        cache = ctx.cache.setdefault("k8s_model_team", {})
        missing = [pk for pk in model_ids if pk not in cache]
        for part in chunked(missing, 500):
            for pk in part:
                cache[pk] = None
            cache.update(
                m.AIModel.objects.filter(pk__in=part, team__isnull=False)
                .order_by()
                .values_list("pk", "team_id")
            )
        return {pk: cache[pk] for pk in model_ids if cache.get(pk)}

    def _versions_by_uri(
        self, ctx: ApplyContext, uris: set[str]
    ) -> dict[str, list[_UriHit]]:
        """Registry versions stored at these URIs (any model), cached for the run."""
        cache = ctx.cache.setdefault("k8s_version_by_uri", {})
        missing = [u for u in uris if u not in cache and not u.startswith("models:/")]
        for part in chunked(missing, 500):
            for uri in part:
                cache[uri] = []
            rows = (
                m.ModelVersion.objects.filter(
                    artifact_uri__in=part, model__gone_at__isnull=True
                )
                .order_by()
                .values_list("pk", "artifact_uri", "version", "model_id", "model__name")
            )
            for pk, uri, version, model_id, model_name in rows:
                cache[uri].append(_UriHit(pk, version, model_id, model_name))
        return {u: cache.get(u, []) for u in uris}

    def finish(self, ctx: ApplyContext) -> None:
        identity_ids = sorted(self._identity_pk.values())
        for part in chunked(identity_ids, 500):
            ctx.bind(part, {i: self._bindings.get(i, set()) for i in part})
        for kind, text in reversed(self._notes):
            ctx.changes.insert(
                0, {"action": "skipped", "kind": kind, "external_id": "", "note": text}
            )

    def _note(self, kind: str, text: str) -> None:
        log.info("kubernetes source %s: %s", self.source.pk, text)
        self._notes.append((kind, text))


@dataclass(frozen=True, slots=True)
class _UriHit:
    pk: int
    version: str
    model_id: int
    model_name: str


def _pick(hits: Iterable[_UriHit], model_name: str) -> _UriHit | None:
    """The version stored at a URI: the one of the named model, else the only one."""
    hits = list(hits)
    same = [h for h in hits if h.model_name == model_name]
    if len(same) == 1:
        return same[0]
    return hits[0] if len(hits) == 1 else None


def _identity_fields(ext: str, team_id: int | None) -> dict[str, Any]:
    prefix, namespace, name = ext.split("/", 2)
    fields: dict[str, Any] = {
        "name": f"{namespace}/{name}",
        "kind": (
            m.NonHumanIdentity.Kind.SERVICE_ACCOUNT
            if prefix == "sa"
            else m.NonHumanIdentity.Kind.API_KEY
        ),
        "provider": "kubernetes",
        "status": m.NonHumanIdentity.Status.ACTIVE,
    }
    if team_id:
        fields["team_id"] = team_id
    return fields


# ---------------------------------------------------------------------------
# The client and its errors
# ---------------------------------------------------------------------------
class _GroupMissing(Exception):
    """The API group or resource is not served (HTTP 404)."""


@contextmanager
def _ca_file(pem: str) -> Iterator[str]:
    """The pasted CA certificate as a file for the client (every client version takes a
    path), removed when the sync's requests are done; "" when there is none."""
    if not pem:
        yield ""
        return
    with tempfile.NamedTemporaryFile("w", suffix=".pem", prefix="runproof-ca-") as f:
        f.write(pem)
        f.flush()
        yield f.name


def _client_configuration(opts: Options, token: str, ca_file: str) -> Any:
    """A client Configuration: the URL and token from the settings, else in-cluster or
    kubeconfig. `ca_file` holds the pasted CA certificate, if any."""
    import urllib3
    from kubernetes import client
    from kubernetes import config as kconfig

    cfg = client.Configuration()
    if opts.api_url:
        cfg.host = opts.api_url
    else:
        try:
            if opts.kubeconfig_path:
                kconfig.load_kube_config(
                    config_file=opts.kubeconfig_path,
                    client_configuration=cfg,
                    persist_config=False,
                )
            else:
                try:
                    kconfig.load_incluster_config(client_configuration=cfg)
                except kconfig.ConfigException:
                    kconfig.load_kube_config(
                        client_configuration=cfg, persist_config=False
                    )
        # The loaders raise many types for one cause: no usable configuration.
        except Exception as exc:
            where = opts.kubeconfig_path or "~/.kube/config"
            raise SourceConfigError(
                "No API server URL is set, Runproof is not running in a cluster, and the "
                f"kubeconfig ({where}) could not be used: {type(exc).__name__}: "
                f"{_short(exc)}"
            ) from None
    if token:
        cfg.api_key = {"authorization": token}
        cfg.api_key_prefix = {"authorization": "Bearer"}
    if not opts.verify_tls:
        cfg.verify_ssl = False
    if ca_file:
        cfg.ssl_ca_cert = ca_file
    # Two quick retries of a dropped connection; anything longer is the engine's backoff.
    cfg.retries = urllib3.Retry(total=2, backoff_factor=0.2, status=0, redirect=0)
    return cfg


def _list_request(
    apps: Any, custom: Any, kind: Kind, namespace: str | None, kwargs: dict[str, Any]
) -> Callable[[], Any]:
    """The client call that lists one page of `kind`, cluster-wide or in one namespace."""
    if kind.key == "deployments":
        if namespace is None:
            return partial(apps.list_deployment_for_all_namespaces, **kwargs)
        return partial(apps.list_namespaced_deployment, namespace, **kwargs)
    if namespace is None:
        return partial(
            custom.list_cluster_custom_object,
            kind.group,
            kind.version,
            kind.plural,
            **kwargs,
        )
    return partial(
        custom.list_namespaced_custom_object,
        kind.group,
        kind.version,
        namespace,
        kind.plural,
        **kwargs,
    )


def _call(
    call: Callable[[], Any], kind: Kind, host: str, has_token: bool
) -> dict[str, Any]:
    """One list request, its errors turned into what the engine understands."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    what = f"{kind.kind} objects ({kind.group}/{kind.version})"
    try:
        with warnings.catch_warnings():
            # Verification was turned off on purpose; one warning per page helps no one.
            warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
            response = call()
    except ApiException as exc:
        status = exc.status or 0
        message = _status_message(exc.body)
        if status == 401:
            hint = "check the token" if has_token else "no token is set"
            raise SourceConfigError(
                f"The Kubernetes API at {host} refused the credentials (HTTP 401) when "
                f"listing {what}: {hint}."
            ) from None
        if status == 403:
            raise SourceConfigError(
                f"The token may not list {what} (HTTP 403): grant it `list` on "
                f"{kind.plural}.{kind.group}. The server said: {message}"
            ) from None
        if status == 404:
            raise _GroupMissing from None
        if status == 410:
            raise SourceUnavailable(
                f"The list of {what} expired while it was being read (HTTP 410); the "
                "sync will start again."
            ) from None
        if status == 0:  # the client reports TLS failures as status 0
            raise SourceConfigError(_tls_message(host, exc.reason)) from None
        if status >= 500 or status == 429:
            raise SourceUnavailable(
                f"The Kubernetes API at {host} answered HTTP {status} when listing "
                f"{what}: {message}"
            ) from None
        raise SourceConfigError(
            f"The Kubernetes API at {host} answered HTTP {status} when listing {what}: "
            f"{message}"
        ) from None
    except urllib3.exceptions.MaxRetryError as exc:
        if isinstance(exc.reason, urllib3.exceptions.SSLError):
            raise SourceConfigError(_tls_message(host, exc.reason)) from None
        raise SourceUnavailable(
            f"Cannot reach the Kubernetes API at {host}: {_short(exc.reason)}"
        ) from None
    except urllib3.exceptions.SSLError as exc:
        raise SourceConfigError(_tls_message(host, exc)) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise SourceUnavailable(
            f"Cannot reach the Kubernetes API at {host}: {_short(exc)}"
        ) from None
    try:
        body = response.data
        page = json.loads(body)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise SourceUnavailable(
            f"The Kubernetes API at {host} stopped answering: {_short(exc)}"
        ) from None
    except ValueError:
        raise SourceConfigError(
            f"The server at {host} did not answer JSON when listing {what}: is the API "
            "server URL right?"
        ) from None
    finally:
        response.release_conn()
    if not isinstance(page, dict) or not isinstance(page.get("items", []), list):
        raise SourceConfigError(
            f"The server at {host} did not answer a list when asked for {what}."
        )
    return page


def _status_message(body: Any) -> str:
    try:
        return str(json.loads(body).get("message", ""))[:300]
    except (TypeError, ValueError, AttributeError):
        return str(body or "")[:300]


def _tls_message(host: str, reason: Any) -> str:
    return (
        f"The TLS connection to {host} failed ({_short(reason)}): paste the cluster's CA "
        "certificate, or turn off certificate verification."
    )


def _short(exc: Any) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]


def _dump(obj: Any) -> str:
    try:
        return json.dumps(obj, default=str)[:1000]
    except (TypeError, ValueError):
        return repr(obj)[:1000]


def _check_list_document(path: str) -> int:
    """Check the file is one JSON object with an `items` array; return where JSON starts.

    Reads only up to the `items` array (kubectl writes it second), so this is quick.
    """
    import ijson

    with open(path, "rb") as f:
        head = f.read(4)
        offset = 3 if head.startswith(b"\xef\xbb\xbf") else 0
        f.seek(offset)
        first = f.read(64).lstrip()
        if not first.startswith(b"{"):
            raise SourceConfigError(ERR_NOT_JSON)
        f.seek(offset)
        top_kind = ""
        try:
            for prefix, event, value in ijson.parse(f):
                if prefix == "items" and event == "start_array":
                    return offset
                if prefix == "kind" and event == "string":
                    top_kind = value
        except ijson.JSONError as exc:
            raise SourceConfigError(ERR_BAD_JSON.format(detail=_short(exc))) from None
    if top_kind.endswith("List"):
        raise SourceConfigError(ERR_NO_ITEMS.format(kind=top_kind))
    if top_kind:
        raise SourceConfigError(ERR_NOT_LIST.format(kind=top_kind))
    raise SourceConfigError(ERR_NOT_JSON)
