"""Demo sources for the embedded demo: real connectors fed with files made from the demo.

No registry, cluster or collector runs next to `make run`, so the demo's sources read
files written here from the demo organisation itself, through the same upload path an
administrator uses: a `kubectl get -o json` export of the models' serving workloads, a
collector's OTLP JSON-lines file, GCP key and GitHub token exports. Each becomes a real
SyncRun with counts, so the Sources pages, the observed deployments, usage charts, drift
against the registry and stale credentials all have something true to show. An MLflow
source is configured but disabled: there is no registry server to read.
"""

from __future__ import annotations

import json
import os
import random
import secrets as pysecrets
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.base import ContentFile
from django.db.models import Count, F
from django.utils import timezone

from inventory import models as m
from sources import models as sm
from sources.sync import runner

K8S = "Kubernetes: prod-eu cluster (kubectl export)"
# The demo cluster: `run_embedded` serves the same workloads through devtools.k8s_fake on
# this port, so "Sync now" on the Kubernetes source pulls them through the official
# client, as it would from a real API server (the first run is the uploaded export).
DEMO_CLUSTER_PORT = int(os.environ.get("RUNPROOF_DEMO_CLUSTER_PORT", "8001"))


def demo_cluster_file() -> Path:
    """Where the demo's cluster document is kept for `run_embedded` to serve."""
    return Path(settings.VAR_DIR) / "demo" / "prod-eu-cluster.json"


def demo_cluster_url() -> str:
    return f"http://127.0.0.1:{DEMO_CLUSTER_PORT}"


OTLP = "OpenTelemetry traces"
GCP = "GCP service-account keys (acme-ml project)"
GITHUB = "GitHub org tokens (acme)"
MLFLOW = "MLflow registry (not running in the demo)"
# The demo's drift cases: every fourth workload runs another registered version, every
# seventh one the registry has never seen.
DRIFT_EVERY, UNREGISTERED_EVERY = 4, 7
WORKLOADS = 24
SPAN_HOURS = 48


def has_demo_sources() -> bool:
    return sm.DataSource.objects.exists()


def seed_demo_sources(
    *, seed: int = 7, progress: Callable[[str], None] | None = None
) -> dict[str, int]:
    """Create the demo sources and run each once on its demo file; return runs' counts."""
    say = progress or (lambda _message: None)
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    team = m.Team.objects.order_by("pk").first()
    models = list(
        m.AIModel.objects.filter(lifecycle=m.AIModel.Lifecycle.ACTIVE)
        .annotate(n=Count("versions"))
        .filter(n__gte=2)
        .prefetch_related("versions")
        .order_by("name")[:WORKLOADS]
    )
    results: dict[str, int] = {}
    k8s = _source(
        K8S,
        "kubernetes",
        {
            "environment": "production",
            "deployments_scope": "labelled",
            "api_url": demo_cluster_url(),
        },
        team,
    )
    export = _kubectl_export(models)
    cluster_file = demo_cluster_file()
    cluster_file.parent.mkdir(parents=True, exist_ok=True)
    cluster_file.write_bytes(export)
    results[K8S] = _run(k8s, "prod-eu.json", export, say)
    _registry_baseline(k8s)
    otlp = _source(OTLP, "otlp", {}, None)
    results[OTLP] = _run(otlp, "collector.jsonl", _otlp_lines(rng), say)
    rules = r"^svc-(?P<model>[a-z0-9-]+)$ => model"
    gcp = _source(GCP, "gcp_keys", {"rules": rules}, team)
    results[GCP] = _run(gcp, "gcp-keys.json", _gcp_keys(models, rng), say)
    github = _source(GITHUB, "github_tokens", {"rules": rules}, team)
    results[GITHUB] = _run(github, "github-pats.json", _github_pats(models, rng), say)
    _source(
        MLFLOW,
        "mlflow",
        {"tracking_uri": "http://127.0.0.1:5000", "approved_alias": "champion"},
        None,
        enabled=False,
    )
    return results


