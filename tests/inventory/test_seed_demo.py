from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db.models import Count, F, Max, Q
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from devtools import demo
from inventory import models as m
from inventory import selectors
from sources import models as sm

SMALL = {"models": 40, "deployments": 120, "identities": 300}
SOURCED = [m.AIModel, m.ModelVersion, m.System, m.Deployment, m.NonHumanIdentity]


def _digest() -> str:
    """Everything a seed decides, by natural keys (ids differ between databases)."""
    rows = [
        *m.Team.objects.order_by("slug").values_list(
            "slug", "name", "description", "created_at", "updated_at"
        ),
        *get_user_model()
        .objects.filter(password=demo.UNUSABLE_PASSWORD)
        .order_by("username")
        .values_list("username", "date_joined"),
        *m.AIModel.objects.order_by("external_id").values_list(
            "name",
            "provider",
            "lifecycle",
            "team__slug",
            "owner__username",
            "created_at",
            "updated_at",
        ),
        *m.ModelVersion.objects.order_by("external_id").values_list(
            "external_id",
            "approval",
            "digest",
            "approved_bounds",
            "approved_at",
            "updated_at",
        ),
        *m.System.objects.order_by("external_id").values_list(
            "name", "kind", "owner__username"
        ),
        *m.Deployment.objects.order_by("external_id").values_list(
            "name",
            "endpoint",
            "observed_version__version",
            "approved_version__version",
            "owner__username",
            "status",
            "first_seen_at",
            "last_seen_at",
            "updated_at",
        ),
        *m.Dependency.objects.order_by(
            "upstream__name", "downstream__name"
        ).values_list("upstream__name", "downstream__name", "kind"),
        *m.NonHumanIdentity.objects.filter(source=demo.DEMO_SOURCE)
        .order_by("external_id")
        .values_list(
            "name", "scopes", "status", "owner__username", "last_used_at", "updated_at"
        )
        .annotate(bound=Count("deployments")),
    ]
    return hashlib.sha256(repr(rows).encode()).hexdigest()


def _wipe() -> None:
    m.NonHumanIdentity.objects.all().delete()
    m.Deployment.objects.all().delete()
    m.System.objects.all().delete()
    m.AIModel.objects.all().delete()
    m.Team.objects.all().delete()
    get_user_model().objects.filter(password=demo.UNUSABLE_PASSWORD).delete()


NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.mark.django_db
def test_same_seed_gives_the_same_organisation():
    first_counts = demo.seed_demo(seed=11, now=NOW, **SMALL)
    first = _digest()
    _wipe()
    assert not demo.has_demo_data()
    second_counts = demo.seed_demo(seed=11, now=NOW, **SMALL)
    assert second_counts == first_counts
    assert _digest() == first
    _wipe()
    demo.seed_demo(seed=12, now=NOW, **SMALL)
    assert _digest() != first


@pytest.mark.django_db
def test_the_demo_is_as_fresh_as_the_day_it_is_seeded():
    """Every date is an offset from the seed's moment: active deployments answered within
    the last day and a half, except the few the demo shows as silent."""
    before = timezone.now()
    demo.seed_demo(**SMALL)
    policy = selectors.policy_current()
    active = m.Deployment.objects.filter(status="active")
    silent = set(active.silent(policy).values_list("pk", flat=True))
    assert 0 < len(silent) < active.count() / 10
    for last_seen in active.exclude(pk__in=silent).values_list(
        "last_seen_at", flat=True
    ):
        assert before - timedelta(hours=37) < last_seen <= timezone.now()
    assert not m.Deployment.objects.filter(last_seen_at__gt=timezone.now()).exists()
    assert not m.NonHumanIdentity.objects.filter(
        last_used_at__gt=timezone.now()
    ).exists()
    quiet = m.NonHumanIdentity.objects.silent(policy)
    assert (
        0
        < quiet.count()
        < m.NonHumanIdentity.objects.filter(status="active").count() / 10
    )
    # The same seed on another day is the same organisation, moved in time.
    latest = m.Deployment.objects.aggregate(Max("last_seen_at"))["last_seen_at__max"]
    _wipe()
    demo.seed_demo(now=NOW, **SMALL)
    moved = m.Deployment.objects.aggregate(Max("last_seen_at"))["last_seen_at__max"]
    assert abs((latest - before) - (moved - NOW)) < timedelta(seconds=5)


