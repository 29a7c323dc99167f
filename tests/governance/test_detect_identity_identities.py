"""The identity detectors (governance.detectors.identities): each kind opens, updates its
evidence, resolves by itself and reopens, on data built for it, with time passing; a
second run changes nothing; clean identities have none; a scan's queries do not grow with
the number of identities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance import detection
from governance.detectors import identities as detectors
from governance.models import Finding, FindingEvent
from inventory import models as im
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
K = Finding.Kind
NOW = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
IDENTITY_KINDS = [
    K.ORPHANED_IDENTITY,
    K.STALE_CREDENTIAL,
    K.EXPIRED_ACTIVE,
    K.UNUSED_CREDENTIAL,
    K.MISSING_OWNER,
]


def days(n: float) -> timedelta:
    return timedelta(days=n)


def run(kind: str, now: datetime = NOW) -> detection.RunResult:
    return detection.run(kinds=[kind], now=now)


def finding(kind: str, identity: im.NonHumanIdentity) -> Finding:
    return Finding.objects.get(
        kind=kind, subject_type="identity", subject_id=identity.pk
    )


def state() -> tuple[list, int]:
    """Everything a run could change but `last_seen_at` (and `updated_at`)."""
    rows = list(
        Finding.objects.order_by("pk").values_list(
            "kind",
            "subject_type",
            "subject_id",
            "status",
            "severity",
            "tier",
            "evidence",
            "evidence_key",
            "times_opened",
            "resolved_at",
            "queue",
            "assignee_id",
        )
    )
    return rows, FindingEvent.objects.count()


def assert_twice_changes_nothing(kind: str, now: datetime = NOW) -> None:
    before = state()
    result = run(kind, now)
    assert not {"opened", "reopened", "resolved", "evidence_changed"} & set(
        result.counts
    )
    assert state() == before


def healthy(**kw) -> im.NonHumanIdentity:
    """An identity no identity rule flags at NOW: owned, bound to a live deployment,
    recently rotated and used, not expired."""
    defaults = {
        "owner": UserFactory(),
        "issued_at": NOW - days(400),
        "rotated_at": NOW - days(10),
        "last_used_at": NOW - days(1),
        "expires_at": NOW + days(100),
        "deployments": [DeploymentFactory()],
    }
    return IdentityFactory(**(defaults | kw))


def update(obj, **fields) -> None:
    type(obj).objects.filter(pk=obj.pk).update(**fields)


def events(f: Finding) -> list[str]:
    return list(f.events.order_by("at", "id").values_list("action", flat=True))


# ---------------------------------------------------------------------------
# Orphaned identity
# ---------------------------------------------------------------------------
def test_orphaned_identity_lifecycle():
    model = AIModelFactory()
    d1 = DeploymentFactory(model=model)
    d2 = DeploymentFactory(model=model)
    update(d1, risk_tier=1)
    update(d2, risk_tier=3)
    nhi = healthy(model=model, deployments=[d1, d2])
    clean = healthy()
    assert run(K.ORPHANED_IDENTITY).counts["opened"] == 0

    # Both deployments withdrawn: orphaned; its tier the riskiest bound deployment's.
    im.Deployment.objects.filter(pk__in=[d1.pk, d2.pk]).update(status="withdrawn")
    assert run(K.ORPHANED_IDENTITY).counts["opened"] == 1
    f = finding(K.ORPHANED_IDENTITY, nhi)
    assert f.status == "open" and f.tier == 1 and f.identity_id == nhi.pk
    assert f.severity == detection.severity_for(K.ORPHANED_IDENTITY, 1)
    assert f.evidence["facts"]["reasons"] == [detectors.DEPLOYMENTS_GONE]
    assert f.evidence["facts"]["deployment_count"] == 2
    assert f.team_id == nhi.team_id and f.owner_id == nhi.owner_id
    assert f.queue == "owner" and f.assignee_id == nhi.owner_id
    assert {r["what"] for r in f.evidence["records"]} >= {"issued", "last used"}
    assert_twice_changes_nothing(K.ORPHANED_IDENTITY)

    # The model retires too: the facts say so (evidence changed, same finding).
    update(model, lifecycle="retired")
    assert run(K.ORPHANED_IDENTITY).counts["evidence_changed"] == 1
    f.refresh_from_db()
    assert f.evidence["facts"]["reasons"] == [
        detectors.RETIRED_MODEL,
        detectors.DEPLOYMENTS_GONE,
    ]
    assert Finding.objects.filter(kind=K.ORPHANED_IDENTITY).count() == 1

    # Back in service: the model active again and a live deployment bound.
    update(model, lifecycle="active")
    update(d2, status="active")
    assert run(K.ORPHANED_IDENTITY).counts["resolved"] == 1
    f.refresh_from_db()
    assert f.status == "resolved" and f.resolved_at == NOW

    # Unbound from everything: bound to nothing, the same finding reopens.
    nhi.deployments.clear()
    update(nhi, model=None)
    assert run(K.ORPHANED_IDENTITY).counts["reopened"] == 1
    f.refresh_from_db()
    assert f.status == "open" and f.times_opened == 2 and f.tier == 4
    assert f.evidence["facts"]["reasons"] == [detectors.BOUND_TO_NOTHING]
    assert events(f) == ["opened", "evidence", "resolved", "reopened"]
    assert not Finding.objects.filter(subject_id=clean.pk, subject_type="identity")


def test_orphaned_rules_and_clean_identities():
    retired = AIModelFactory(lifecycle="retired")
    live_model = AIModelFactory()
    of_retired_model = healthy(model=retired)
    bound_to_retired_deployment = healthy(
        deployments=[DeploymentFactory(model=retired)]
    )
    nothing = healthy(deployments=[])
    # Not orphaned: a model of its own and no deployment; a live deployment beside a
    # withdrawn one; an orphan that is no longer active.
    only_model = healthy(model=live_model, deployments=[])
    mixed = healthy(
        deployments=[DeploymentFactory(status="withdrawn"), DeploymentFactory()]
    )
    revoked = healthy(deployments=[], status="revoked")
    run(K.ORPHANED_IDENTITY)
    found = dict(
        Finding.objects.filter(kind=K.ORPHANED_IDENTITY).values_list(
            "subject_id", "evidence"
        )
    )
    assert set(found) == {
        of_retired_model.pk,
        bound_to_retired_deployment.pk,
        nothing.pk,
    }
    assert found[of_retired_model.pk]["facts"]["reasons"] == [detectors.RETIRED_MODEL]
    assert found[bound_to_retired_deployment.pk]["facts"]["reasons"] == [
        detectors.DEPLOYMENTS_GONE
    ]
    assert found[nothing.pk]["facts"]["reasons"] == [detectors.BOUND_TO_NOTHING]
    for clean in (only_model, mixed, revoked):
        assert clean.pk not in found
    # The inventory's rule is the same one (an identity list filtered by it agrees).
    assert set(
        im.NonHumanIdentity.objects.orphaned().values_list("pk", flat=True)
    ) == set(found)


# ---------------------------------------------------------------------------
# Stale credential (not rotated)
# ---------------------------------------------------------------------------
def test_stale_credential_lifecycle_with_time_passing():
    nhi = healthy(issued_at=NOW - days(200), rotated_at=None)
    clean = healthy()
    assert run(K.STALE_CREDENTIAL).counts["opened"] == 1
    f = finding(K.STALE_CREDENTIAL, nhi)
    assert f.evidence["facts"] == {"ever_rotated": False, "unrotated_after_days": 90}
    assert_twice_changes_nothing(K.STALE_CREDENTIAL)

    # Rotated, but long ago: still stale, other facts.
    update(nhi, rotated_at=NOW - days(120))
    assert run(K.STALE_CREDENTIAL).counts["evidence_changed"] == 1
    f.refresh_from_db()
    assert f.evidence["facts"]["ever_rotated"] is True

    # The policy's number is part of the evidence.
    im.Policy.objects.update_or_create(pk=1, defaults={"unrotated_after_days": 100})
    assert run(K.STALE_CREDENTIAL).counts["evidence_changed"] == 1

    # Rotated 80 days ago: within the policy, resolved.
    update(nhi, rotated_at=NOW - days(80))
    assert run(K.STALE_CREDENTIAL).counts["resolved"] == 1
    f.refresh_from_db()
    assert f.status == "resolved"

    # Time passes: 21 days later the rotation is 101 days old and it reopens.
    later = NOW + days(21)
    result = run(K.STALE_CREDENTIAL, later)
    assert result.counts["reopened"] == 1
    f.refresh_from_db()
    assert f.status == "open" and f.times_opened == 2 and f.opened_at == later
    # The clean one, rotated 10 days before NOW, is still fine then.
    assert not Finding.objects.filter(subject_id=clean.pk, subject_type="identity")
    assert_twice_changes_nothing(K.STALE_CREDENTIAL, later)


# ---------------------------------------------------------------------------
# Expired but still active
# ---------------------------------------------------------------------------
def test_expired_active_lifecycle_with_time_passing():
    nhi = healthy(expires_at=NOW + timedelta(hours=1))
    clean = healthy()
    assert run(K.EXPIRED_ACTIVE).counts.get("opened", 0) == 0

    # An hour and a bit later it has expired and is still active.
    later = NOW + timedelta(hours=2)
    assert run(K.EXPIRED_ACTIVE, later).counts["opened"] == 1
    f = finding(K.EXPIRED_ACTIVE, nhi)
    assert f.evidence["facts"]["expires_at"] == (NOW + timedelta(hours=1)).isoformat()
    assert f.severity == detection.severity_for(K.EXPIRED_ACTIVE, f.tier)
    assert_twice_changes_nothing(K.EXPIRED_ACTIVE, later)

    # The provider reports another (still past) expiry.
    update(nhi, expires_at=NOW - days(3))
    assert run(K.EXPIRED_ACTIVE, later).counts["evidence_changed"] == 1

    # Revoked: resolved. Active again: reopened.
    update(nhi, status="revoked")
    assert run(K.EXPIRED_ACTIVE, later).counts["resolved"] == 1
    update(nhi, status="active")
    assert run(K.EXPIRED_ACTIVE, later).counts["reopened"] == 1
    f.refresh_from_db()
    assert f.status == "open" and f.times_opened == 2
    assert events(f) == ["opened", "evidence", "resolved", "reopened"]
    assert not Finding.objects.filter(subject_id=clean.pk, subject_type="identity")


# ---------------------------------------------------------------------------
# Unused credential
# ---------------------------------------------------------------------------
def test_unused_credential_lifecycle_with_time_passing():
    nhi = healthy(last_used_at=NOW - days(100))
    never = healthy(issued_at=NOW - days(10), last_used_at=None)
    clean = healthy()
    assert run(K.UNUSED_CREDENTIAL).counts["opened"] == 1
    f = finding(K.UNUSED_CREDENTIAL, nhi)
    assert f.evidence["facts"] == {"ever_used": True, "unused_after_days": 90}
    assert_twice_changes_nothing(K.UNUSED_CREDENTIAL)

    # Its use is forgotten (never used, issued long ago): other facts.
    update(nhi, last_used_at=None)
    assert run(K.UNUSED_CREDENTIAL).counts["evidence_changed"] == 1
    f.refresh_from_db()
    assert f.evidence["facts"]["ever_used"] is False
    assert "never used" in f.title

    # Used yesterday: resolved.
    update(nhi, last_used_at=NOW - days(1))
    assert run(K.UNUSED_CREDENTIAL).counts["resolved"] == 1

    # 90 days pass: it, the never-used one (issued 100 days before) and the clean one
    # (used a day before NOW) are all unused.
    later = NOW + days(90)
    result = run(K.UNUSED_CREDENTIAL, later)
    assert result.counts["reopened"] == 1 and result.counts["opened"] == 2
    opened = set(
        Finding.objects.filter(kind=K.UNUSED_CREDENTIAL, status="open").values_list(
            "subject_id", flat=True
        )
    )
    assert opened == {nhi.pk, never.pk, clean.pk}
    assert_twice_changes_nothing(K.UNUSED_CREDENTIAL, later)


# ---------------------------------------------------------------------------
# Missing owner (identities)
# ---------------------------------------------------------------------------
def test_identity_missing_owner_lifecycle():
    nhi = healthy(owner=None)
    clean = healthy()
    disabled = healthy(owner=None, status="disabled")
    run(K.MISSING_OWNER)
    f = finding(K.MISSING_OWNER, nhi)
    assert f.status == "open" and f.queue == "team" and f.assignee_id is None
    assert f.evidence["facts"] == {"owner": None, "team_id": nhi.team_id}
    # The deployment detector's findings are its own (subject deployment): the
    # factory's deployments have no owner either.
    assert Finding.objects.filter(kind=K.MISSING_OWNER, subject_type="deployment")
    assert not Finding.objects.filter(
        subject_type="identity", subject_id__in=[clean.pk, disabled.pk]
    )
    assert_twice_changes_nothing(K.MISSING_OWNER)

    other_team = IdentityFactory().team
    update(nhi, team=other_team)
    assert run(K.MISSING_OWNER).counts["evidence_changed"] == 1

    owner = UserFactory()
    update(nhi, owner=owner)
    run(K.MISSING_OWNER)
    f.refresh_from_db()
    assert f.status == "resolved"
    update(nhi, owner=None)
    run(K.MISSING_OWNER)
    f.refresh_from_db()
    assert f.status == "open" and f.times_opened == 2
    assert events(f) == ["opened", "evidence", "resolved", "reopened"]


def test_a_change_scope_reaches_an_identity_through_its_deployment():
    d = DeploymentFactory()
    nhi = healthy(deployments=[d])
    other = healthy(deployments=[DeploymentFactory()])
    im.Deployment.objects.filter(
        pk__in=[d.pk, *other.deployments.values_list("pk", flat=True)]
    ).update(status="withdrawn")
    detection.run(
        kinds=[K.ORPHANED_IDENTITY],
        scope=detection.scope_for_changes([("inventory.deployment", d.pk)]),
        now=NOW,
    )
    assert list(
        Finding.objects.filter(kind=K.ORPHANED_IDENTITY).values_list(
            "subject_id", flat=True
        )
    ) == [nhi.pk]


# ---------------------------------------------------------------------------
# Every identity kind together
# ---------------------------------------------------------------------------
def test_a_clean_identity_has_no_finding_of_any_kind():
    clean = healthy()
    bad = healthy(
        owner=None,
        deployments=[],
        issued_at=NOW - days(400),
        rotated_at=None,
        last_used_at=None,
        expires_at=NOW - days(1),
    )
    detection.run(kinds=IDENTITY_KINDS, now=NOW)
    assert set(
        Finding.objects.filter(subject_type="identity").values_list("kind", flat=True)
    ) == set(IDENTITY_KINDS)
    assert set(
        Finding.objects.filter(subject_type="identity").values_list(
            "subject_id", flat=True
        )
    ) == {bad.pk}
    assert not Finding.objects.filter(subject_type="identity", subject_id=clean.pk)


def _flagged(n: int) -> None:
    """n identities each held by every identity rule, bound to two deployments."""
    retired = AIModelFactory(lifecycle="retired")
    for _ in range(n):
        IdentityFactory(
            model=retired,
            deployments=[DeploymentFactory(), DeploymentFactory(status="withdrawn")],
            issued_at=NOW - days(400),
            rotated_at=None,
            last_used_at=None,
            expires_at=NOW - days(1),
        )


def _scan_queries(detector) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as ctx:
        conditions = list(detector.scan(now=NOW, ids=None, id_range=None))
    return len(ctx.captured_queries), len(conditions)


@pytest.mark.parametrize("detector", detectors.DETECTORS, ids=lambda d: d.kind)
def test_a_scan_costs_the_same_queries_for_3_or_40_identities(
    detector, django_assert_max_num_queries
):
    _flagged(3)
    few, found = _scan_queries(detector)
    assert found == 3
    _flagged(37)
    with django_assert_max_num_queries(few):
        conditions = list(detector.scan(now=NOW, ids=None, id_range=None))
    assert len(conditions) == 40
    assert few <= 3


def test_a_full_run_of_every_identity_kind_does_not_grow_with_identities(
    django_assert_max_num_queries,
):
    _flagged(3)
    with CaptureQueriesContext(connection) as ctx:
        detection.run(kinds=IDENTITY_KINDS, now=NOW, notify=False)
    few = len(ctx.captured_queries)
    Finding.objects.all().delete()
    _flagged(20)
    with django_assert_max_num_queries(few):
        detection.run(kinds=IDENTITY_KINDS, now=NOW, notify=False)
    assert Finding.objects.filter(subject_type="identity").count() == 23 * len(
        IDENTITY_KINDS
    )


def test_a_false_positive_on_a_stale_credential_holds_as_days_pass():
    nhi = healthy(issued_at=NOW - days(200), rotated_at=None)
    run(K.STALE_CREDENTIAL)
    f = finding(K.STALE_CREDENTIAL, nhi)
    Finding.objects.filter(pk=f.pk).update(
        status="false_positive", suppressed_key=f.evidence_key
    )
    run(K.STALE_CREDENTIAL, NOW + days(30))
    f.refresh_from_db()
    assert f.status == "false_positive"
    # Rotated once, still long ago: other facts, it opens again.
    update(nhi, rotated_at=NOW - days(150))
    run(K.STALE_CREDENTIAL, NOW + days(30))
    f.refresh_from_db()
    assert f.status == "open"
