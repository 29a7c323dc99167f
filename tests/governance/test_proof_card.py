"""The proof card's content (governance.proof), on data built for each section and verdict."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from governance import proof
from inventory import models as m
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
    SystemFactory,
    UserFactory,
)
from tests.governance.proof_data import (
    NOW,
    finding,
    grow,
    ready_deployment,
    sources,
    usage,
)

pytestmark = pytest.mark.django_db


def card(deployment, user=None):
    row = proof.deployment_queryset().get(pk=deployment.pk)
    return proof.deployment_proof(row, now=NOW, user=user)


# ---------------------------------------------------------------------------
# What is running
# ---------------------------------------------------------------------------
def test_running_answers_version_baseline_and_sources(team_a):
    deployment, _ = ready_deployment(team_a)
    aws, _, k8s = sources()
    m.FieldChange.objects.create(
        object_type="inventory.deployment",
        object_id=deployment.pk,
        field="endpoint",
        before="https://old.internal",
        after=deployment.endpoint,
        changed_at=NOW - timedelta(days=2),
        source=k8s.source_label,
        run_id=7,
    )
    m.FieldChange.objects.create(
        object_type="inventory.deployment",
        object_id=deployment.pk,
        field="exposure",
        before="external",
        after="internal",
        changed_at=NOW - timedelta(days=1),
        actor_kind="person",
        actor_label="rita",
    )
    running = card(deployment)["running"]

    assert running["version"]["running"] == "4.0"
    assert running["version"]["registered"] is True
    assert running["version"]["digest"] == "sha256:abc"
    assert running["baseline"]["kind"] == "model"
    assert running["baseline"]["version"]["version"] == "4.0"
    assert running["matches_baseline"] is True
    assert running["environment"] == "production"
    assert running["platform_locator"] == "prod/scorer"
    assert running["source"]["name"] == "Prod cluster"
    assert running["first_seen_at"] == (NOW - timedelta(days=40)).isoformat()
    fields = {f["field"]: f for f in running["fields"]}
    endpoint = fields["endpoint"]["last_change"]
    assert endpoint["before"] == "https://old.internal"
    assert endpoint["by"] == {
        "kind": "source",
        "label": "Prod cluster",
        "source": {
            "id": k8s.pk,
            "kind": "kubernetes",
            "name": "Prod cluster",
            "label": k8s.source_label,
            "url": f"/sources/{k8s.pk}/",
        },
        "run_id": 7,
    }
    assert fields["exposure"]["last_change"]["by"] == {
        "kind": "person",
        "label": "rita",
    }
    assert fields["observed_version"]["last_change"] is None
    assert fields["platform"]["tracked"] is False
    assert running["complete"] is True
    assert aws  # the identity's source exists too


def test_running_shows_drift_an_unregistered_version_and_open_findings(team_a):
    deployment, _ = ready_deployment(team_a)
    other = ModelVersionFactory(model=deployment.model, version="5.0")
    deployment.observed_version = other
    deployment.save(update_fields=["observed_version"])
    open_one = finding(deployment, kind="version_drift", severity=3)
    finding(deployment, kind="missing_owner", status="resolved")
    running = card(deployment)["running"]
    assert running["matches_baseline"] is False
    assert [f["id"] for f in running["findings"]] == [open_one.pk]
    assert running["findings"][0]["severity_label"] == "High"

    deployment.observed_version = None
    deployment.observed_version_label = "sha-deadbeef"
    deployment.save(update_fields=["observed_version", "observed_version_label"])
    running = card(deployment)["running"]
    assert running["version"]["running"] == "sha-deadbeef"
    assert running["version"]["registered"] is False
    assert running["matches_baseline"] is False

    deployment.observed_version_label = ""
    deployment.save(update_fields=["observed_version_label"])
    result = card(deployment)
    assert result["running"]["version"]["registered"] is None
    assert result["running"]["complete"] is False
    assert result["complete"] is False


# ---------------------------------------------------------------------------
# Who can invoke it
# ---------------------------------------------------------------------------
def test_invoke_lists_identities_callers_third_parties_and_unbound(team_a):
    deployment, identity = ready_deployment(team_a)
    vendor = IdentityFactory(
        name="acme-oauth",
        kind=m.NonHumanIdentity.Kind.OAUTH_APP,
        team=team_a,
        deployments=[deployment],
    )
    stranger = IdentityFactory(name="partner-key", vendor="Partner Inc", team=team_a)
    usage(deployment, hour=NOW - timedelta(hours=4), calls=7, service="batch-job")
    usage(
        deployment,
        hour=NOW - timedelta(hours=6),
        calls=3,
        service="partner",
        identity=stranger,
    )
    usage(deployment, hour=NOW - timedelta(days=31), calls=99, service="long-ago")
    invoke = card(deployment)["invoke"]

    names = [i["name"] for i in invoke["identities"]]
    assert names == sorted([identity.name, "acme-oauth"])
    mine = next(i for i in invoke["identities"] if i["id"] == identity.pk)
    assert mine["age_days"] == 100
    assert mine["owner"]["username"] == identity.owner.username
    assert mine["rotated_at"] == (NOW - timedelta(days=10)).isoformat()
    assert mine["revoker"] == "connector"
    assert mine["source"]["name"] == "AWS prod"
    callers = {c["service"]: c for c in invoke["callers"]}
    assert set(callers) == {identity.name, "batch-job", "partner"}  # 31 days ago: out
    assert callers[identity.name]["bound"] is True
    assert callers[identity.name]["calls"] == 50
    assert callers[identity.name]["errors"] == 2
    assert callers["batch-job"]["bound"] is False
    assert callers["partner"]["bound"] is False  # an identity, but not bound to it
    assert callers["partner"]["identity"]["name"] == "partner-key"
    assert [c["service"] for c in invoke["unbound_callers"]] == ["batch-job", "partner"]
    third = {t["name"]: t for t in invoke["third_party"]}
    assert set(third) == {"acme-oauth", "partner-key"}
    assert third["partner-key"]["seen_calling"] is True
    assert vendor.pk in {t["id"] for t in invoke["third_party"]}
    assert invoke["complete"] is False
    assert "2 caller(s)" in invoke["gaps"][0]


def test_invoke_incomplete_without_a_bound_identity(team_a):
    deployment, identity = ready_deployment(team_a)
    identity.deployments.clear()
    m.UsageHour.objects.all().delete()
    invoke = card(deployment)["invoke"]
    assert invoke["identities"] == [] and invoke["callers"] == []
    assert invoke["complete"] is False


# ---------------------------------------------------------------------------
# How quickly it can be withdrawn: each verdict
# ---------------------------------------------------------------------------
def test_ready_when_every_identity_revocable_with_owner_and_window(team_a):
    deployment, identity = ready_deployment(team_a)
    result = card(deployment)
    withdraw = result["withdraw"]
    assert withdraw["verdict"] == proof.READY
    assert withdraw["reasons"][0] == proof.ALL_REVOCABLE
    assert withdraw["plan"][0]["revoker"] == "connector"
    assert withdraw["change_window"]["readable"] is True
    assert withdraw["change_window"]["next"] == "2026-12-01T02:00:00+00:00"
    assert withdraw["change_window"]["note"] == "CAB for model swaps"
    assert "Scale it to zero" in withdraw["quarantine"]["method"]
    assert withdraw["quarantine"]["status_url"].endswith(
        f"/deployments/{deployment.pk}/status/"
    )
    assert withdraw["time_to_withdraw"] == proof.NEVER_WITHDRAWN
    assert withdraw["last_withdrawal"] is None
    assert result["complete"] is True
    assert proof.complete(result) is True


def test_needs_people_when_an_identity_must_be_revoked_by_hand(team_a):
    deployment, identity = ready_deployment(team_a)
    _, gcp, _ = sources()
    identity.source = gcp.source_label
    identity.save(update_fields=["source"])
    withdraw = card(deployment)["withdraw"]
    assert withdraw["verdict"] == proof.NEEDS_PEOPLE
    assert withdraw["reasons"] == [
        proof.MANUAL_REVOKE.format(
            identity=identity.name, who=f"its owner {identity.owner.username}"
        )
    ]
    assert withdraw["plan"][0]["revoker"] == "person"
    assert card(deployment)["complete"] is True  # needs people is still a plan


def test_needs_people_without_a_readable_change_window(team_a):
    deployment, _ = ready_deployment(team_a)
    deployment.change_window = "whenever the team agrees"
    deployment.save(update_fields=["change_window"])
    withdraw = card(deployment)["withdraw"]
    assert withdraw["verdict"] == proof.NEEDS_PEOPLE
    assert withdraw["reasons"][0].startswith(
        "The change window is not machine-readable"
    )
    deployment.change_window = ""
    deployment.save(update_fields=["change_window"])
    assert card(deployment)["withdraw"]["reasons"] == [proof.NO_CHANGE_WINDOW]


def test_not_ready_without_an_owner(team_a):
    deployment, _ = ready_deployment(team_a)
    deployment.owner = None
    deployment.save(update_fields=["owner"])
    result = card(deployment)
    assert result["withdraw"]["verdict"] == proof.NOT_READY
    assert result["withdraw"]["reasons"] == [proof.NO_OWNER]
    assert result["complete"] is False


def test_not_ready_when_nobody_can_revoke_an_identity(team_a):
    deployment, identity = ready_deployment(team_a)
    loose = IdentityFactory(
        name="hand-made-key", team=team_a, owner=None, deployments=[deployment]
    )
    revoked = IdentityFactory(
        name="old-key",
        team=team_a,
        owner=None,
        status=m.NonHumanIdentity.Status.REVOKED,
        deployments=[deployment],
    )
    withdraw = card(deployment)["withdraw"]
    assert withdraw["verdict"] == proof.NOT_READY
    assert withdraw["reasons"] == [proof.NOBODY_CAN_REVOKE.format(identity=loose.name)]
    plan = {p["identity"]["name"]: p for p in withdraw["plan"]}
    assert plan[revoked.name]["revoker"] == "none"
    assert plan[revoked.name]["how"].startswith("Nothing to do")
    assert plan[loose.name]["how"].startswith("Nobody can")


def test_downstream_follows_edges_transitively_and_hides_other_teams(
    team_a, team_b, owner
):
    deployment, _ = ready_deployment(team_a, owner=owner)
    system = SystemFactory(team=team_a, name="Loan desk")
    first = DeploymentFactory(model=deployment.model, team=team_a, system=system)
    second = DeploymentFactory(model=deployment.model, team=team_a)
    theirs = DeploymentFactory(model=AIModelFactory(team=team_b), team=team_b)
    unrelated = DeploymentFactory(model=deployment.model, team=team_a)
    m.Dependency.objects.create(upstream=deployment, downstream=first)
    m.Dependency.objects.create(upstream=first, downstream=second)
    m.Dependency.objects.create(upstream=second, downstream=theirs)
    m.Dependency.objects.create(upstream=second, downstream=deployment)  # a cycle
    m.Dependency.objects.create(upstream=unrelated, downstream=deployment)  # upstream

    everything = card(deployment)["withdraw"]["downstream"]
    assert [(d["name"], d["depth"]) for d in everything["deployments"]] == [
        (first.name, 1),
        (second.name, 2),
        (theirs.name, 3),
    ]
    assert everything["systems"][0]["name"] == "Loan desk"
    as_owner = card(deployment, user=owner)["withdraw"]["downstream"]
    assert [d["name"] for d in as_owner["deployments"]] == [first.name, second.name]
    assert as_owner["hidden"] == 1 and as_owner["count"] == 3


def test_downstream_is_bounded(team_a, settings, monkeypatch):
    deployment, _ = ready_deployment(team_a)
    monkeypatch.setattr(proof, "DOWNSTREAM_MAX_DEPTH", 2)
    chain = [deployment]
    for _ in range(4):
        nxt = DeploymentFactory(model=deployment.model, team=team_a)
        m.Dependency.objects.create(upstream=chain[-1], downstream=nxt)
        chain.append(nxt)
    down = card(deployment)["withdraw"]["downstream"]
    assert [d["id"] for d in down["deployments"]] == [chain[1].pk, chain[2].pk]
    monkeypatch.setattr(proof, "DOWNSTREAM_MAX_DEPTH", 10)
    monkeypatch.setattr(proof, "DOWNSTREAM_MAX_NODES", 3)
    down = card(deployment)["withdraw"]["downstream"]
    assert len(down["deployments"]) == 3 and down["truncated"] is True


def test_time_to_withdraw_from_the_history_and_the_last_calls(team_a):
    deployment, identity = ready_deployment(team_a)
    withdrawn_at = NOW - timedelta(hours=10, minutes=20)  # 00:10
    m.FieldChange.objects.create(
        object_type="inventory.deployment",
        object_id=deployment.pk,
        field="status",
        before="active",
        after="withdrawn",
        changed_at=withdrawn_at,
        actor_kind="person",
        actor_label="rita",
    )
    deployment.status = m.Deployment.Status.WITHDRAWN
    deployment.save(update_fields=["status"])
    m.UsageHour.objects.all().delete()
    usage(deployment, hour=withdrawn_at.replace(minute=0) - timedelta(hours=1))
    last = withdrawn_at.replace(minute=0) + timedelta(hours=2)  # 02:00-03:00
    usage(deployment, hour=last, service="late")
    withdrawal = card(deployment)["withdraw"]["last_withdrawal"]
    assert withdrawal["withdrawn_at"] == withdrawn_at.isoformat()
    assert withdrawal["by"] == {"kind": "person", "label": "rita"}
    assert withdrawal["last_call_hour"] == last.isoformat()
    # From 00:10 to the end of the 02:00 hour: 2 h 50 min.
    assert withdrawal["seconds"] == 2 * 3600 + 50 * 60
    assert withdrawal["display"] == "2 h 50 min"
    assert withdrawal["still_withdrawn"] is True

    m.UsageHour.objects.filter(caller_service="late").delete()
    assert card(deployment)["withdraw"]["last_withdrawal"]["seconds"] == 0


def test_the_card_is_json_safe(team_a):
    deployment, _ = ready_deployment(team_a)
    grow(deployment, 3)
    result = card(deployment)
    assert json.loads(json.dumps(result)) == result


# ---------------------------------------------------------------------------
# The model card
# ---------------------------------------------------------------------------
def test_model_card_sums_up_each_deployment(team_a, owner, team_b):
    deployment, _ = ready_deployment(team_a, owner=owner)
    model = deployment.model
    ownerless = DeploymentFactory(
        model=model, team=team_a, observed_version=model.baseline_version
    )
    hidden = DeploymentFactory(model=model, team=team_b, owner=UserFactory())
    ModelVersionFactory(model=model, version="5.0", approval="pending")
    open_one = finding(deployment)
    model.risk_tier = 2
    model.save(update_fields=["risk_tier"])
    row = proof.model_queryset().get(pk=model.pk)

    result = proof.model_proof(row, now=NOW)
    assert result["subject"]["risk_tier"] == 2
    assert [v["version"] for v in result["versions"]][0] == "5.0"
    assert {v["version"]: v["is_baseline"] for v in result["versions"]} == {
        "4.0": True,
        "5.0": False,
    }
    by_name = {d["name"]: d for d in result["deployments"]}
    assert set(by_name) == {deployment.name, ownerless.name, hidden.name}
    ready = by_name[deployment.name]
    assert ready["withdraw"]["verdict"] == proof.READY
    assert ready["running"]["matches_baseline"] is True
    assert ready["invoke"] == {
        "identities": 1,
        "third_party": 0,
        "calls": 50,
        "unbound_callers": False,
        "complete": True,
    }
    assert ready["complete"] is True
    assert by_name[ownerless.name]["withdraw"]["verdict"] == proof.NOT_READY
    # The other team's has an owner but no change window.
    assert result["verdicts"] == {"ready": 1, "needs_people": 1, "not_ready": 1}
    assert [f["id"] for f in result["findings"]] == [open_one.pk]
    assert result["complete"] is False

    scoped = proof.model_proof(row, now=NOW, user=owner)
    assert hidden.name not in {d["name"] for d in scoped["deployments"]}

    # The summary agrees with the deployment's own card.
    full = card(deployment)
    assert full["withdraw"]["verdict"] == ready["withdraw"]["verdict"]
    assert full["complete"] == ready["complete"]


# ---------------------------------------------------------------------------
# Query counts: constant at two sizes
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("size", [2, 12])
def test_deployment_card_queries_are_bounded(
    team_a, size, django_assert_max_num_queries
):
    deployment, _ = ready_deployment(team_a)
    grow(deployment, size)
    row = proof.deployment_queryset().get(pk=deployment.pk)
    with django_assert_max_num_queries(7):
        result = proof.deployment_proof(row, now=NOW)
    assert len(result["invoke"]["identities"]) == size + 1
    assert result["withdraw"]["last_withdrawal"]["by"]["label"] == "rita"
    assert len(result["running"]["findings"]) == size
    assert len(result["withdraw"]["downstream"]["deployments"]) == size


@pytest.mark.parametrize("size", [2, 12])
def test_model_card_queries_are_bounded(team_a, size, django_assert_max_num_queries):
    deployment, _ = ready_deployment(team_a)
    grow(deployment, size)
    for _ in range(size):
        ready_deployment(team_a, name=f"extra-{_}")
        extra = DeploymentFactory(model=deployment.model, team=team_a)
        IdentityFactory(team=team_a, deployments=[extra])
    row = proof.model_queryset().get(pk=deployment.model_id)
    with django_assert_max_num_queries(5):
        result = proof.model_proof(row, now=NOW)
    assert len(result["deployments"]) == 1 + 2 * size


# ---------------------------------------------------------------------------
# completeness_share: the SQL rule agrees with complete()
# ---------------------------------------------------------------------------
def _variety(team, owner):
    """One deployment per way of being complete or not."""
    _, gcp, _ = sources()
    built = []
    ready, _ = ready_deployment(team, owner=owner, name="ready")
    built.append(ready)
    manual, ident = ready_deployment(team, owner=owner, name="manual")
    ident.source = gcp.source_label
    ident.save(update_fields=["source"])
    built.append(manual)
    ownerless, _ = ready_deployment(team, owner=owner, name="ownerless")
    ownerless.owner = None
    ownerless.save(update_fields=["owner"])
    built.append(ownerless)
    unknown, _ = ready_deployment(team, owner=owner, name="unknown-version")
    unknown.observed_version = None
    unknown.save(update_fields=["observed_version"])
    built.append(unknown)
    label, _ = ready_deployment(team, owner=owner, name="label-version")
    label.observed_version = None
    label.observed_version_label = "sha-1"
    label.save(update_fields=["observed_version", "observed_version_label"])
    built.append(label)
    stranger, _ = ready_deployment(team, owner=owner, name="stranger")
    usage(stranger, hour=NOW - timedelta(hours=1), service="who-is-this")
    built.append(stranger)
    old_stranger, _ = ready_deployment(team, owner=owner, name="old-stranger")
    usage(old_stranger, hour=NOW - timedelta(days=31), service="gone")
    built.append(old_stranger)
    foreign, _ = ready_deployment(team, owner=owner, name="foreign-identity")
    other_ident = IdentityFactory(team=team, owner=owner)
    usage(foreign, hour=NOW - timedelta(hours=2), identity=other_ident)
    built.append(foreign)
    nobody, _ = ready_deployment(team, owner=owner, name="nobody")
    IdentityFactory(team=team, owner=None, deployments=[nobody])
    built.append(nobody)
    revoked_loose, _ = ready_deployment(team, owner=owner, name="revoked-loose")
    IdentityFactory(
        team=team, owner=None, status="revoked", deployments=[revoked_loose]
    )
    built.append(revoked_loose)
    unbound, ident = ready_deployment(team, owner=owner, name="no-identity")
    ident.deployments.clear()
    m.UsageHour.objects.filter(deployment=unbound).delete()
    built.append(unbound)
    staging, _ = ready_deployment(team, owner=owner, name="staging")
    staging.environment = "staging"
    staging.save(update_fields=["environment"])
    withdrawn, _ = ready_deployment(team, owner=owner, name="withdrawn")
    withdrawn.status = "withdrawn"
    withdrawn.save(update_fields=["status"])
    return built


def test_completeness_share_agrees_with_complete(
    team_a, team_b, owner, other_owner, admin_user, django_assert_max_num_queries
):
    built = _variety(team_a, owner)
    ready_deployment(team_b, owner=other_owner, name="theirs")
    expected = {d.name: card(d)["complete"] for d in built}
    assert expected == {
        "ready": True,
        "manual": True,
        "ownerless": False,
        "unknown-version": False,
        "label-version": True,
        "stranger": False,
        "old-stranger": True,
        "foreign-identity": False,
        "nobody": False,
        "revoked-loose": True,
        "no-identity": False,
    }
    n_complete = sum(expected.values())
    # The owner reads team A (their deployments); the admin reads team B's too.
    assert proof.completeness_share(owner, now=NOW) == (n_complete, len(built))
    admin_user.refresh_from_db()
    with django_assert_max_num_queries(2):
        share = proof.completeness_share(admin_user, now=NOW)
    assert share == (n_complete + 1, len(built) + 1)
    # Each deployment alone, through the same SQL: the same answer as its card.
    annotated = m.Deployment.objects.annotate(**proof.proof_annotations(NOW))
    in_sql = set(annotated.filter(proof.complete_q()).values_list("name", flat=True))
    assert {n for n, ok in expected.items() if ok} <= in_sql
    assert not ({n for n, ok in expected.items() if not ok} & in_sql)


def test_an_owner_sees_another_teams_identities_counted_not_named(
    team_a, team_b, owner
):
    deployment, mine = ready_deployment(team_a, owner=owner)
    theirs = IdentityFactory(
        name="zq-their-key",
        team=team_b,
        owner=UserFactory(username="zq-their-owner"),
        deployments=[deployment],
    )
    caller = IdentityFactory(name="zq-their-caller", team=team_b, vendor="Zq Corp")
    usage(deployment, hour=NOW - timedelta(hours=1), identity=caller, service="x")
    as_owner = card(deployment, user=owner)
    text = json.dumps(as_owner)
    assert "zq-" not in text, "another team's identity or owner is named"
    hidden = [i for i in as_owner["invoke"]["identities"] if i["hidden"]]
    assert len(hidden) == 1 and hidden[0]["name"] == proof.HIDDEN_IDENTITY
    assert hidden[0]["owner"]["hidden"] is True
    # The verdict is the same for every reader: it reads every bound identity.
    full = card(deployment)
    assert full["withdraw"]["verdict"] == as_owner["withdraw"]["verdict"]
    assert theirs.name in json.dumps(full) and caller.name in json.dumps(full)
    assert {i["name"] for i in full["invoke"]["identities"]} == {mine.name, theirs.name}
    model = proof.model_proof(
        proof.model_queryset().get(pk=deployment.model_id), now=NOW, user=owner
    )
    assert "zq-" not in json.dumps(model)
