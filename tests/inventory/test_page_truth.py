"""Issue 9, items 3 and 4: the API, the CSV and the pages say the same thing about a
deployment (its running version, even one the registry does not have; its approved
version; its model's lifecycle), silent rows are shown as silent everywhere, and a
withdrawn deployment is not "running in" a version."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from inventory import models as m
from inventory import selectors, services, usage
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
)

pytestmark = pytest.mark.django_db


class _Text(HTMLParser):
    """The text inside each element that has a data-testid, by testid."""

    VOID = {"br", "img", "input", "meta", "link", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, str | None]] = []
        self.found: dict[str, list[str]] = {}

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        testid = dict(attrs).get("data-testid")
        self.open.append((tag, testid))
        if testid:
            self.found.setdefault(testid, [])

    def handle_endtag(self, tag):
        while self.open:
            if self.open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _, testid in self.open:
            if testid:
                self.found[testid].append(data)


def _testid_text(html: str, testid: str) -> str:
    parser = _Text()
    parser.feed(html)
    return " ".join("".join(parser.found[testid]).split())


def _rows_with_badge(html: str, badge: str) -> set[str]:
    """Names (first link) of the list rows that carry a badge with this text."""
    body = html.split("<tbody", 1)[1].split("</tbody>", 1)[0]
    names = set()
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        if re.search(rf'class="badge[^"]*"[^>]*>{badge}<', row):
            names.add(re.search(r"<a [^>]*>([^<]+)</a>", row).group(1))
    return names


@pytest.fixture
def api(client):
    _, raw = services.api_token_issue(
        actor=None, name="reader", scopes=[m.APIToken.Scope.READ], days=30
    )

    def _get(url: str, **params):
        return client.get(url, params, headers={"Authorization": f"Bearer {raw}"})

    return _get


@pytest.fixture
def estate(team_a, owner):
    """Three deployments of one deprecated model whose baseline is 2.0: one runs a
    version the registry lacks ("99"), one is pinned to 1.0 and runs it, one runs 2.0."""
    model = AIModelFactory(
        name="scorer",
        team=team_a,
        owner=owner,
        lifecycle=m.AIModel.Lifecycle.DEPRECATED,
    )
    v1 = ModelVersionFactory(model=model, version="1.0")
    v2 = ModelVersionFactory(model=model, version="2.0")
    model.baseline_version = v2
    model.save(update_fields=["baseline_version"])
    unregistered = DeploymentFactory(
        model=model,
        name="scorer-99",
        observed_version=None,
        observed_version_label="99",
    )
    pinned = DeploymentFactory(
        model=model, name="scorer-pinned", observed_version=v1, approved_version=v1
    )
    plain = DeploymentFactory(model=model, name="scorer-plain", observed_version=v2)
    return {"unregistered": unregistered, "pinned": pinned, "plain": plain}


def _page_facts(client, deployment: m.Deployment) -> dict[str, str]:
    html = client.get(deployment.get_absolute_url()).content.decode()
    return {
        "running": _testid_text(html, "observed-version"),
        "approved": _testid_text(html, "approved-version"),
        "lifecycle": _testid_text(html, "model-lifecycle"),
    }


def _csv_rows(client, url: str) -> dict[str, dict[str, str]]:
    response = client.get(url + "?export=csv")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    return {row["name"]: row for row in csv.DictReader(io.StringIO(body))}


def test_api_csv_and_page_show_the_same_running_and_approved_version_and_lifecycle(
    client, api, admin_user, estate
):
    client.force_login(admin_user)
    exported = _csv_rows(client, reverse("inventory:deployment_list"))
    listed = {row["name"]: row for row in api("/api/v1/deployments/").json()["results"]}
    expected = {
        # name: (running, registered, approved, where the baseline comes from)
        "scorer-99": ("99", False, "2.0", "model"),
        "scorer-pinned": ("1.0", True, "1.0", "pin"),
        "scorer-plain": ("2.0", True, "2.0", "model"),
    }
    for deployment in estate.values():
        running, registered, approved, kind = expected[deployment.name]
        page = _page_facts(client, deployment)
        row = exported[deployment.name]
        body = listed[deployment.name]
        assert api(f"/api/v1/deployments/{deployment.pk}/").json() == body

        # The page: "99 unregistered", the baseline's version, the model's lifecycle.
        assert page["running"].split()[0] == running
        assert ("unregistered" in page["running"]) is not registered
        assert page["approved"] == approved
        assert page["lifecycle"] == "Deprecated"
        # The CSV says the same.
        assert row["running_version"] == running
        assert row["running_version_registered"] == str(registered).lower()
        assert row["baseline_version"] == approved
        assert row["baseline_kind"] == kind
        assert row["model_lifecycle"] == "deprecated"
        # And the API.
        assert body["running_version"] == running
        assert body["running_version_registered"] is registered
        assert body["baseline_version"]["version"] == approved
        assert body["baseline_kind"] == kind
        assert body["model_lifecycle"] == "deprecated"
    # The unregistered one: no registry version, but its label is said, not null.
    body = listed["scorer-99"]
    assert body["observed_version"] is None
    assert body["observed_version_label"] == "99"
    assert exported["scorer-99"]["observed_version"] == ""


def test_nothing_reported_is_null_in_the_api_and_empty_in_the_csv(
    client, api, admin_user
):
    dep = DeploymentFactory(name="quiet", observed_version=None)
    client.force_login(admin_user)
    body = api(f"/api/v1/deployments/{dep.pk}/").json()
    assert (body["running_version"], body["running_version_registered"]) == (None, None)
    assert (body["baseline_version"], body["baseline_kind"]) == (None, "")
    row = _csv_rows(client, reverse("inventory:deployment_list"))["quiet"]
    assert row["running_version"] == row["baseline_version"] == ""
    assert _page_facts(client, dep)["approved"] == "none approved"


def test_api_deployment_carries_its_identities_and_last_call(api, estate):
    dep = estate["plain"]
    bound = IdentityFactory(name="svc-bound", team=dep.team, deployments=[dep])
    IdentityFactory(name="svc-other")
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    last_call = hour - timedelta(minutes=42)
    for h in (hour - timedelta(hours=5), hour - timedelta(hours=1)):
        m.UsageHour.objects.create(deployment=dep, hour=h, calls=3)
    # The usage writer keeps the last call with the rows (as the traces receiver does).
    usage.record_calls({dep.pk: last_call})

    body = api(f"/api/v1/deployments/{dep.pk}/").json()
    listed = next(
        r for r in api("/api/v1/deployments/").json()["results"] if r["id"] == dep.pk
    )

    assert body["identities"] == [{"id": bound.pk, "name": "svc-bound"}]
    assert parse_datetime(body["last_call_at"]) == last_call
    assert listed == body
    never_called = api(f"/api/v1/deployments/{estate['pinned'].pk}/").json()
    assert (never_called["identities"], never_called["last_call_at"]) == ([], None)


def test_identity_api_and_csv_name_its_model_and_deployments(
    client, api, admin_user, estate
):
    dep = estate["plain"]
    identity = IdentityFactory(
        name="svc-scorer", team=dep.team, model=dep.model, deployments=[dep]
    )
    body = api(f"/api/v1/identities/{identity.pk}/").json()
    assert body["model"] == {"id": dep.model_id, "name": "scorer"}
    assert (body["deployments"], body["deployment_names"]) == (
        [dep.pk],
        ["scorer-plain"],
    )
    client.force_login(admin_user)
    row = _csv_rows(client, reverse("inventory:identity_list"))["svc-scorer"]
    assert (row["model"], row["deployments"]) == ("scorer", "scorer-plain")
    page = client.get(identity.get_absolute_url()).content.decode()
    assert _testid_text(page, "identity-model") == "scorer"


# ---------------------------------------------------------------------------
# Silent
# ---------------------------------------------------------------------------
def test_silent_deployment_is_shown_as_silent_on_list_detail_csv_and_api(
    client, api, admin_user, team_a
):
    now = timezone.now()
    silent = DeploymentFactory(
        name="gone-quiet", model__team=team_a, last_seen_at=now - timedelta(hours=100)
    )
    # Its runtime saw it long ago, but a sync reported it an hour ago: not silent.
    synced = DeploymentFactory(
        name="synced",
        model__team=team_a,
        last_seen_at=now - timedelta(hours=100),
        seen_at=now - timedelta(hours=1),
    )
    answering = DeploymentFactory(name="answering", model__team=team_a)
    withdrawn = DeploymentFactory(
        name="old",
        model__team=team_a,
        status=m.Deployment.Status.WITHDRAWN,
        last_seen_at=now - timedelta(days=60),
    )
    client.force_login(admin_user)

    listed = {
        r["name"]: r["silent"] for r in api("/api/v1/deployments/").json()["results"]
    }
    assert listed == {
        "gone-quiet": True,
        "synced": False,
        "answering": False,
        "old": False,
    }
    rows = _csv_rows(client, reverse("inventory:deployment_list"))
    assert {n: r["silent"] for n, r in rows.items()} == {
        "gone-quiet": "true",
        "synced": "false",
        "answering": "false",
        "old": "false",
    }
    page = client.get(reverse("inventory:deployment_list")).content.decode()
    assert _rows_with_badge(page, "silent") == {"gone-quiet"}
    for dep, shown in (
        (silent, True),
        (synced, False),
        (answering, False),
        (withdrawn, False),
    ):
        html = client.get(dep.get_absolute_url()).content.decode()
        assert ('data-testid="silent"' in html) is shown, dep.name
    # The list filter is the same rule.
    filtered = client.get(reverse("inventory:deployment_list") + "?risk=silent")
    assert "gone-quiet" in filtered.content.decode()
    assert "synced" not in filtered.content.decode()

    # The policy's number decides: at 200 hours nobody here is silent.
    services.policy_update(actor=admin_user, silent_after_hours=200)
    assert not any(r["silent"] for r in api("/api/v1/deployments/").json()["results"])
    assert (
        'data-testid="silent"'
        not in client.get(silent.get_absolute_url()).content.decode()
    )


def test_silent_identity_is_shown_as_silent(client, api, admin_user, team_a):
    now = timezone.now()
    quiet = IdentityFactory(
        name="svc-quiet",
        team=team_a,
        source="gcp_keys:1",
        seen_at=now - timedelta(days=5),
    )
    fresh = IdentityFactory(
        name="svc-fresh",
        team=team_a,
        source="gcp_keys:1",
        seen_at=now - timedelta(hours=2),
    )
    typed = IdentityFactory(name="svc-typed", team=team_a)  # no source to fall silent
    revoked = IdentityFactory(
        name="svc-revoked",
        team=team_a,
        source="gcp_keys:1",
        status=m.NonHumanIdentity.Status.REVOKED,
        seen_at=now - timedelta(days=5),
    )
    client.force_login(admin_user)

    listed = {
        r["name"]: r["silent"]
        for r in api("/api/v1/identities/").json()["results"]
        if r["name"].startswith("svc-")  # not the API token's own identity
    }
    assert listed == {
        "svc-quiet": True,
        "svc-fresh": False,
        "svc-typed": False,
        "svc-revoked": False,
    }
    rows = _csv_rows(client, reverse("inventory:identity_list"))
    assert rows["svc-quiet"]["silent"] == "true"
    assert rows["svc-fresh"]["silent"] == "false"
    for identity, shown in (
        (quiet, True),
        (fresh, False),
        (typed, False),
        (revoked, False),
    ):
        html = client.get(identity.get_absolute_url()).content.decode()
        assert ('data-testid="silent"' in html) is shown, identity.name
    policy = selectors.policy_current()
    assert set(
        m.NonHumanIdentity.objects.silent(policy).values_list("name", flat=True)
    ) == {"svc-quiet"}
    filtered = client.get(reverse("inventory:identity_list") + "?risk=silent")
    assert "svc-quiet" in filtered.content.decode()
    assert "svc-fresh" not in filtered.content.decode()


def test_a_withdrawn_deployment_is_not_running_in_its_version(client, admin_user):
    version = ModelVersionFactory(version="3.1")
    DeploymentFactory(name="live-one", model=version.model, observed_version=version)
    DeploymentFactory(
        name="pulled-one",
        model=version.model,
        observed_version=version,
        status=m.Deployment.Status.WITHDRAWN,
    )
    DeploymentFactory(
        name="held-one",
        model=version.model,
        observed_version=version,
        status=m.Deployment.Status.QUARANTINED,
    )
    client.force_login(admin_user)
    html = client.get(version.get_absolute_url()).content.decode()
    running = html.split('data-testid="running-in"', 1)[1].split("</ul>", 1)[0]
    assert re.findall(r"<a [^>]*>([^<]+)</a>", running) == ["held-one", "live-one"]
    assert "Quarantined" in running
