"""The Kubernetes connector's mapping rules, on single objects (no server, no database)."""

from __future__ import annotations

import copy
import json

import pytest

from sources.connectors.kubernetes import (
    KIND_BY_KEY,
    BadObject,
    ModelUri,
    Options,
    exposure_for,
    kind_of,
    parse_image,
    parse_model_uri,
    parse_object,
    pod_secret_refs,
)
from tests.connectors.fake_apiserver import FIXTURES

OPTS = Options()


def fixture(key: str, index: int = 0) -> dict:
    return copy.deepcopy(
        json.loads((FIXTURES / f"{key}.json").read_text())["items"][index]
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/fraud-scorer/3", ModelUri("fraud-scorer", version="3")),
        ("models:/fraud-scorer@champion", ModelUri("fraud-scorer", alias="champion")),
        (
            "models:/fraud-scorer/Production",
            ModelUri("fraud-scorer", alias="Production"),
        ),
        ("models:/fraud-scorer/latest", ModelUri("fraud-scorer", alias="latest")),
        ("models:/fraud-scorer", ModelUri("fraud-scorer")),
        (
            "models:/main.ml.fraud_scorer/12",
            ModelUri("main.ml.fraud_scorer", version="12"),
        ),
        ("models:/", None),
        ("s3://models/fraud/3", None),
        ("", None),
    ],
)
def test_model_uris(uri, expected):
    assert parse_model_uri(uri) == expected


@pytest.mark.parametrize(
    ("image", "repository", "tag", "digest"),
    [
        ("nginx", "nginx", "", ""),
        ("nginx:1.27-alpine", "nginx", "1.27-alpine", ""),
        (
            "registry.internal:5000/recsys/ranker:7.2",
            "registry.internal:5000/recsys/ranker",
            "7.2",
            "",
        ),
        (
            "registry.internal:5000/recsys/ranker",
            "registry.internal:5000/recsys/ranker",
            "",
            "",
        ),
        (
            "ghcr.io/acme/fraud:3.0.1@sha256:9b2a",
            "ghcr.io/acme/fraud",
            "3.0.1",
            "sha256:9b2a",
        ),
        ("ghcr.io/acme/fraud@sha256:9b2a", "ghcr.io/acme/fraud", "", "sha256:9b2a"),
    ],
)
def test_images(image, repository, tag, digest):
    parsed = parse_image(image)
    assert (parsed.repository, parsed.tag, parsed.digest) == (repository, tag, digest)


@pytest.mark.parametrize(
    ("endpoint", "exposure"),
    [
        ("fraud-scorer.ml-serving.svc", "internal"),
        ("http://churn.ml-serving.svc.cluster.local/v1/models/churn", "internal"),
        ("http://churn-predictor.ml.svc.cluster.local.:8080", "internal"),
        ("https://churn.ml-serving.example.com", "external"),
        ("http://10.0.12.7:8080", "internal"),
        ("http://192.168.1.20", "internal"),
        ("http://[fd00::1]:80/", "internal"),
        ("http://127.0.0.1:8080", "internal"),
        ("http://34.120.8.9", "external"),
        ("http://localhost:8080", "internal"),
        ("http://fraud-scorer", "internal"),
        ("", "internal"),
    ],
)
def test_exposure_rule(endpoint, exposure):
    assert exposure_for(endpoint) == exposure


def test_secret_refs_from_env_envfrom_init_containers_and_pull_secrets():
    pod = {
        "containers": [
            {
                "env": [
                    {"name": "A", "value": "x"},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "db"}}},
                    {"name": "C", "valueFrom": {"configMapKeyRef": {"name": "cm"}}},
                ],
                "envFrom": [
                    {"secretRef": {"name": "keys"}},
                    {"configMapRef": {"name": "cm"}},
                ],
            }
        ],
        "initContainers": [{"envFrom": [{"secretRef": {"name": "store"}}]}],
        "imagePullSecrets": [{"name": "pull"}, {"name": "db"}],
    }
    assert pod_secret_refs(pod) == ["db", "keys", "store", "pull"]


def test_deployment_with_labels():
    p = parse_object(fixture("deployments", 0), KIND_BY_KEY["deployments"], OPTS)
    assert p is not None
    assert (p.external_id, p.model_name, p.model_explicit, p.version) == (
        "Deployment/ml-serving/fraud-scorer",
        "fraud-scorer",
        True,
        "3",
    )
    assert p.fallback_version == "3.0.1", "app.kubernetes.io/version before the tag"
    assert p.image.endswith(
        "@sha256:9b2a6f4c1d0e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a"
    )
    assert p.storage_uri == "models:/fraud-scorer/3"
    assert p.uid == "5f0c2f9e-3a51-4a8e-9a55-0b7d1b0f8e11"
    assert p.service_accounts == ("fraud-scorer-sa",)
    assert p.secrets == ("fraud-db", "fraud-api-keys", "ghcr-pull")


def test_version_from_a_models_uri_when_no_label():
    obj = fixture("deployments", 0)
    del obj["metadata"]["labels"]["mlflow.org/model-version"]
    p = parse_object(obj, KIND_BY_KEY["deployments"], OPTS)
    assert p is not None and p.version == "3"
    obj["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = (
        "models:/other/9"
    )
    p = parse_object(obj, KIND_BY_KEY["deployments"], OPTS)
    assert p is not None and p.version == "", (
        "a URI of another model says nothing of ours"
    )


