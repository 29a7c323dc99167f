"""Everything under /sources/ follows the inventory's rules (issue 8, item 15).

Sources and their runs are shared: an owner reads every source's health and runs. What a
run or a push says about the inventory's objects is scoped: an owner reads the deployment
events, skipped records and changes about their own teams' objects only.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from sources import models as sm
from tests.factories import DeploymentFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def cicd(db):
    return sm.DataSource.objects.create(name="CI/CD", kind="cicd", schedule_minutes=0)


def deployment_with_event(source, team, name: str, n: int = 1):
    deployment = DeploymentFactory(
        name=name,
        model__team=team,
        team=team,
        source=source.source_label,
        external_id=f"production|https://{name}.internal",
    )
    version = ModelVersionFactory(model=deployment.model, version="1")
    for i in range(n):
        sm.DeploymentEvent.objects.create(
            model_name=deployment.model.name,
            version="1",
            environment="production",
            endpoint=f"https://{name}.internal",
            commit=f"{name}-commit-{i}",
            pipeline_run=f"https://ci.example.com/{name}/{i}",
            deployment=deployment,
            model_version=version,
        )
    return deployment


@pytest.fixture
def two_teams(cicd, team_a, team_b):
    mine = deployment_with_event(cicd, team_a, "mine")
    theirs = deployment_with_event(cicd, team_b, "theirs")
    # An event that matched no deployment, about the other team's model version.
    sm.DeploymentEvent.objects.create(
        model_name=theirs.model.name,
        version="9",
        environment="staging",
        endpoint="https://orphan.internal",
        commit="theirs-orphan",
        model_version=ModelVersionFactory(model=theirs.model, version="9"),
    )
    return mine, theirs


def test_an_owner_lists_only_the_events_about_their_teams_deployments(
    login, owner, risk, two_teams
):
    page = login(owner).get(reverse("sources:event_list")).content.decode()
    assert "mine-commit-0" in page
    assert "theirs-commit-0" not in page and "theirs-orphan" not in page
    everything = login(risk).get(reverse("sources:event_list")).content.decode()
    assert "theirs-commit-0" in everything and "theirs-orphan" in everything


def test_an_owner_exports_only_the_events_about_their_teams_deployments(
    login, owner, two_teams
):
    response = login(owner).get(reverse("sources:event_list") + "?export=csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    body = "\n".join(",".join(r) for r in rows)
    assert len(rows) == 2, body  # the header and the owner's one event
    assert "mine-commit-0" in body and "theirs" not in body


def test_a_cicd_source_page_shows_an_owner_only_their_events(
    login, owner, cicd, two_teams
):
    response = login(owner).get(reverse("sources:source_detail", args=[cicd.pk]))
    assert response.status_code == 200  # the shared source's health is for everyone
    page = response.content.decode()
    assert "mine" in page and "https://theirs.internal" not in page


@pytest.fixture
def run_about_both(cicd, two_teams):
    mine, theirs = two_teams
    run = sm.SyncRun.objects.create(
        source=cicd,
        trigger="manual",
        status="partial",
        errors=3,
        changes=[
            {
                "action": "skipped",
                "kind": "deployment",
                "external_id": "",
                "note": "run-note",
            },
            {
                "action": "updated",
                "kind": "deployment",
                "external_id": mine.external_id,
            },
            {
                "action": "updated",
                "kind": "deployment",
                "external_id": theirs.external_id,
            },
        ],
    )
    for ext, excerpt in [
        (mine.external_id, "excerpt-mine"),
        (theirs.external_id, "excerpt-theirs"),
        ("never-seen", "excerpt-unknown"),
    ]:
        sm.SyncError.objects.create(
            run=run, external_id=ext, reason="bad", excerpt=excerpt
        )
    return run


@pytest.mark.parametrize("url_name", ["sources:run_detail", "sources:run_progress"])
def test_an_owner_sees_a_shared_run_but_only_the_records_about_their_teams(
    login, owner, admin_user, run_about_both, url_name
):
    url = reverse(url_name, args=[run_about_both.pk])
    response = login(owner).get(url)
    assert response.status_code in {200, 286}  # the run itself is shared
    page = response.content.decode()
    assert "excerpt-mine" in page and "https://mine.internal" in page
    assert "run-note" in page
    assert "excerpt-theirs" not in page and "https://theirs.internal" not in page
    assert "excerpt-unknown" not in page
    everything = login(admin_user).get(url).content.decode()
    for text in ("excerpt-theirs", "excerpt-unknown", "https://theirs.internal"):
        assert text in everything


def test_an_owner_still_lists_every_source_and_run(login, owner, run_about_both):
    client = login(owner)
    assert (
        run_about_both.source.name
        in client.get(reverse("sources:source_list")).content.decode()
    )
    runs = client.get(reverse("sources:run_list")).content.decode()
    assert reverse("sources:run_detail", args=[run_about_both.pk]) in runs


@pytest.mark.parametrize("rows", [3, 30])
def test_the_owners_event_list_keeps_its_query_count(
    login, owner, cicd, team_a, team_b, rows, django_assert_max_num_queries
):
    deployment_with_event(cicd, team_a, "mine", n=rows)
    deployment_with_event(cicd, team_b, "theirs", n=rows)
    client = login(owner)
    with django_assert_max_num_queries(12):
        response = client.get(reverse("sources:event_list"))
    assert response.content.decode().count("mine-commit-") == rows


@pytest.mark.parametrize("rows", [3, 30])
def test_the_owners_run_page_keeps_its_query_count(
    login, owner, cicd, team_a, rows, django_assert_max_num_queries
):
    deployments = [
        DeploymentFactory(
            model__team=team_a,
            team=team_a,
            source=cicd.source_label,
            external_id=f"d{i}",
        )
        for i in range(rows)
    ]
    run = sm.SyncRun.objects.create(
        source=cicd,
        trigger="manual",
        status="partial",
        errors=rows,
        changes=[
            {"action": "created", "kind": "deployment", "external_id": d.external_id}
            for d in deployments
        ],
    )
    for d in deployments:
        sm.SyncError.objects.create(run=run, external_id=d.external_id, reason="r")
    client = login(owner)
    with django_assert_max_num_queries(16):
        response = client.get(reverse("sources:run_detail", args=[run.pk]))
    assert response.content.decode().count("<code>d") >= 2 * rows