def _source(name, kind, config, team, *, enabled=True) -> sm.DataSource:
    from sources.sync import services

    return services.source_create(
        actor=None,
        actor_label="seed_demo",
        name=name,
        kind=kind,
        config=config,
        schedule_minutes=0,
        team=team,
        enabled=enabled,
    )


def _run(source: sm.DataSource, filename: str, content: bytes, say) -> int:
    run, _ = runner.request_sync(
        source=source,
        trigger=sm.SyncRun.Trigger.UPLOAD,
        upload=ContentFile(content, name=filename),
        actor_label="seed_demo",
    )
    # Run it here and now; the copy sent to the broker then finds it done.
    runner.execute_run(run.pk)
    run.refresh_from_db()
    say(f"{source.name}: {run.get_status_display()}, {run.seen} records")
    return run.seen


def _kubectl_export(models: list[m.AIModel]) -> bytes:
    """What `kubectl get deployments -A -o json` prints for the models' serving pods."""
    items = []
    for i, model in enumerate(models):
        versions = sorted(model.versions.all(), key=lambda v: v.created_at)
        approved = next(
            (v for v in reversed(versions) if v.approval == "approved"), versions[-1]
        )
        version = approved.version
        if i % UNREGISTERED_EVERY == UNREGISTERED_EVERY - 1:
            version = "99"
        elif i % DRIFT_EVERY == DRIFT_EVERY - 1:
            version = next(v.version for v in versions if v.pk != approved.pk)
        namespace = (model.team.slug if model.team_id else "ml-serving")[:63]
        name = f"{model.name}-serving"[:63]
        items.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": f"demo-{i:04d}",
                    "labels": {
                        "app.kubernetes.io/name": model.name,
                        "mlflow.org/registered-model": model.name,
                        "mlflow.org/model-version": version,
                    },
                },
                "spec": {
                    "replicas": 2,
                    "template": {
                        "spec": {
                            "serviceAccountName": f"{model.name}-runtime"[:63],
                            "containers": [
                                {
                                    "name": "server",
                                    "image": f"registry.acme.example/{model.name}:{version}",
                                    "env": [
                                        {
                                            "name": "FEATURE_STORE_TOKEN",
                                            "valueFrom": {
                                                "secretKeyRef": {
                                                    "name": "feature-store",
                                                    "key": "token",
                                                }
                                            },
                                        }
                                    ],
                                }
                            ],
                        }
                    },
                },
                "status": {"replicas": 2, "readyReplicas": 2},
            }
        )
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items}).encode()


def _registry_baseline(source: sm.DataSource) -> None:
    """What an MLflow sync would do: the registry's approved version becomes the baseline.

    The demo has no registry server, so the demo's approved versions stand in for it.
    """
    for dep in m.Deployment.objects.filter(source=source.source_label).select_related(
        "model"
    ):
        approved = (
            m.ModelVersion.objects.filter(model_id=dep.model_id, approval="approved")
            .order_by("-created_at")
            .first()
        )
        if approved:
            m.Deployment.objects.filter(pk=dep.pk).update(approved_version=approved)