@pytest.mark.django_db
def test_seed_counts_and_mix():
    counts = demo.seed_demo()
    assert counts["models"] == m.AIModel.objects.count() == 60
    assert counts["deployments"] == m.Deployment.objects.count() == 200
    assert counts["identities"] == m.NonHumanIdentity.objects.count() == 600
    assert counts["versions"] == m.ModelVersion.objects.count()
    assert counts["dependencies"] == m.Dependency.objects.count() > 0
    bindings = m.NonHumanIdentity.deployments.through.objects
    assert counts["identity_bindings"] == bindings.count()
    per_identity = set(
        m.NonHumanIdentity.objects.annotate(n=Count("deployments")).values_list(
            "n", flat=True
        )
    )
    assert per_identity <= {1, 2, 3} and 1 in per_identity
    assert m.Team.objects.count() == 7
    assert set(m.AIModel.objects.values_list("lifecycle", flat=True)) == set(
        m.AIModel.Lifecycle.values
    )
    assert set(m.ModelVersion.objects.values_list("approval", flat=True)) == set(
        m.ModelVersion.Approval.values
    )
    assert not m.ModelVersion.objects.filter(
        approval="approved", approved_bounds={}
    ).exists()

    deployments = m.Deployment.objects
    assert deployments.filter(owner__isnull=True).exists()
    assert (
        deployments.filter(approved_version__isnull=False)
        .exclude(observed_version=F("approved_version"))
        .exists()
    ), "some deployments drift"
    assert deployments.filter(model__lifecycle="retired", status="active").exists(), (
        "shadow"
    )
    assert set(deployments.values_list("environment", flat=True)) == set(
        m.Deployment.Environment.values
    )
    assert not m.Dependency.objects.filter(upstream=F("downstream")).exists()

    identities = m.NonHumanIdentity.objects
    assert identities.filter(team__isnull=True, owner__isnull=True).exists()
    cutoff = timezone.now() - timedelta(days=90)
    assert identities.filter(status="active", last_used_at__lt=cutoff).exists(), "stale"
    assert identities.filter(deployments__model__lifecycle="retired").exists()
    assert {"aws", "gcp", "azure", "github", "vault", "kubernetes", "openai"} <= set(
        identities.values_list("provider", flat=True)
    )

    for model in SOURCED:
        rows = model.objects.filter(source=demo.DEMO_SOURCE)
        assert rows.count() == model.objects.count()
        assert not rows.filter(Q(external_id="")).exists()
        assert rows.values("external_id").distinct().count() == rows.count()
    assert not m.Deployment.objects.filter(last_seen_at__gt=timezone.now()).exists()


@pytest.mark.django_db
def test_seed_writes_one_summary_audit_event():
    counts = demo.seed_demo()
    events = AuditEvent.objects.filter(action="inventory.seed")
    assert events.count() == 1 == AuditEvent.objects.count()
    event = events.get()
    assert event.actor_label == "seed_demo" and event.actor_id is None
    assert event.after == {"seed": 7, **counts}
    assert event.object_repr == "Credit risk"


@pytest.mark.django_db
def test_seed_refuses_a_non_empty_inventory():
    demo.seed_demo(**SMALL)
    with pytest.raises(ValidationError, match="already holds models"):
        demo.seed_demo(**SMALL)


@pytest.mark.django_db
def test_seed_command_if_empty_is_idempotent():
    out = StringIO()
    call_command(
        "seed_demo",
        "--models",
        "20",
        "--deployments",
        "50",
        "--identities",
        "80",
        stdout=out,
    )
    assert "deployments" in out.getvalue()
    before = (
        m.AIModel.objects.count(),
        m.NonHumanIdentity.objects.count(),
        AuditEvent.objects.count(),
    )

    again = StringIO()
    call_command("seed_demo", "--if-empty", stdout=again)
    assert "nothing seeded" in again.getvalue()
    after = (
        m.AIModel.objects.count(),
        m.NonHumanIdentity.objects.count(),
        AuditEvent.objects.count(),
    )
    assert after == before

    with pytest.raises(CommandError, match="already holds models"):
        call_command("seed_demo", stdout=StringIO())


@pytest.mark.django_db
def test_demo_accounts_have_their_roles_and_can_sign_in(client):
    out = StringIO()
    call_command("seed_demo", "--accounts-only", stdout=out)
    call_command("seed_demo", "--accounts-only", stdout=StringIO())  # idempotent
    assert not demo.has_demo_data()
    User = get_user_model()
    assert User.objects.count() == len(demo.DEMO_ACCOUNTS)
    for username, password, role in demo.DEMO_ACCOUNTS:
        assert f"{username}" in out.getvalue() and password in out.getvalue()
        user = User.objects.get(username=username)
        assert list(user.groups.values_list("name", flat=True)) == [role.value]
        validate_password(password, user=user)
        response = client.post(
            reverse("login"), {"username": username, "password": password}
        )
        assert response.status_code == 302, username
        assert response["Location"] == reverse("dashboard")
        client.logout()
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    owner = User.objects.get(username="owner")
    assert sorted(owner.teams.values_list("slug", flat=True)) == sorted(
        demo.OWNER_TEAM_SLUGS
    )


