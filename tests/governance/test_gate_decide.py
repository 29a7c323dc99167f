"""The release gate's decision (governance.gate): every reason on data built for it, allow
when clean, and what each decision records."""

from __future__ import annotations

import datetime as dt
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from governance import gate
from governance.models import Finding, GateDecision
from inventory import models as m
from tests.factories import AIModelFactory, DeploymentFactory, ModelVersionFactory
from tests.governance.gate_helpers import clean_release, finding, gate_token

pytestmark = pytest.mark.django_db

# A Wednesday, 12:00 UTC.
WEDNESDAY_NOON = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.UTC)


def ask(token, now=None, **inputs):
    request = gate.GateRequest(
        **{
            "model": "fraud-scorer",
            "version": "4",
            "environment": "production",
            **inputs,
        }
    )
    return gate.gate_decide(request=request, token=token, now=now or timezone.now())


def codes(decision: GateDecision) -> list[str]:
    return [r["code"] for r in decision.reasons]


@pytest.fixture
def release(db):
    return clean_release()


@pytest.fixture
def token(db):
    return gate_token()[0]


def test_clean_release_is_allowed(release, token):
    decision = ask(token, deployment="fraud-scorer-prod")
    assert decision.allowed is True
    assert decision.reasons == []
    assert decision.deployment == release["deployment"]


def test_by_model_id_and_deployment_id(release, token):
    decision = ask(
        token, model=release["model"].pk, deployment=release["deployment"].pk
    )
    assert decision.allowed is True
    assert decision.model == release["model"]


def test_model_name_of_digits_falls_back_to_id(release, token):
    decision = ask(token, model=str(release["model"].pk))
    assert decision.model == release["model"]


def test_the_live_row_wins_over_gone_ones_of_the_same_name(release, token):
    """One read resolves the model, its version and the deployment: by name, the row no
    source has stopped reporting comes first, then the newest."""
    gone = timezone.now() - timedelta(days=1)
    AIModelFactory(name="fraud-scorer", gone_at=gone)  # a newer id, gone
    DeploymentFactory(
        name="fraud-scorer-prod",
        model=release["model"],
        gone_at=gone,
        status=m.Deployment.Status.WITHDRAWN,
    )
    decision = ask(token, deployment="fraud-scorer-prod")
    assert decision.model == release["model"]
    assert decision.deployment == release["deployment"] and decision.allowed
    newer = DeploymentFactory(
        name="fraud-scorer-prod",
        model=release["model"],
        status=m.Deployment.Status.QUARANTINED,
        change_window=release["deployment"].change_window,
    )
    decision = ask(token, deployment="fraud-scorer-prod")
    assert decision.deployment == newer and codes(decision) == [
        "deployment_quarantined"
    ]
    other = ModelVersionFactory(model=AIModelFactory(name="other"), version="5")
    decision = ask(token, version="5")  # another model's version is no version here
    assert (
        codes(decision) == ["version_unknown"] and other.model_id != decision.model_id
    )


def test_endpoint_names_the_target(release, token):
    release["deployment"].status = m.Deployment.Status.QUARANTINED
    release["deployment"].save(update_fields=["status"])
    decision = ask(token, endpoint="https://fraud.internal/v1/score")
    assert decision.deployment == release["deployment"]
    assert codes(decision) == ["deployment_quarantined"]


def test_new_endpoint_is_a_new_deployment(release, token):
    decision = ask(token, endpoint="https://fraud.internal/v2/score")
    assert decision.deployment is None
    assert decision.allowed is True


def test_unknown_version(release, token):
    decision = ask(token, version="99")
    assert codes(decision) == ["version_unknown"]
    assert decision.allowed is False
    assert "'99'" in decision.reasons[0]["message"]