def _otlp_lines(rng: random.Random) -> bytes:
    """A collector file: GenAI calls to demo deployments, and to two places nobody owns."""
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    targets = []
    for dep in (
        m.Deployment.objects.filter(
            source="demo", status="active", model__kind__in=["llm", "embedding"]
        )
        .exclude(endpoint="")
        .select_related("model")
        .order_by("pk")[:8]
    ):
        host = urlsplit(dep.endpoint).hostname or dep.endpoint
        targets.append((host, dep.model.name, "openai"))
    # One with an owner: the shadow deployment's story is that its model's owner sees it.
    retired = (
        m.AIModel.objects.filter(lifecycle=m.AIModel.Lifecycle.RETIRED)
        .order_by(F("owner").asc(nulls_last=True), "name")
        .first()
    )
    if retired:
        # A retired model still answering: the shadow deployment the product exists for.
        targets.append(("legacy-gateway.ml-serving.svc", retired.name, "openai"))
    targets.append(("api.openai.com", "gpt-4o-mini", "openai"))
    services = ["support-portal", "claims-triage", "kyc-review", "analyst-notebook"]
    lines = []
    for hour in range(SPAN_HOURS):
        start = now - timedelta(hours=SPAN_HOURS - hour)
        spans = []
        for host, model, provider in targets:
            for _ in range(rng.randint(0, 6)):
                spans.append(_span(rng, start, host, model, provider))
        if not spans:
            continue
        service = rng.choice(services)
        lines.append(
            json.dumps(
                {
                    "resourceSpans": [
                        {
                            "resource": {
                                "attributes": [
                                    _attr("service.name", service),
                                    _attr("deployment.environment.name", "prod"),
                                ]
                            },
                            "scopeSpans": [
                                {"scope": {"name": "demo-genai"}, "spans": spans}
                            ],
                        }
                    ]
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


def _span(rng, hour_start: datetime, host: str, model: str, provider: str) -> dict:
    begin = hour_start + timedelta(seconds=rng.randint(0, 3599))
    duration_ns = rng.randint(120, 2400) * 1_000_000
    start_ns = int(begin.timestamp() * 1e9)
    failed = rng.random() < 0.04
    span = {
        "traceId": pysecrets.token_hex(16),
        "spanId": pysecrets.token_hex(8),
        "name": f"chat {model}",
        "kind": 3,
        "startTimeUnixNano": str(start_ns),
        "endTimeUnixNano": str(start_ns + duration_ns),
        "attributes": [
            _attr("gen_ai.operation.name", "chat"),
            _attr("gen_ai.provider.name", provider),
            _attr("gen_ai.request.model", model),
            _attr("server.address", host),
            _attr("enduser.id", f"user{rng.randint(1, 40)}@example.com"),
            {
                "key": "gen_ai.usage.input_tokens",
                "value": {"intValue": str(rng.randint(50, 900))},
            },
            {
                "key": "gen_ai.usage.output_tokens",
                "value": {"intValue": str(rng.randint(10, 400))},
            },
        ],
    }
    if failed:
        span["status"] = {"code": 2, "message": "upstream timeout"}
    return span


def _attr(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def _gcp_keys(models: list[m.AIModel], rng: random.Random) -> bytes:
    keys = []
    for i, model in enumerate(models[:12]):
        created = timezone.now() - timedelta(days=rng.choice([20, 75, 200, 640, 1100]))
        email = f"svc-{model.name}@acme-ml.iam.gserviceaccount.com"
        keys.append(
            {
                "name": f"projects/acme-ml/serviceAccounts/{email}/keys/{i:040x}",
                "validAfterTime": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "validBeforeTime": "9999-12-31T23:59:59Z",
                "keyAlgorithm": "KEY_ALG_RSA_2048",
                "keyOrigin": "GOOGLE_PROVIDED",
                "keyType": "USER_MANAGED",
                "disabled": i % 5 == 4,
            }
        )
    return json.dumps({"keys": keys}).encode()


def _github_pats(models: list[m.AIModel], rng: random.Random) -> bytes:
    pats = []
    for i, model in enumerate(models[:6]):
        granted = timezone.now() - timedelta(days=rng.choice([30, 120, 400]))
        used = timezone.now() - timedelta(days=rng.choice([1, 3, 95, 300]))
        pats.append(
            {
                "id": 25000 + i,
                "owner": {"login": "acme-ml-bot", "id": 8812001, "type": "User"},
                "repository_selection": "subset",
                "permissions": {
                    "repository": {"metadata": "read", "contents": "write"}
                },
                "access_granted_at": granted.isoformat(),
                "token_id": 98000 + i,
                "token_name": f"svc-{model.name}",
                "token_expired": False,
                "token_expires_at": None
                if i % 3 == 0
                else (granted + timedelta(days=365)).isoformat(),
                "token_last_used_at": used.isoformat(),
            }
        )
    return json.dumps(pats).encode()
