"""The behaviour detectors (governance.detectors.behaviour): out of bounds and third-party
exposure open, update their evidence, resolve as time passes and reopen, on usage built
for them; a second run changes nothing; clean deployments have none; a scan's queries do
not grow with the number of deployments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance import detection
from governance.detectors import behaviour
from governance.models import Finding, FindingEvent
from inventory import models as im
from tests.factories import DeploymentFactory, IdentityFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db
K = Finding.Kind
NOW = datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
HOUR0 = NOW.replace(minute=0)  # the hour NOW falls in
BOUNDS = {
    "max_error_rate": 0.05,
    "max_mean_latency_ms": 200,
    "max_latency_ms": 1000,
    "max_calls_per_hour": 100,
    "allowed_callers": ["checkout", "billing"],
}


def hours(n: int) -> timedelta:
    return timedelta(hours=n)


def run(kind: str, now: datetime = NOW) -> detection.RunResult:
    return detection.run(kinds=[kind], now=now)


def state() -> tuple[list, int]:
    rows = list(
        Finding.objects.order_by("pk").values_list(
            "kind",
            "subject_id",
            "status",
            "severity",
            "tier",
            "evidence",
            "evidence_key",
            "times_opened",
            "resolved_at",
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


def bounded(bounds=None, **kw) -> im.Deployment:
    """A deployment running a version with these approved bounds."""
    version = ModelVersionFactory(approved_bounds=BOUNDS if bounds is None else bounds)
    return DeploymentFactory(model=version.model, observed_version=version, **kw)


def usage(d, hour, caller="checkout", calls=10, errors=0, mean=50.0, peak=None, **kw):
    return im.UsageHour.objects.create(
        deployment=d,
        hour=hour,
        caller_service=caller,
        calls=calls,
        errors=errors,
        duration_ms_total=mean * calls,
        duration_ms_max=mean if peak is None else peak,
        **kw,
    )


def the(kind: str, d: im.Deployment) -> Finding:
    return Finding.objects.get(kind=kind, subject_type="deployment", subject_id=d.pk)


def events(f: Finding) -> list[str]:
    return list(f.events.order_by("at", "id").values_list("action", flat=True))


# ---------------------------------------------------------------------------
# Out of bounds
# ---------------------------------------------------------------------------
def test_parse_bounds_keeps_only_typed_values():
    assert behaviour.parse_bounds(
        {
            "max_error_rate": 0.1,
            "max_mean_latency_ms": True,  # a boolean is no number
            "max_latency_ms": -5,
            "max_calls_per_hour": "100",
            "allowed_callers": ["b", "a", "a"],
            "max_p95_latency_ms": 300,  # not offered
        }
    ) == {"max_error_rate": 0.1, "allowed_callers": ["a", "b"]}
    assert behaviour.parse_bounds({"allowed_callers": ["a", 3]}) == {}
    assert behaviour.parse_bounds([1, 2]) == {}


def test_out_of_bounds_lifecycle_with_time_passing():
    d = bounded()
    clean = bounded()
    usage(clean, HOUR0 - hours(2), calls=90, errors=4, mean=150, peak=900)
    usage(clean, HOUR0 - hours(2), caller="billing", calls=10)
    # Two hours ago: 20 % errors.
    usage(d, HOUR0 - hours(2), calls=50, errors=10)
    usage(d, HOUR0 - hours(3), calls=50, errors=1)  # within bounds
    assert run(K.OUT_OF_BOUNDS).counts["opened"] == 1
    f = the(K.OUT_OF_BOUNDS, d)
    facts = f.evidence["facts"]
    assert facts["breached"] == ["max_error_rate"]
    assert facts["bounds"] == {**BOUNDS, "allowed_callers": ["billing", "checkout"]}
    assert facts["version"] == d.observed_version.version
    summary, worst = f.evidence["records"][0], f.evidence["records"][1:]
    assert "1 of the last 24 hours" in summary["what"]
    assert [r["at"] for r in worst] == [(HOUR0 - hours(2)).isoformat()]
    assert worst[0]["breaches"] == [
        {"bound": "max_error_rate", "value": 0.2, "limit": 0.05}
    ]
    assert f.tier == d.risk_tier and f.deployment_id == d.pk
    assert not Finding.objects.filter(kind=K.OUT_OF_BOUNDS, subject_id=clean.pk)
    assert_twice_changes_nothing(K.OUT_OF_BOUNDS)

    # An hour later a caller off the allow-list shows up: the evidence changes.
    usage(d, HOUR0 - hours(1), caller="intruder", calls=3)
    assert run(K.OUT_OF_BOUNDS).counts["evidence_changed"] == 1
    f.refresh_from_db()
    assert f.evidence["facts"]["breached"] == ["allowed_callers", "max_error_rate"]
    assert f.evidence["facts"]["callers_not_allowed"] == ["intruder"]

    # 23 hours later the error-rate hour has left the window, the caller's has not.
    later = NOW + hours(23)
    result = run(K.OUT_OF_BOUNDS, later)
    assert result.counts["evidence_changed"] == 1 and "resolved" not in result.counts
    f.refresh_from_db()
    assert f.evidence["facts"]["breached"] == ["allowed_callers"]

    # A day later both hours have left the window: resolved by itself.
    later = NOW + hours(24)
    assert run(K.OUT_OF_BOUNDS, later).counts["resolved"] == 1
    f.refresh_from_db()
    assert f.status == "resolved" and f.resolved_at == later

    # A slow hour then: the same finding reopens.
    usage(d, HOUR0 + hours(23), calls=10, mean=450, peak=2000)
    assert run(K.OUT_OF_BOUNDS, later).counts["reopened"] == 1
    f.refresh_from_db()
    assert f.status == "open" and f.times_opened == 2
    assert f.evidence["facts"]["breached"] == ["max_latency_ms", "max_mean_latency_ms"]
    assert events(f) == ["opened", "evidence", "evidence", "resolved", "reopened"]
    assert_twice_changes_nothing(K.OUT_OF_BOUNDS, later)


def test_each_hour_is_judged_over_all_its_callers():
    d = bounded({"max_calls_per_hour": 100, "max_mean_latency_ms": 200})
    hour = HOUR0 - hours(1)
    # 60 + 60 calls in one hour: each caller within the bound, the hour over it; the
    # mean latency of the hour is (60*100 + 60*290) / 120 = 195, within its bound.
    usage(d, hour, caller="a", calls=60, mean=100)
    usage(d, hour, caller="b", calls=60, mean=290)
    # 90 calls in another hour: within.
    usage(d, hour - hours(1), caller="a", calls=90, mean=100)
    run(K.OUT_OF_BOUNDS)
    f = the(K.OUT_OF_BOUNDS, d)
    assert f.evidence["facts"]["breached"] == ["max_calls_per_hour"]
    assert [r["at"] for r in f.evidence["records"][1:]] == [hour.isoformat()]
    assert f.evidence["records"][1]["breaches"] == [
        {"bound": "max_calls_per_hour", "value": 120, "limit": 100}
    ]


def test_the_worst_ten_breaching_hours_are_listed():
    d = bounded({"max_error_rate": 0.1})
    for i in range(15):
        usage(d, HOUR0 - hours(i + 1), calls=100, errors=11 + i)
    run(K.OUT_OF_BOUNDS)
    records = the(K.OUT_OF_BOUNDS, d).evidence["records"]
    assert "15 of the last 24 hours" in records[0]["what"]
    worst = records[1:]
    assert len(worst) == behaviour.WORST_HOURS
    assert [r["errors"] for r in worst] == list(range(25, 15, -1))


def test_the_window_is_a_setting(settings):
    settings.FINDINGS_BOUNDS_WINDOW_HOURS = 2
    d = bounded({"max_error_rate": 0.1})
    usage(d, HOUR0 - hours(3), calls=10, errors=5)
    assert run(K.OUT_OF_BOUNDS).counts.get("opened", 0) == 0
    settings.FINDINGS_BOUNDS_WINDOW_HOURS = 4
    assert run(K.OUT_OF_BOUNDS).counts["opened"] == 1


def test_only_the_observed_versions_bounds_count():
    # Bad usage, but: no bounds; a percentile bound only (not offered); tight bounds on
    # the baseline pin while the version it runs has loose ones; no observed version.
    none = bounded({})
    p95 = bounded({"max_p95_latency_ms": 1})
    loose = bounded({"max_error_rate": 0.9})
    tight = ModelVersionFactory(
        model=loose.model, approved_bounds={"max_error_rate": 0}
    )
    im.Deployment.objects.filter(pk=loose.pk).update(approved_version=tight)
    unobserved = DeploymentFactory()
    for d in (none, p95, loose, unobserved):
        usage(d, HOUR0 - hours(1), calls=10, errors=5, mean=5000)
    assert run(K.OUT_OF_BOUNDS).counts.get("opened", 0) == 0
    # The deployment moves to the tight version: now it is out of bounds.
    im.Deployment.objects.filter(pk=loose.pk).update(observed_version=tight)
    assert run(K.OUT_OF_BOUNDS).counts["opened"] == 1
    assert the(K.OUT_OF_BOUNDS, loose).evidence["facts"]["version_id"] == tight.pk


def test_a_caller_with_no_service_name_is_not_on_the_allow_list():
    d = bounded({"allowed_callers": ["checkout"]})
    usage(d, HOUR0 - hours(1), caller="", calls=2)
    usage(d, HOUR0 - hours(1), caller="checkout", calls=2)
    run(K.OUT_OF_BOUNDS)
    assert the(K.OUT_OF_BOUNDS, d).evidence["facts"]["callers_not_allowed"] == [
        behaviour.UNKNOWN_CALLER
    ]


# ---------------------------------------------------------------------------
# Third-party exposure
# ---------------------------------------------------------------------------
def tiered(tier: int, **kw) -> im.Deployment:
    d = DeploymentFactory(**kw)
    im.Deployment.objects.filter(pk=d.pk).update(risk_tier=tier)
    d.risk_tier = tier
    return d


def test_third_party_exposure_lifecycle_with_time_passing():
    d = tiered(1)
    vendor_key = IdentityFactory(name="openai-key", vendor="OpenAI", deployments=[d])
    internal = IdentityFactory(name="svc-internal", deployments=[d])
    assert run(K.THIRD_PARTY_EXPOSURE).counts["opened"] == 1
    f = the(K.THIRD_PARTY_EXPOSURE, d)
    facts = f.evidence["facts"]
    assert facts["tier"] == 1
    assert facts["identities"] == [
        {
            "id": vendor_key.pk,
            "name": "openai-key",
            "kind": "service_account",
            "provider": "aws",
            "vendor": "OpenAI",
            "third_party": ["vendor"],
            "bound": True,
            "seen_calling": False,
        }
    ]
    assert f.severity == detection.severity_for(K.THIRD_PARTY_EXPOSURE, 1) == 4
    assert_twice_changes_nothing(K.THIRD_PARTY_EXPOSURE)

    # An OAuth app, bound to nothing, is seen calling it by its service name (the usage
    # row names no identity).
    app = IdentityFactory(name="zapier-app", kind="oauth_app")
    usage(d, HOUR0 - hours(5), caller="zapier-app", calls=7)
    usage(d, HOUR0 - hours(5), caller=internal.name, calls=70, identity=internal)
    assert run(K.THIRD_PARTY_EXPOSURE).counts["evidence_changed"] == 1
    f.refresh_from_db()
    by_id = {i["id"]: i for i in f.evidence["facts"]["identities"]}
    assert set(by_id) == {vendor_key.pk, app.pk}
    assert by_id[app.pk]["third_party"] == ["oauth_app"]
    assert by_id[app.pk]["bound"] is False and by_id[app.pk]["seen_calling"] is True
    assert any(
        "zapier-app called it: 7 calls" in r["what"] for r in f.evidence["records"]
    )

    # The vendor key revoked (it can no longer invoke it) and 31 days pass: the app's
    # calls are out of the window, nothing is left.
    im.NonHumanIdentity.objects.filter(pk=vendor_key.pk).update(status="revoked")
    result = run(K.THIRD_PARTY_EXPOSURE)
    assert result.counts["evidence_changed"] == 1 and "resolved" not in result.counts
    later = NOW + timedelta(days=31)
    assert run(K.THIRD_PARTY_EXPOSURE, later).counts["resolved"] == 1

    # The app calls again, through a usage row that names it: reopened.
    usage(d, HOUR0 + timedelta(days=30), caller="app-alias", calls=1, identity=app)
    assert run(K.THIRD_PARTY_EXPOSURE, later).counts["reopened"] == 1
    f.refresh_from_db()
    assert f.status == "open" and f.times_opened == 2
    assert [i["id"] for i in f.evidence["facts"]["identities"]] == [app.pk]
    assert events(f) == ["opened", "evidence", "evidence", "resolved", "reopened"]
    assert_twice_changes_nothing(K.THIRD_PARTY_EXPOSURE, later)


def test_third_party_exposure_needs_a_tier_1_or_2_deployment_and_a_third_party():
    tier2 = tiered(2)
    tier3 = tiered(3)
    internal_only = tiered(1)
    revoked_only = tiered(1)
    provider = tiered(2)
    IdentityFactory(vendor="Cohere", deployments=[tier2, tier3])
    IdentityFactory(deployments=[internal_only])
    IdentityFactory(vendor="Acme", status="revoked", deployments=[revoked_only])
    # A key of a provider that is itself a third party (settings), no vendor named.
    key = IdentityFactory(provider="openai", kind="api_key", deployments=[provider])
    usage(tier3, HOUR0, caller="x", calls=1, identity=key)
    run(K.THIRD_PARTY_EXPOSURE)
    found = dict(
        Finding.objects.filter(kind=K.THIRD_PARTY_EXPOSURE).values_list(
            "subject_id", "evidence"
        )
    )
    assert set(found) == {tier2.pk, provider.pk}
    assert found[provider.pk]["facts"]["identities"][0]["third_party"] == [
        "external_provider"
    ]
    # The tier changes: tier 3 becomes tier 2, its exposure now counts.
    im.Deployment.objects.filter(pk=tier3.pk).update(risk_tier=2)
    run(K.THIRD_PARTY_EXPOSURE)
    f = the(K.THIRD_PARTY_EXPOSURE, tier3)
    assert {i["name"] for i in f.evidence["facts"]["identities"]} == {
        key.name,
        *im.NonHumanIdentity.objects.filter(vendor="Cohere").values_list(
            "name", flat=True
        ),
    }


# ---------------------------------------------------------------------------
# Query counts
# ---------------------------------------------------------------------------
def _flagged(n: int) -> None:
    """n deployments each out of bounds (two callers, one off the allow-list) and
    exposed to a bound vendor key and a calling OAuth app."""
    for _ in range(n):
        d = bounded(risk_tier=1)
        im.Deployment.objects.filter(pk=d.pk).update(risk_tier=1)
        IdentityFactory(vendor="OpenAI", deployments=[d])
        app = IdentityFactory(kind="oauth_app")
        for h in range(3):
            usage(d, HOUR0 - hours(h + 1), calls=10, errors=5)
            usage(d, HOUR0 - hours(h + 1), caller=app.name, calls=1)


@pytest.mark.parametrize("detector", behaviour.DETECTORS, ids=lambda d: d.kind)
def test_a_scan_costs_the_same_queries_for_3_or_40_deployments(
    detector, django_assert_max_num_queries
):
    _flagged(3)
    with CaptureQueriesContext(connection) as ctx:
        assert len(list(detector.scan(now=NOW, ids=None, id_range=None))) == 3
    few = len(ctx.captured_queries)
    assert few <= 4
    _flagged(37)
    with django_assert_max_num_queries(few):
        conditions = list(detector.scan(now=NOW, ids=None, id_range=None))
    assert len(conditions) == 40


def test_a_full_run_of_both_kinds_does_not_grow_with_deployments(
    django_assert_max_num_queries,
):
    kinds = [K.OUT_OF_BOUNDS, K.THIRD_PARTY_EXPOSURE]
    _flagged(3)
    with CaptureQueriesContext(connection) as ctx:
        detection.run(kinds=kinds, now=NOW, notify=False)
    few = len(ctx.captured_queries)
    Finding.objects.all().delete()
    _flagged(20)
    with django_assert_max_num_queries(few):
        detection.run(kinds=kinds, now=NOW, notify=False)
    assert Finding.objects.filter(kind__in=kinds).count() == 46


def test_a_change_to_an_identity_rescans_the_deployments_it_is_bound_to():
    d, other = tiered(1), tiered(1)
    nhi = IdentityFactory(deployments=[d])
    IdentityFactory(deployments=[other])
    im.NonHumanIdentity.objects.filter(pk=nhi.pk).update(vendor="Anthropic")
    im.NonHumanIdentity.objects.exclude(pk=nhi.pk).update(vendor="Acme")
    scope = detection.scope_for_changes([("inventory.nonhumanidentity", nhi.pk)])
    assert scope["deployment"] == {d.pk}
    detection.run(kinds=[K.THIRD_PARTY_EXPOSURE], scope=scope, now=NOW)
    assert list(
        Finding.objects.filter(kind=K.THIRD_PARTY_EXPOSURE).values_list(
            "subject_id", flat=True
        )
    ) == [d.pk]


def test_each_deployment_is_held_to_its_own_bounds_in_one_scan():
    tight = bounded({"max_error_rate": 0.01, "max_latency_ms": 100})
    loose = bounded({"max_error_rate": 0.5, "max_calls_per_hour": 1000})
    at_bound = bounded({"max_error_rate": 0.05})
    hour = HOUR0 - hours(1)
    usage(tight, hour, calls=100, errors=2, peak=50)  # 2 % > 1 %
    usage(loose, hour, calls=100, errors=20, peak=5000)  # 20 % < 50 %, no latency bound
    usage(loose, hour - hours(1), calls=100, errors=51)  # 51 % > 50 %
    usage(at_bound, hour, calls=100, errors=5)  # exactly 5 %: within
    run(K.OUT_OF_BOUNDS)
    found = {
        f.subject_id: f.evidence for f in Finding.objects.filter(kind=K.OUT_OF_BOUNDS)
    }
    assert set(found) == {tight.pk, loose.pk}
    assert found[tight.pk]["facts"]["breached"] == ["max_error_rate"]
    assert [r["at"] for r in found[loose.pk]["records"][1:]] == [
        (hour - hours(1)).isoformat()
    ]


def test_a_false_positive_holds_as_hours_pass_until_another_bound_breaks():
    d = bounded({"max_error_rate": 0.05, "max_latency_ms": 1000})
    usage(d, HOUR0 - hours(1), calls=10, errors=5)
    run(K.OUT_OF_BOUNDS)
    f = the(K.OUT_OF_BOUNDS, d)
    Finding.objects.filter(pk=f.pk).update(
        status="false_positive", suppressed_key=f.evidence_key
    )
    # Hours later, another hour breaks the same bound: the facts carry no clock, so the
    # false positive holds.
    usage(d, HOUR0 + hours(4), calls=10, errors=6)
    run(K.OUT_OF_BOUNDS, NOW + hours(5))
    f.refresh_from_db()
    assert f.status == "false_positive"
    # A bound it did not break before: the condition is another one, it opens again.
    usage(d, HOUR0 + hours(5), calls=10, peak=3000)
    run(K.OUT_OF_BOUNDS, NOW + hours(6))
    f.refresh_from_db()
    assert f.status == "open"