@pytest.mark.parametrize(
    ("approval", "code", "word"),
    [
        (m.ModelVersion.Approval.PENDING, "version_not_approved", "pending approval"),
        (m.ModelVersion.Approval.REJECTED, "version_not_approved", "rejected"),
        (m.ModelVersion.Approval.DEPRECATED, "version_deprecated", "deprecated"),
        (m.ModelVersion.Approval.RETIRED, "version_retired", "retired"),
    ],
)
def test_version_not_releasable(release, token, approval, code, word):
    m.ModelVersion.objects.filter(pk=release["version"].pk).update(approval=approval)
    decision = ask(token, deployment="fraud-scorer-prod")
    assert codes(decision) == [code]
    assert word in decision.reasons[0]["message"]


def test_model_retired(release, token):
    m.AIModel.objects.filter(pk=release["model"].pk).update(
        lifecycle=m.AIModel.Lifecycle.RETIRED
    )
    assert codes(ask(token)) == ["model_retired"]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (m.Deployment.Status.WITHDRAWN, "deployment_withdrawn"),
        (m.Deployment.Status.QUARANTINED, "deployment_quarantined"),
    ],
)
def test_deployment_out_of_service(release, token, status, code):
    m.Deployment.objects.filter(pk=release["deployment"].pk).update(status=status)
    assert codes(ask(token, deployment="fraud-scorer-prod")) == [code]


def test_open_critical_finding_on_the_deployment(release, token):
    found = finding(release["deployment"])
    decision = ask(token, deployment="fraud-scorer-prod")
    assert codes(decision) == ["critical_finding"]
    assert decision.reasons[0]["finding_id"] == found.pk


def test_acknowledged_critical_finding_still_denies(release, token):
    finding(release["deployment"], status=Finding.Status.ACKNOWLEDGED)
    assert codes(ask(token, deployment="fraud-scorer-prod")) == ["critical_finding"]


@pytest.mark.parametrize(
    ("severity", "status", "extra"),
    [
        (Finding.Severity.HIGH, Finding.Status.OPEN, {}),
        (Finding.Severity.CRITICAL, Finding.Status.RESOLVED, {}),
        (Finding.Severity.CRITICAL, Finding.Status.FALSE_POSITIVE, {}),
        (
            Finding.Severity.CRITICAL,
            Finding.Status.ACCEPTED,
            {"accepted_until": timezone.now() + timedelta(days=3)},
        ),
    ],
)
def test_findings_that_do_not_stop_a_release(release, token, severity, status, extra):
    extra = {**extra}
    if status == Finding.Status.RESOLVED:
        extra["resolved_at"] = timezone.now()
    finding(release["deployment"], severity=severity, status=status, **extra)
    assert ask(token, deployment="fraud-scorer-prod").allowed is True


def test_no_deployment_named_reads_the_models_deployments_in_that_environment(
    release, token
):
    other = DeploymentFactory(
        name="fraud-scorer-prod-eu",
        model=release["model"],
        change_window="Daily 00:00-24:00 UTC",
    )
    staging = DeploymentFactory(
        name="fraud-scorer-staging",
        model=release["model"],
        environment=m.Deployment.Environment.STAGING,
    )
    found = finding(other)
    finding(staging, kind=Finding.Kind.VERSION_DRIFT)
    production = ask(token)
    assert codes(production) == ["critical_finding"]
    assert production.reasons[0]["finding_id"] == found.pk
    # The same model to staging: only the staging deployment's finding counts.
    on_staging = ask(token, environment="staging")
    assert codes(on_staging) == ["critical_finding"]
    assert "fraud-scorer-staging" in on_staging.reasons[0]["message"]
    # Naming the clean deployment: its own findings only.
    assert ask(token, deployment="fraud-scorer-prod").allowed is True


def test_critical_finding_on_the_model_itself(release, token):
    Finding.objects.create(
        kind=Finding.Kind.MISSING_OWNER,
        subject_type=Finding.Subject.MODEL,
        subject_id=release["model"].pk,
        model=release["model"],
        title="No owner",
        severity=Finding.Severity.CRITICAL,
        queue=Finding.Queue.COMMITTEE,
        evidence_key="k",
    )
    decision = ask(token, deployment="fraud-scorer-prod")
    assert codes(decision) == ["critical_finding"]
    assert "model 'fraud-scorer'" in decision.reasons[0]["message"]


