"""The deployment-side finding kinds, each on data built for it: opened, updated when the
evidence changes, resolved when the condition clears (time passing included), reopened
when it returns; and a second run that changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from governance import detection
from governance.approved_state import approved_state_record
from governance.models import Finding, FindingEvent
from inventory import history, services
from inventory import models as im
from sources import models as sm
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    ModelVersionFactory,
)

pytestmark = pytest.mark.django_db
K = Finding.Kind
DEPLOYMENT = "inventory.deployment"


def run(kind, **kw):
    return detection.run(kinds=[kind], **kw).by_kind.get(kind, {})


def finding(kind, subject_id):
    return Finding.objects.get(kind=kind, subject_id=subject_id)


def lifecycle_events(f):
    return list(f.events.values_list("action", flat=True))


def update(obj, **fields):
    type(obj).objects.filter(pk=obj.pk).update(**fields)
    obj.refresh_from_db()


@pytest.fixture
def committee(risk):
    return risk


# ---------------------------------------------------------------------------
# unapproved version
# ---------------------------------------------------------------------------
def test_unapproved_version_lifecycle():
    v = ModelVersionFactory(approval="pending")
    d = DeploymentFactory(model=v.model, observed_version=v)
    DeploymentFactory(
        model=v.model, observed_version=ModelVersionFactory(model=v.model)
    )

    assert run(K.UNAPPROVED_VERSION) == {"opened": 1}
    f = finding(K.UNAPPROVED_VERSION, d.pk)
    assert f.evidence["facts"] == {
        "observed_version_id": v.pk,
        "version": v.version,
        "approval": "pending",
    }
    assert (
        f.severity == Finding.Severity.MEDIUM
    )  # high, one lower on a tier 4 deployment
    assert f.evidence["records"][0]["what"] == "first seen running it"

    update(v, approval="rejected")
    assert run(K.UNAPPROVED_VERSION) == {"evidence_changed": 1, "updated": 1}
    assert (
        finding(K.UNAPPROVED_VERSION, d.pk).evidence["facts"]["approval"] == "rejected"
    )

    update(v, approval="approved")
    assert run(K.UNAPPROVED_VERSION) == {"resolved": 1}

    update(v, approval="deprecated")
    assert run(K.UNAPPROVED_VERSION) == {"reopened": 1}
    f.refresh_from_db()
    assert f.status == "open" and f.times_opened == 2
    assert lifecycle_events(f) == ["opened", "evidence", "resolved", "reopened"]


def test_a_version_the_registry_does_not_have_is_unapproved_and_dated_by_history():
    d = DeploymentFactory(observed_version_label="9.9-hotfix")
    history.record_changes(
        deltas=[
            history.Delta(
                DEPLOYMENT,
                d.pk,
                "observed_version",
                {"observed_version_id": None, "observed_version_label": "9.9"},
                {"observed_version_id": None, "observed_version_label": "9.9-hotfix"},
            )
        ],
        source="kubernetes:4",
        at=datetime(2026, 11, 3, 9, 0, tzinfo=UTC),
    )
    run(K.UNAPPROVED_VERSION)
    f = finding(K.UNAPPROVED_VERSION, d.pk)
    assert f.evidence["facts"]["approval"] == "unregistered"
    assert f.evidence["records"][0]["source"] == "kubernetes:4"
    assert f.evidence["records"][0]["at"] == "2026-11-03T09:00:00+00:00"
    # Withdrawn: nothing runs there to approve.
    update(d, status="withdrawn")
    assert run(K.UNAPPROVED_VERSION) == {"resolved": 1}


# ---------------------------------------------------------------------------
# version drift
# ---------------------------------------------------------------------------
def test_version_drift_lifecycle():
    model = AIModelFactory()
    v1, v2, v3 = (ModelVersionFactory(model=model) for _ in range(3))
    update(model, baseline_version=v1)
    d = DeploymentFactory(model=model, observed_version=v2)
    DeploymentFactory(model=model, observed_version=v1)  # on its baseline

    assert run(K.VERSION_DRIFT) == {"opened": 1}
    facts = finding(K.VERSION_DRIFT, d.pk).evidence["facts"]
    assert facts == {
        "baseline_version_id": v1.pk,
        "baseline_version": v1.version,
        "baseline_kind": "model",
        "observed_version_id": v2.pk,
        "observed_version": v2.version,
    }

    update(d, approved_version=v3)  # the committee pins another version
    assert run(K.VERSION_DRIFT) == {"evidence_changed": 1, "updated": 1}
    facts = finding(K.VERSION_DRIFT, d.pk).evidence["facts"]
    assert facts["baseline_kind"] == "pin" and facts["baseline_version_id"] == v3.pk

    update(d, observed_version=v3)
    assert run(K.VERSION_DRIFT) == {"resolved": 1}

    update(d, observed_version=None, observed_version_label="unknown-build")
    assert run(K.VERSION_DRIFT) == {"reopened": 1}
    assert finding(K.VERSION_DRIFT, d.pk).evidence["facts"]["observed_version"] == (
        "unknown-build"
    )


def test_no_baseline_no_drift():
    d = DeploymentFactory(observed_version=ModelVersionFactory())
    assert run(K.VERSION_DRIFT) == {}
    assert not Finding.objects.filter(subject_id=d.pk).exists()


# ---------------------------------------------------------------------------
# shadow deployment
# ---------------------------------------------------------------------------
T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def call(d, at, calls=5, caller="billing"):
    im.UsageHour.objects.create(
        deployment=d,
        hour=at.replace(minute=0, second=0, microsecond=0),
        caller_service=caller,
        calls=calls,
    )
    im.Deployment.objects.filter(pk=d.pk).update(last_call_at=at, last_seen_at=at)


def test_a_withdrawn_deployment_still_answering_lifecycle(committee):
    d = DeploymentFactory(last_seen_at=T0 - timedelta(days=3))
    call(d, T0 - timedelta(hours=5))
    with freeze_time(T0):
        services.deployment_set_status(
            actor=committee, deployment=d, status="withdrawn"
        )
    # Its calls were all before the withdrawal: nothing.
    assert run(K.SHADOW_DEPLOYMENT, now=T0 + timedelta(hours=1)) == {}

    call(d, T0 + timedelta(hours=2), calls=7)
    assert run(K.SHADOW_DEPLOYMENT, now=T0 + timedelta(hours=3)) == {"opened": 1}
    f = finding(K.SHADOW_DEPLOYMENT, d.pk)
    assert f.evidence["facts"] == {
        "why": ["deployment_withdrawn"],
        "answering": True,
        "reported_by": [],
    }
    withdrawal, usage = f.evidence["records"]
    assert withdrawal["at"] == T0.isoformat() and withdrawal["what"] == (
        "deployment withdrawn"
    )
    assert usage["calls"] == 7 and usage["at"] == (T0 + timedelta(hours=2)).isoformat()

    # Its model is retired too: the evidence says both.
    with freeze_time(T0 + timedelta(hours=4)):
        services.aimodel_set_lifecycle(
            actor=committee, model=d.model, lifecycle="retired"
        )
    assert run(K.SHADOW_DEPLOYMENT, now=T0 + timedelta(hours=5)) == {
        "evidence_changed": 1,
        "updated": 1,
    }
    assert finding(K.SHADOW_DEPLOYMENT, d.pk).evidence["facts"]["why"] == [
        "deployment_withdrawn",
        "model_retired",
    ]


def test_a_withdrawn_deployment_that_is_reactivated_resolves_and_reopens(committee):
    d = DeploymentFactory(last_seen_at=T0 - timedelta(days=3))
    with freeze_time(T0):
        services.deployment_set_status(
            actor=committee, deployment=d, status="withdrawn"
        )
    call(d, T0 + timedelta(hours=1))
    assert run(K.SHADOW_DEPLOYMENT, now=T0 + timedelta(hours=2)) == {"opened": 1}

    with freeze_time(T0 + timedelta(hours=3)):
        services.deployment_set_status(actor=committee, deployment=d, status="active")
    assert run(K.SHADOW_DEPLOYMENT, now=T0 + timedelta(hours=3)) == {"resolved": 1}

    # Withdrawn again: the earlier calls are from before this withdrawal.
    with freeze_time(T0 + timedelta(hours=5)):
        services.deployment_set_status(
            actor=committee, deployment=d, status="withdrawn"
        )
    assert run(K.SHADOW_DEPLOYMENT, now=T0 + timedelta(hours=6)) == {}
    call(d, T0 + timedelta(hours=7))
    assert run(K.SHADOW_DEPLOYMENT, now=T0 + timedelta(hours=8)) == {"reopened": 1}
    assert finding(K.SHADOW_DEPLOYMENT, d.pk).times_opened == 2


def test_a_retired_models_deployment_still_listed_by_a_runtime_source(committee):
    source = sm.DataSource.objects.create(name="k8s", kind="kubernetes")
    d = DeploymentFactory(
        source=source.source_label,
        external_id="ns/scorer",
        last_seen_at=T0 - timedelta(days=1),
        seen_at=T0 - timedelta(days=1),
    )
    with freeze_time(T0):
        services.aimodel_set_lifecycle(
            actor=committee, model=d.model, lifecycle="retired"
        )
    assert run(K.SHADOW_DEPLOYMENT, now=T0 + timedelta(minutes=5)) == {}

    # The runtime's next sync lists it again, unchanged (the row is not rewritten).
    update(source, last_success_at=T0 + timedelta(minutes=30))
    assert run(K.SHADOW_DEPLOYMENT, now=T0 + timedelta(hours=1)) == {"opened": 1}
    f = finding(K.SHADOW_DEPLOYMENT, d.pk)
    assert f.evidence["facts"] == {
        "why": ["model_retired"],
        "answering": False,
        "reported_by": [source.source_label],
    }
    assert f.evidence["records"][0]["source"] == "audit"
    assert f.evidence["records"][0]["at"] == T0.isoformat()

    # The runtime stops listing it: resolved.
    update(d, gone_at=T0 + timedelta(hours=2))
    assert run(K.SHADOW_DEPLOYMENT, now=T0 + timedelta(hours=2)) == {"resolved": 1}


# ---------------------------------------------------------------------------
# deprecated in use
# ---------------------------------------------------------------------------
def test_deprecated_in_use_lifecycle_as_time_passes():
    model = AIModelFactory(lifecycle="deprecated")
    d = DeploymentFactory(model=model)
    now = T0
    call(d, now - timedelta(hours=1), caller="billing")

    assert run(K.DEPRECATED_IN_USE, now=now) == {"opened": 1}
    f = finding(K.DEPRECATED_IN_USE, d.pk)
    assert f.severity == Finding.Severity.LOW
    assert f.evidence["facts"]["callers"] == ["billing"]
    assert f.evidence["records"][1]["calls"] == 5

    call(d, now - timedelta(minutes=30), caller="claims")
    assert run(K.DEPRECATED_IN_USE, now=now) == {"evidence_changed": 1, "updated": 1}
    assert finding(K.DEPRECATED_IN_USE, d.pk).evidence["facts"]["callers"] == [
        "billing",
        "claims",
    ]

    # A day without calls: the migration is done.
    assert run(K.DEPRECATED_IN_USE, now=now + timedelta(hours=25)) == {"resolved": 1}

    call(d, now + timedelta(hours=26), caller="claims")
    assert run(K.DEPRECATED_IN_USE, now=now + timedelta(hours=27)) == {"reopened": 1}


def test_deprecated_in_use_for_longer_than_the_grace_is_one_step_higher(risk):
    model = AIModelFactory()
    d = DeploymentFactory(model=model)
    with freeze_time(T0):
        services.aimodel_set_lifecycle(actor=risk, model=model, lifecycle="deprecated")
    now = T0 + timedelta(days=10)
    call(d, now - timedelta(hours=1))
    assert run(K.DEPRECATED_IN_USE, now=now) == {"opened": 1}
    f = finding(K.DEPRECATED_IN_USE, d.pk)
    assert f.severity == Finding.Severity.LOW
    assert f.evidence["records"][0] == {
        "source": "audit",
        "what": "model deprecated",
        "at": T0.isoformat(),
    }

    # Still answering five days later: past the 14 days of grace.
    later = T0 + timedelta(days=15)
    call(d, later - timedelta(hours=1))
    assert run(K.DEPRECATED_IN_USE, now=later) == {"evidence_changed": 1, "updated": 1}
    f.refresh_from_db()
    assert f.evidence["facts"]["beyond_grace"] is True
    assert f.severity == Finding.Severity.MEDIUM


# ---------------------------------------------------------------------------
# unregistered model
# ---------------------------------------------------------------------------
def test_unregistered_model_lifecycle():
    now = timezone.now()
    observed = AIModelFactory(name="shadow-llm", source="otlp:9", external_id="model:x")
    d1 = DeploymentFactory(model=observed, source="otlp:9", last_call_at=now)
    registered = AIModelFactory(source="mlflow:1", external_id="m1")
    DeploymentFactory(model=registered, last_call_at=now)
    AIModelFactory(source="manual")  # typed in: registered in Runproof itself

    assert run(K.UNREGISTERED_MODEL, now=now) == {"opened": 1}
    f = finding(K.UNREGISTERED_MODEL, observed.pk)
    assert f.subject_type == "model" and f.model_id == observed.pk
    assert f.evidence["facts"] == {
        "model": "shadow-llm",
        "source": "otlp:9",
        "source_kind": "otlp",
        "deployments": [d1.pk],
    }

    d2 = DeploymentFactory(model=observed, source="otlp:9", last_call_at=now)
    assert run(K.UNREGISTERED_MODEL, now=now) == {"evidence_changed": 1, "updated": 1}
    assert finding(K.UNREGISTERED_MODEL, observed.pk).evidence["facts"][
        "deployments"
    ] == [
        d1.pk,
        d2.pk,
    ]

    # Silent for longer than the policy's hours: not answering any more.
    im.Deployment.objects.filter(model=observed).update(
        last_call_at=now - timedelta(days=5),
        last_seen_at=now - timedelta(days=5),
    )
    assert run(K.UNREGISTERED_MODEL, now=now) == {"resolved": 1}

    im.Deployment.objects.filter(pk=d1.pk).update(last_call_at=now)
    assert run(K.UNREGISTERED_MODEL, now=now) == {"reopened": 1}

    # The registry registers the name: known now.
    AIModelFactory(name="shadow-llm", source="mlflow:1", external_id="shadow-llm")
    assert run(K.UNREGISTERED_MODEL, now=now) == {"resolved": 1}


# ---------------------------------------------------------------------------
# missing business purpose, missing change window
# ---------------------------------------------------------------------------
def test_missing_purpose_lifecycle():
    d = DeploymentFactory(business_purpose="  ")
    DeploymentFactory(business_purpose="", environment="staging")
    DeploymentFactory(business_purpose="Scores card payments")

    assert run(K.MISSING_PURPOSE) == {"opened": 1}
    assert finding(K.MISSING_PURPOSE, d.pk).evidence["facts"] == {
        "business_purpose": "",
        "environment": "production",
    }
    assert run(K.MISSING_PURPOSE) == {"updated": 1}

    update(d, business_purpose="Scores claims")
    assert run(K.MISSING_PURPOSE) == {"resolved": 1}
    update(d, business_purpose="")
    assert run(K.MISSING_PURPOSE) == {"reopened": 1}


def test_missing_change_window_lifecycle():
    d = DeploymentFactory(change_window="")
    DeploymentFactory(change_window="Tue 02:00-04:00 UTC")

    assert run(K.MISSING_CHANGE_WINDOW) == {"opened": 1}
    facts = finding(K.MISSING_CHANGE_WINDOW, d.pk).evidence["facts"]
    assert facts["state"] == "empty" and facts["change_window"] == ""

    update(d, change_window="whenever the CAB agrees")
    assert run(K.MISSING_CHANGE_WINDOW) == {"evidence_changed": 1, "updated": 1}
    facts = finding(K.MISSING_CHANGE_WINDOW, d.pk).evidence["facts"]
    assert facts["state"] == "not_machine_readable"
    assert facts["change_window"] == "whenever the CAB agrees"
    assert "time zone" in facts["error"]

    update(d, change_window="Mon-Fri 22:00-06:00 Europe/London; CAB approval")
    assert run(K.MISSING_CHANGE_WINDOW) == {"resolved": 1}
    update(d, change_window="; only a note")
    assert run(K.MISSING_CHANGE_WINDOW) == {"reopened": 1}
    assert finding(K.MISSING_CHANGE_WINDOW, d.pk).evidence["facts"]["state"] == "empty"


# ---------------------------------------------------------------------------
# change outside window
# ---------------------------------------------------------------------------
TUESDAY_3AM = datetime(2026, 11, 3, 3, 0, tzinfo=UTC)  # inside "Tue 02:00-04:00 UTC"
WEDNESDAY = datetime(2026, 11, 4, 15, 0, tzinfo=UTC)


def changed(d, field, before, after, at, source="kubernetes:2"):
    history.record_changes(
        deltas=[history.Delta(DEPLOYMENT, d.pk, field, before, after)],
        source=source,
        at=at,
    )


def test_change_outside_window_lifecycle_as_time_passes():
    d = DeploymentFactory(change_window="Tue 02:00-04:00 UTC")
    changed(d, "endpoint", "a", "b", TUESDAY_3AM)  # inside: fine
    changed(d, "endpoint", "b", "c", WEDNESDAY, source="")  # by hand: not a source's
    assert run(K.CHANGE_OUTSIDE_WINDOW, now=WEDNESDAY + timedelta(hours=1)) == {}

    changed(d, "endpoint", "c", "d", WEDNESDAY)
    now = WEDNESDAY + timedelta(hours=1)
    assert run(K.CHANGE_OUTSIDE_WINDOW, now=now) == {"opened": 1}
    f = finding(K.CHANGE_OUTSIDE_WINDOW, d.pk)
    assert f.evidence["facts"]["change_window"] == "Tue 02:00-04:00 UTC"
    assert [c["after"] for c in f.evidence["facts"]["changes"]] == ["d"]
    assert f.evidence["records"][0]["at"] == WEDNESDAY.isoformat()
    assert f.evidence["records"][0]["source"] == "kubernetes:2"

    version = {"observed_version_id": None, "observed_version_label": "5"}
    changed(d, "observed_version", None, version, WEDNESDAY + timedelta(hours=2))
    now = WEDNESDAY + timedelta(hours=3)
    assert run(K.CHANGE_OUTSIDE_WINDOW, now=now) == {
        "evidence_changed": 1,
        "updated": 1,
    }
    fields = [
        c["field"]
        for c in finding(K.CHANGE_OUTSIDE_WINDOW, d.pk).evidence["facts"]["changes"]
    ]
    assert fields == ["endpoint", "observed_version"]

    # 30 days on (the setting), the changes have aged out.
    assert run(K.CHANGE_OUTSIDE_WINDOW, now=WEDNESDAY + timedelta(days=31)) == {
        "resolved": 1
    }
    later = WEDNESDAY + timedelta(days=35)
    changed(d, "endpoint", "d", "e", later)
    assert run(K.CHANGE_OUTSIDE_WINDOW, now=later + timedelta(minutes=1)) == {
        "reopened": 1
    }


def test_change_outside_window_reads_the_setting_and_skips_unreadable_windows(settings):
    settings.DETECTION_CHANGE_DAYS = 2
    d = DeploymentFactory(change_window="Tue 02:00-04:00 UTC")
    unreadable = DeploymentFactory(change_window="ask Bob")
    changed(d, "endpoint", "a", "b", WEDNESDAY)
    changed(unreadable, "endpoint", "a", "b", WEDNESDAY)
    assert run(K.CHANGE_OUTSIDE_WINDOW, now=WEDNESDAY + timedelta(days=1)) == {
        "opened": 1
    }
    assert run(K.CHANGE_OUTSIDE_WINDOW, now=WEDNESDAY + timedelta(days=3)) == {
        "resolved": 1
    }


# ---------------------------------------------------------------------------
# endpoint and dependency drift against the approved state
# ---------------------------------------------------------------------------
def test_endpoint_drift_lifecycle(committee):
    d = DeploymentFactory(endpoint="https://a.internal/v1")
    update(d, endpoint="https://b.internal/v1")
    assert run(K.ENDPOINT_DRIFT) == {}  # nothing approved: nothing to drift from

    approved_state_record(actor=committee, deployment=d)
    assert run(K.ENDPOINT_DRIFT) == {}

    update(d, endpoint="https://c.internal/v1")
    assert run(K.ENDPOINT_DRIFT) == {"opened": 1}
    f = finding(K.ENDPOINT_DRIFT, d.pk)
    assert f.evidence["facts"] == {
        "approved_endpoint": "https://b.internal/v1",
        "endpoint": "https://c.internal/v1",
    }
    assert f.evidence["records"][0]["source"] == committee.username

    update(d, endpoint="https://d.internal/v1")
    assert run(K.ENDPOINT_DRIFT) == {"evidence_changed": 1, "updated": 1}
    update(d, endpoint="https://b.internal/v1")
    assert run(K.ENDPOINT_DRIFT) == {"resolved": 1}
    update(d, endpoint="https://e.internal/v1")
    assert run(K.ENDPOINT_DRIFT) == {"reopened": 1}
    # Approving the new endpoint clears it.
    approved_state_record(actor=committee, deployment=d)
    assert run(K.ENDPOINT_DRIFT) == {"resolved": 1}


def test_dependency_drift_lifecycle(committee):
    d = DeploymentFactory()
    u1, u2, down = DeploymentFactory(), DeploymentFactory(), DeploymentFactory()
    edge1 = im.Dependency.objects.create(upstream=u1, downstream=d)
    im.Dependency.objects.create(upstream=d, downstream=down)
    state = approved_state_record(actor=committee, deployment=d)
    assert state.upstream_ids == [u1.pk] and state.downstream_ids == [down.pk]
    assert run(K.DEPENDENCY_DRIFT) == {}

    edge2 = im.Dependency.objects.create(upstream=u2, downstream=d)
    assert run(K.DEPENDENCY_DRIFT) == {"opened": 1}
    assert finding(K.DEPENDENCY_DRIFT, d.pk).evidence["facts"] == {
        "upstream_added": [u2.pk],
        "upstream_removed": [],
        "downstream_added": [],
        "downstream_removed": [],
    }

    edge1.delete()
    assert run(K.DEPENDENCY_DRIFT) == {"evidence_changed": 1, "updated": 1}
    assert finding(K.DEPENDENCY_DRIFT, d.pk).evidence["facts"]["upstream_removed"] == [
        u1.pk
    ]

    edge2.delete()
    im.Dependency.objects.create(upstream=u1, downstream=d)
    assert run(K.DEPENDENCY_DRIFT) == {"resolved": 1}
    im.Dependency.objects.filter(upstream=d, downstream=down).delete()
    assert run(K.DEPENDENCY_DRIFT) == {"reopened": 1}
    assert finding(K.DEPENDENCY_DRIFT, d.pk).evidence["facts"][
        "downstream_removed"
    ] == [down.pk]


# ---------------------------------------------------------------------------
# All of them: twice changes nothing; a few queries per chunk whatever the rows
# ---------------------------------------------------------------------------
MINE = [
    K.UNAPPROVED_VERSION,
    K.VERSION_DRIFT,
    K.SHADOW_DEPLOYMENT,
    K.DEPRECATED_IN_USE,
    K.UNREGISTERED_MODEL,
    K.MISSING_PURPOSE,
    K.MISSING_CHANGE_WINDOW,
    K.CHANGE_OUTSIDE_WINDOW,
    K.ENDPOINT_DRIFT,
    K.DEPENDENCY_DRIFT,
]


def _world(committee, n: int) -> None:
    now = timezone.now()
    for i in range(n):
        model = AIModelFactory(
            lifecycle="deprecated" if i % 2 else "active",
            source="otlp:1" if i % 3 == 0 else "manual",
        )
        v1 = ModelVersionFactory(model=model)
        v2 = ModelVersionFactory(model=model, approval="pending")
        update(model, baseline_version=v1)
        d = DeploymentFactory(
            model=model,
            observed_version=v2,
            change_window="Tue 02:00-02:01 UTC" if i % 2 else "x",
        )
        call(d, now - timedelta(minutes=10))
        changed(d, "endpoint", "a", d.endpoint, now - timedelta(days=1))
        approved_state_record(actor=committee, deployment=d)
        update(d, endpoint=f"https://moved-{i}.internal/")
        w = DeploymentFactory(model=model, status="withdrawn")
        update(w, updated_at=now - timedelta(hours=1))
        call(w, now - timedelta(minutes=5))
        im.Dependency.objects.create(upstream=w, downstream=d)


def _state():
    return sorted(
        Finding.objects.values_list(
            "kind", "subject_id", "status", "evidence_key", "times_opened", "severity"
        )
    )


def test_every_kind_twice_changes_nothing(committee):
    _world(committee, 3)
    first = detection.run(kinds=MINE)
    assert set(first.by_kind) == set(MINE)
    assert all(c.get("opened") for c in first.by_kind.values())
    state, events = _state(), FindingEvent.objects.count()

    second = detection.run(kinds=MINE)
    assert set(second.counts) == {"updated"}
    assert _state() == state
    assert FindingEvent.objects.count() == events


def test_queries_per_chunk_do_not_grow_with_rows(
    committee, django_assert_max_num_queries
):
    _world(committee, 2)
    with django_assert_max_num_queries(150) as small:
        detection.run(kinds=MINE, dry_run=True)
    _world(committee, 8)
    with django_assert_max_num_queries(len(small.captured_queries)):
        detection.run(kinds=MINE, dry_run=True)


def test_evidence_has_no_clock_in_its_facts(committee):
    _world(committee, 2)
    detection.run(kinds=MINE)
    keys = dict(Finding.objects.values_list("pk", "evidence_key"))
    # Later, with nothing changed but the time: the same evidence.
    detection.run(kinds=MINE, now=timezone.now() + timedelta(minutes=20))
    assert dict(Finding.objects.values_list("pk", "evidence_key")) == keys