def test_model_name_order_label_uri_app_name_object_name():
    kind = KIND_BY_KEY["deployments"]
    all_deps = Options(deployments_scope="all")
    obj = fixture("deployments", 0)
    labels = obj["metadata"]["labels"]
    labels["mlflow.org/registered-model"] = "from-label"
    assert parse_object(obj, kind, all_deps).model_name == "from-label"
    del labels["mlflow.org/registered-model"]
    assert (
        parse_object(obj, kind, all_deps).model_name == "fraud-scorer"
    )  # models:/ URI
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = []
    labels["app.kubernetes.io/name"] = "app-name"
    p = parse_object(obj, kind, all_deps)
    assert (p.model_name, p.model_explicit) == ("app-name", False)
    del labels["app.kubernetes.io/name"]
    obj["spec"]["template"]["metadata"]["labels"] = {}
    assert parse_object(obj, kind, all_deps).model_name == "fraud-scorer"  # object name


def test_unlabelled_and_platform_owned_deployments_are_not_kept():
    kind = KIND_BY_KEY["deployments"]
    assert parse_object(fixture("deployments", 3), kind, OPTS) is None
    assert parse_object(
        fixture("deployments", 3), kind, Options(deployments_scope="all")
    )
    owned = fixture("deployments", 4)
    assert parse_object(owned, kind, Options(deployments_scope="all")) is None
    owned["metadata"]["labels"] = {"mlflow.org/registered-model": "x"}
    assert parse_object(owned, kind, OPTS) is None, "the ownerReference alone is enough"


def test_custom_label_keys():
    obj = fixture("deployments", 2)
    obj["metadata"]["labels"] = {"ml/model": "ranker", "ml/version": "4"}
    opts = Options(model_label="ml/model", version_label="ml/version")
    p = parse_object(obj, KIND_BY_KEY["deployments"], opts)
    assert (p.model_name, p.version) == ("ranker", "4")


def test_kserve_with_canary_traffic_and_storage_secrets():
    p = parse_object(
        fixture("inferenceservices", 0), KIND_BY_KEY["inferenceservices"], OPTS
    )
    assert (p.platform, p.storage_uri, p.model_explicit) == (
        "kserve",
        "s3://models/churn/5",
        False,
    )
    assert p.model_name == "churn-predictor"
    assert (p.endpoint, p.exposure) == (
        "https://churn-predictor.ml-serving.example.com",
        "external",
    )
    assert p.traffic == (
        ("churn-predictor-predictor-00002", 10),
        ("churn-predictor-predictor-00001", 90),
    ), "a canary split: two revisions live"
    assert p.secrets == ("minio-creds",)
    llm = parse_object(
        fixture("inferenceservices", 1), KIND_BY_KEY["inferenceservices"], OPTS
    )
    assert llm.service_accounts == ("llm-sa", "default"), "the transformer has none"
    assert set(llm.secrets) == {"ghcr-pull", "hf-token", "guard-key", "storage-config"}
    assert llm.environment == "development"


def test_kserve_old_style_framework_spec_and_address_only():
    obj = fixture("inferenceservices", 0)
    predictor = obj["spec"]["predictor"]
    predictor["sklearn"] = {"storageUri": "gs://kfserving/sklearn/iris"}
    del predictor["model"]
    del obj["status"]["url"]
    p = parse_object(obj, KIND_BY_KEY["inferenceservices"], OPTS)
    assert p.storage_uri == "gs://kfserving/sklearn/iris"
    assert p.exposure == "internal"
    assert p.endpoint == "http://churn-predictor.ml-serving.svc.cluster.local"


def test_seldon_v2_model_and_v1_deployment():
    model = parse_object(fixture("seldon_models"), KIND_BY_KEY["seldon_models"], OPTS)
    assert (model.external_id, model.model_name, model.platform) == (
        "Model/seldon-mesh/iris",
        "iris",
        "seldon",
    )
    assert model.service_accounts == () and model.secrets == ("seldon-rclone-gs",)
    sdep = parse_object(
        fixture("seldondeployments"), KIND_BY_KEY["seldondeployments"], OPTS
    )
    assert (sdep.model_name, sdep.version) == ("income-classifier", "4"), (
        "the 80% predictor, not the 20% canary"
    )
    assert sdep.service_accounts == ("seldon-sa",)
    assert sdep.secrets == ("seldon-init-container-secret",)
    assert sdep.image == "seldonio/sklearnserver:1.18.0"


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda o: o.pop("metadata"), "no metadata"),
        (lambda o: o["metadata"].pop("name"), "no metadata.name"),
        (lambda o: o["metadata"].update(namespace=7), "no metadata.namespace"),
        (lambda o: o["spec"]["template"]["spec"].update(containers={}), "wrong type"),
        (lambda o: o["metadata"].update(labels="x"), "wrong type"),
    ],
)
def test_unreadable_objects_say_why(edit, reason):
    obj = fixture("deployments", 0)
    edit(obj)
    with pytest.raises(BadObject, match=reason):
        parse_object(obj, KIND_BY_KEY["deployments"], OPTS)


def test_kind_of_exported_items():
    assert kind_of({"apiVersion": "apps/v1", "kind": "Deployment"}).key == "deployments"
    assert kind_of({"apiVersion": "mlops.seldon.io/v1alpha1", "kind": "Model"}).key == (
        "seldon_models"
    )
    assert kind_of({"apiVersion": "v1", "kind": "Service"}) is None
    assert kind_of({"apiVersion": "example.com/v1", "kind": "Model"}) is None