def test_expired_accepted_risk(release, token):
    found = finding(
        release["deployment"],
        severity=Finding.Severity.MEDIUM,
        status=Finding.Status.ACCEPTED,
        accepted_until=timezone.now() - timedelta(hours=1),
    )
    decision = ask(token, deployment="fraud-scorer-prod")
    assert codes(decision) == ["accepted_risk_expired"]
    assert decision.reasons[0]["finding_id"] == found.pk
    assert "expired" in decision.reasons[0]["message"]


def test_many_findings_are_capped_and_counted(release, token):
    for _ in range(gate.MAX_FINDING_REASONS + 2):
        finding(DeploymentFactory(model=release["model"]))
    decision = ask(token)
    assert codes(decision).count("critical_finding") == gate.MAX_FINDING_REASONS
    assert codes(decision)[-1] == "more_findings"


def test_outside_the_change_window(release, token):
    m.Deployment.objects.filter(pk=release["deployment"].pk).update(
        change_window="Tue 02:00-04:00 UTC; CAB first"
    )
    decision = ask(token, deployment="fraud-scorer-prod", now=WEDNESDAY_NOON)
    assert codes(decision) == ["outside_change_window"]
    assert "2026-12-08 02:00 UTC" in decision.reasons[0]["message"]
    tuesday = dt.datetime(2026, 12, 8, 3, 0, tzinfo=dt.UTC)
    assert ask(token, deployment="fraud-scorer-prod", now=tuesday).allowed is True


def test_change_window_in_its_own_time_zone(release, token):
    m.Deployment.objects.filter(pk=release["deployment"].pk).update(
        change_window="Wed 13:00-14:00 Europe/Paris"
    )
    # 12:30 UTC is 13:30 in Paris in December.
    inside = WEDNESDAY_NOON.replace(minute=30)
    assert ask(token, deployment="fraud-scorer-prod", now=inside).allowed is True
    # 11:30 UTC is 12:30 in Paris: closed, though 13:00-14:00 UTC would have been open.
    outside = WEDNESDAY_NOON.replace(hour=11, minute=30)
    assert ask(token, deployment="fraud-scorer-prod", now=outside).allowed is False


@pytest.mark.parametrize("text", ["", "ask Bob in #ops", "Someday 25:00-26:00 UTC"])
def test_production_without_a_readable_window_is_denied(release, token, text):
    m.Deployment.objects.filter(pk=release["deployment"].pk).update(change_window=text)
    assert codes(ask(token, deployment="fraud-scorer-prod")) == ["no_change_window"]


def test_staging_without_a_window_is_fine(release, token):
    DeploymentFactory(
        name="fraud-scorer-staging",
        model=release["model"],
        environment=m.Deployment.Environment.STAGING,
        change_window="",
    )
    decision = ask(token, environment="staging", deployment="fraud-scorer-staging")
    assert decision.allowed is True


def test_every_reason_at_once(release, token):
    m.ModelVersion.objects.filter(pk=release["version"].pk).update(
        approval=m.ModelVersion.Approval.RETIRED
    )
    m.AIModel.objects.filter(pk=release["model"].pk).update(
        lifecycle=m.AIModel.Lifecycle.RETIRED
    )
    m.Deployment.objects.filter(pk=release["deployment"].pk).update(
        status=m.Deployment.Status.WITHDRAWN, change_window="Tue 02:00-04:00 UTC"
    )
    finding(release["deployment"])
    finding(
        release["deployment"],
        kind=Finding.Kind.VERSION_DRIFT,
        severity=Finding.Severity.LOW,
        status=Finding.Status.ACCEPTED,
        accepted_until=WEDNESDAY_NOON - timedelta(days=1),
    )
    decision = ask(token, deployment="fraud-scorer-prod", now=WEDNESDAY_NOON)
    assert sorted(codes(decision)) == sorted(
        [
            "version_retired",
            "model_retired",
            "deployment_withdrawn",
            "outside_change_window",
            "critical_finding",
            "accepted_risk_expired",
        ]
    )