@pytest.mark.django_db
def test_accounts_then_seed_share_the_owner_teams():
    demo.ensure_demo_accounts()
    counts = demo.seed_demo(**SMALL)
    assert counts["teams"] == 5  # credit risk and fraud already existed
    owner = get_user_model().objects.get(username="owner")
    visible = m.Deployment.objects.filter(team__members=owner)
    assert visible.exists()
    assert m.Team.objects.filter(slug__in=demo.OWNER_TEAM_SLUGS).count() == 2


@pytest.mark.django_db
def test_demo_sources_sync_their_demo_files(settings, tmp_path):
    """Every demo source runs once, through the real connectors and the upload path."""
    from devtools import demo_sources
    from inventory import models as m

    settings.MEDIA_ROOT = str(tmp_path / "media")
    demo.seed_demo(models=40, deployments=120, identities=100)
    seen = demo_sources.seed_demo_sources()
    assert set(seen) == {
        demo_sources.K8S,
        demo_sources.OTLP,
        demo_sources.GCP,
        demo_sources.GITHUB,
    }
    runs = sm.SyncRun.objects.select_related("source")
    assert {r.source.name: r.status for r in runs} == dict.fromkeys(seen, "succeeded")
    assert not sm.DataSource.objects.get(name=demo_sources.MLFLOW).enabled
    workloads = m.Deployment.objects.filter(source__startswith="kubernetes:")
    assert any(d.version_drift for d in workloads), "the demo shows drift"
    assert workloads.filter(observed_version=None).exclude(observed_version_label="")
    observed = m.Deployment.objects.filter(source__startswith="otlp:", owner=None)
    assert observed.filter(endpoint="api.openai.com").exists()
    assert m.UsageHour.objects.filter(deployment__source="demo").exists()
    assert m.NonHumanIdentity.objects.filter(
        source__startswith="gcp_keys:", model__isnull=False
    ).exists()
    # One cluster, many teams: each workload is its model's team's.
    assert workloads.values("team").distinct().count() > 1
    for dep in workloads.select_related("model"):
        assert dep.team_id == (dep.model.team_id or dep.team_id)
        assert dep.team_id is not None
    # The retired model still answering: its team's, its owner's to see, still ownerless.
    shadow = m.Deployment.objects.get(
        source__startswith="otlp:", model__lifecycle="retired"
    )
    assert shadow.team_id == shadow.model.team_id is not None
    assert shadow.owner_id is None and shadow.model.owner_id is not None
    assert m.Deployment.objects.ownerless().filter(pk=shadow.pk).exists()
    assert selectors.deployment_list(user=shadow.model.owner).filter(pk=shadow.pk)
    # Traces and syncs ran just now: what they reported is not silent.
    policy = selectors.policy_current()
    assert not workloads.silent(policy).exists()
    assert not m.NonHumanIdentity.objects.filter(source__startswith="gcp_keys:").silent(
        policy
    )


@pytest.mark.django_db(transaction=True)
def test_demo_kubernetes_source_pulls_from_the_demo_cluster(
    settings, tmp_path, monkeypatch
):
    """ "Sync now" on the demo Kubernetes source pulls the demo's workloads through the
    official client from the API server `run_embedded` starts (devtools.k8s_fake serving
    the file the seed wrote): the run succeeds and finds the workloads it uploaded."""
    import socket
    import subprocess
    import sys

    from devtools import demo_sources
    from devtools.management.commands.run_embedded import Command
    from inventory.models import FieldChange
    from sources.sync import runner

    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.VAR_DIR = tmp_path
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(demo_sources, "DEMO_CLUSTER_PORT", port)
    demo.seed_demo(models=40, deployments=120, identities=100)
    demo_sources.seed_demo_sources()
    source = sm.DataSource.objects.get(name=demo_sources.K8S)
    assert source.config["api_url"] == f"http://127.0.0.1:{port}"
    assert demo_sources.demo_cluster_file().exists()

    (child,) = Command()._demo_cluster(sys.executable)
    process = subprocess.Popen(  # noqa: S603 - run_embedded's own fixed argv
        child.args, cwd=settings.BASE_DIR, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout.readline().decode().strip() == f"READY {port}"
        workloads = m.Deployment.objects.filter(source=source.source_label)
        before = (workloads.count(), FieldChange.objects.count())
        run, _ = runner.request_sync(source=source, trigger=sm.SyncRun.Trigger.MANUAL)
        runner.execute_run(run.pk)
        run.refresh_from_db()
        assert run.status == "succeeded", run.error
        assert run.seen >= before[0] > 0
        # The cluster says what the export said: nothing moved.
        assert (workloads.count(), FieldChange.objects.count()) == before
    finally:
        process.terminate()
        process.wait(timeout=10)