def test_decision_is_recorded_with_its_audit_event(release, token):
    m.ModelVersion.objects.filter(pk=release["version"].pk).update(
        approval=m.ModelVersion.Approval.PENDING
    )
    decision = ask(token, deployment="fraud-scorer-prod")
    row = GateDecision.objects.get(pk=decision.pk)
    assert row.actor_label == f"token:{token.prefix}"
    assert row.inputs == {
        "model": "fraud-scorer",
        "version": "4",
        "environment": "production",
        "deployment": "fraud-scorer-prod",
    }
    assert row.allowed is False
    assert row.model == release["model"]
    assert row.deployment == release["deployment"]
    assert row.version == "4"
    assert row.environment == "production"
    event = AuditEvent.objects.get(
        object_type="governance.gatedecision", object_id=str(row.pk)
    )
    assert event.action == gate.ACTION_DENY
    assert event.actor_kind == "token"
    assert event.actor_label == f"token:{token.prefix}"
    assert event.actor_id is None
    assert event.team_id == release["deployment"].team_id
    assert event.after["decision"] == "deny"
    assert event.after["reasons"][0]["code"] == "version_not_approved"


def test_allow_is_audited_too(release, token):
    decision = ask(token)
    event = AuditEvent.objects.get(
        object_type="governance.gatedecision", object_id=str(decision.pk)
    )
    assert event.action == gate.ACTION_ALLOW


@pytest.mark.parametrize(
    ("inputs", "field", "text"),
    [
        ({"model": "nope"}, "model", "No model 'nope'"),
        ({"model": 999_999}, "model", "No model 999999"),
        ({"deployment": "nope"}, "deployment", "No deployment 'nope'"),
        ({"deployment": 999_999}, "deployment", "No deployment 999999"),
    ],
)
def test_unknown_names_record_nothing(release, token, inputs, field, text):
    with pytest.raises(ValidationError) as exc:
        ask(token, **inputs)
    assert text in exc.value.message_dict[field][0]
    assert not GateDecision.objects.exists()
    assert not AuditEvent.objects.filter(object_type="governance.gatedecision").exists()


def test_deployment_of_another_model_or_environment(release, token):
    other = DeploymentFactory(model=AIModelFactory(name="other"))
    with pytest.raises(ValidationError) as exc:
        ask(token, deployment=other.pk)
    assert (
        "not a deployment of model 'fraud-scorer'"
        in exc.value.message_dict["deployment"][0]
    )
    staging = DeploymentFactory(
        model=release["model"], environment=m.Deployment.Environment.STAGING
    )
    with pytest.raises(ValidationError) as exc:
        ask(token, deployment=staging.pk)
    assert (
        "runs in staging, not in production" in exc.value.message_dict["deployment"][0]
    )
    assert not GateDecision.objects.exists()


def test_a_handful_of_queries(release, token, django_assert_max_num_queries):
    for kind in list(Finding.Kind.values)[:5]:
        finding(release["deployment"], kind=kind)
    ModelVersionFactory.create_batch(5, model=release["model"])
    # Two reads (the model, its version and the deployment in one; the findings), the
    # insert, the audit chain's lock, insert and head update, and the savepoint of the
    # gate's transaction (nested in the test's; the audit trail adds none).
    with django_assert_max_num_queries(8):
        decision = ask(token, deployment="fraud-scorer-prod")
    assert codes(decision) == ["critical_finding"] * 5


def test_a_failed_audit_event_leaves_no_decision(release, token, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("audit down")

    monkeypatch.setattr(gate.audit, "record", broken)
    with pytest.raises(RuntimeError):
        ask(token)
    assert not GateDecision.objects.exists()
