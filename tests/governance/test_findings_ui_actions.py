"""People acting on findings: acknowledge, assign, accept the risk, false positive,
reopen. Permissions by role, audit events, the engine's follow-up, and bad input as 4xx."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from audit.models import AuditEvent
from governance import detection
from governance import services_findings as services
from governance.models import Finding, FindingEvent, Notification
from inventory import models as im
from inventory.roles import Role
from tests.factories import DeploymentFactory, TeamFactory, UserFactory
from tests.governance.findings_ui_helpers import make_finding

pytestmark = pytest.mark.django_db


def _url(finding, action):
    return reverse("governance:finding_action", args=[finding.pk, action])


def _audit(finding, action):
    return AuditEvent.objects.filter(
        action=f"finding.{action}",
        object_type="governance.finding",
        object_id=str(finding.pk),
    )


def _has(response, text: str) -> bool:
    return escape(text) in response.content.decode()


def _in_a_month():
    return (timezone.localdate() + timedelta(days=30)).isoformat()


# ---------------------------------------------------------------------------
# Acknowledge
# ---------------------------------------------------------------------------
def test_owner_of_the_team_acknowledges(client, owner, team_a):
    finding = make_finding(team=team_a)
    client.force_login(owner)
    response = client.post(_url(finding, "acknowledge"))
    assert response.status_code == 302
    finding.refresh_from_db()
    assert finding.status == "acknowledged"
    assert finding.acknowledged_by == owner and finding.acknowledged_at
    event = _audit(finding, "acknowledge").get()
    assert event.actor_id == owner.pk and event.team_id == team_a.pk
    assert event.before["status"] == "open" and event.after["status"] == "acknowledged"
    assert finding.events.filter(action="acknowledged", actor_label="olivia").exists()


def test_assignee_outside_the_team_may_acknowledge(client, other_owner, team_a):
    finding = make_finding(team=team_a, assignee=other_owner)
    client.force_login(other_owner)
    assert client.post(_url(finding, "acknowledge")).status_code == 302
    finding.refresh_from_db()
    assert finding.status == "acknowledged"


def test_other_team_cannot_see_or_acknowledge(client, other_owner, team_a):
    finding = make_finding(team=team_a)
    client.force_login(other_owner)
    assert client.post(_url(finding, "acknowledge")).status_code == 404
    finding.refresh_from_db()
    assert finding.status == "open"


@pytest.mark.parametrize("role", ["auditor", "compliance"])
def test_readers_cannot_act(client, request, role, team_a):
    finding = make_finding(team=team_a)
    client.force_login(request.getfixturevalue(role))
    for action in ("acknowledge", "assign", "accept", "false_positive"):
        response = client.post(
            _url(finding, action),
            {"reason": "x", "until": _in_a_month(), "assignee": "rita"},
        )
        assert response.status_code == 403, action
    finding.refresh_from_db()
    assert finding.status == "open"
    assert not AuditEvent.objects.filter(action__startswith="finding.").exists()


def test_acknowledge_twice_is_a_clear_422(client, owner, team_a):
    finding = make_finding(team=team_a)
    client.force_login(owner)
    client.post(_url(finding, "acknowledge"))
    response = client.post(_url(finding, "acknowledge"))
    assert response.status_code == 422
    assert _has(response, services.ALREADY_ACKNOWLEDGED)
    assert _audit(finding, "acknowledge").count() == 1


def test_resolved_finding_takes_no_action(client, risk, team_a):
    finding = make_finding(team=team_a, status="resolved")
    client.force_login(risk)
    response = client.post(_url(finding, "acknowledge"))
    assert response.status_code == 422
    assert _has(response, services.RESOLVED)


def test_unknown_action_is_404_and_get_is_405(client, risk, team_a):
    finding = make_finding(team=team_a)
    client.force_login(risk)
    assert client.post(_url(finding, "delete")).status_code == 404
    assert client.get(_url(finding, "acknowledge")).status_code == 405


# ---------------------------------------------------------------------------
# Assign
# ---------------------------------------------------------------------------
def test_committee_assigns_and_notifies_high_severity(
    client, risk, owner, team_a, django_capture_on_commit_callbacks
):
    finding = make_finding(team=team_a, severity=Finding.Severity.HIGH)
    client.force_login(risk)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_url(finding, "assign"), {"assignee": "olivia"})
    assert response.status_code == 302
    finding.refresh_from_db()
    assert finding.assignee == owner and finding.assigned_manually
    assert finding.queue == "owner"
    assert _audit(finding, "assign").get().after["assignee_id"] == owner.pk
    note = Notification.objects.get(recipient=owner, finding=finding)
    assert note.emailed_at is not None
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [owner.email]


def test_medium_severity_assignment_does_not_notify(
    client, risk, owner, team_a, django_capture_on_commit_callbacks
):
    finding = make_finding(team=team_a, severity=Finding.Severity.MEDIUM)
    client.force_login(risk)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(_url(finding, "assign"), {"assignee": str(owner.pk)})
    finding.refresh_from_db()
    assert finding.assignee == owner
    assert not Notification.objects.exists() and not mail.outbox


def test_team_member_assigns_within_the_team_only(client, owner, team_a, team_b):
    colleague = UserFactory(username="colin", role=Role.OWNER, teams=[team_a])
    stranger = UserFactory(username="stan", role=Role.OWNER, teams=[team_b])
    finding = make_finding(team=team_a)
    client.force_login(owner)
    response = client.post(_url(finding, "assign"), {"assignee": "stan"})
    assert response.status_code == 422
    assert _has(response, "member of the finding")
    finding.refresh_from_db()
    assert finding.assignee is None
    assert (
        client.post(_url(finding, "assign"), {"assignee": "colin"}).status_code == 302
    )
    finding.refresh_from_db()
    assert finding.assignee == colleague
    assert stranger.pk != colleague.pk


def test_assign_bad_input(client, risk, auditor, team_a):
    finding = make_finding(team=team_a)
    client.force_login(risk)
    for value, text in [
        ("", services.ASSIGNEE_REQUIRED),
        ("nobody-here", services.ASSIGNEE_UNKNOWN),
        ("99999999999999999999999", services.ASSIGNEE_UNKNOWN),
        ("aude", services.ASSIGNEE_CANNOT_ACT),
    ]:
        response = client.post(_url(finding, "assign"), {"assignee": value})
        assert response.status_code == 422, value
        assert _has(response, text)
    assert not _audit(finding, "assign").exists()


def test_engine_keeps_a_manual_assignment():
    deployment = DeploymentFactory(owner=None)
    detection.run(kinds=["missing_owner"], notify=False)
    finding = Finding.objects.get(subject_id=deployment.pk)
    risk = UserFactory(username="r2", role=Role.RISK)
    person = UserFactory(username="p2", role=Role.OWNER, teams=[deployment.team])
    services.finding_assign(actor=risk, finding=finding, assignee=person)
    detection.run(kinds=["missing_owner"], notify=False)
    finding.refresh_from_db()
    assert finding.assignee == person and finding.assigned_manually


# ---------------------------------------------------------------------------
# Accept the risk
# ---------------------------------------------------------------------------
def test_committee_accepts_with_reason_and_expiry(client, risk, team_a):
    finding = make_finding(team=team_a)
    client.force_login(risk)
    response = client.post(
        _url(finding, "accept"), {"reason": "Vendor fix due", "until": _in_a_month()}
    )
    assert response.status_code == 302
    finding.refresh_from_db()
    assert finding.status == "accepted"
    assert finding.decision_reason == "Vendor fix due" and finding.decided_by == risk
    assert finding.accepted_until.date() == timezone.localdate() + timedelta(days=30)
    event = _audit(finding, "accept").get()
    assert event.after["status"] == "accepted" and event.after["accepted_until"]
    assert finding.events.get(action="accepted").note == "Vendor fix due"
    page = client.get(finding.get_absolute_url()).content.decode()
    assert "Risk accepted" in page and "Vendor fix due" in page


def test_owner_cannot_accept_or_mark_false_positive(client, owner, team_a):
    finding = make_finding(team=team_a)
    client.force_login(owner)
    assert (
        client.post(
            _url(finding, "accept"), {"reason": "x", "until": _in_a_month()}
        ).status_code
        == 403
    )
    assert (
        client.post(_url(finding, "false_positive"), {"reason": "x"}).status_code == 403
    )
    finding.refresh_from_db()
    assert finding.status == "open"


@pytest.mark.parametrize(
    ("reason", "until", "message"),
    [
        ("", "+30", services.REASON_REQUIRED),
        ("   ", "+30", services.REASON_REQUIRED),
        ("x" * 2001, "+30", "Keep the reason under"),
        ("ok", "", services.EXPIRY_REQUIRED),
        ("ok", "not-a-date", services.EXPIRY_INVALID),
        ("ok", "9999-12-31", "An acceptance lasts at most 365 days"),
        ("ok", "-1", services.EXPIRY_PAST),
        ("ok", "+366", "An acceptance lasts at most 365 days"),
        ("ok", "2026-02-30", services.EXPIRY_INVALID),
    ],
)
def test_accept_bad_input_is_422(client, admin_user, team_a, reason, until, message):
    if until.startswith(("+", "-")) and until[1:].isdigit():
        until = (timezone.localdate() + timedelta(days=int(until))).isoformat()
    finding = make_finding(team=team_a)
    client.force_login(admin_user)
    response = client.post(_url(finding, "accept"), {"reason": reason, "until": until})
    assert response.status_code == 422
    assert _has(response, message)
    finding.refresh_from_db()
    assert finding.status == "open" and not _audit(finding, "accept").exists()


def test_the_bound_is_a_setting(settings, risk, team_a):
    settings.FINDING_ACCEPTANCE_MAX_DAYS = 10
    finding = make_finding(team=team_a)
    with pytest.raises(ValidationError, match="at most 10 days"):
        services.finding_accept_risk(
            actor=risk, finding=finding, reason="r", until=_in_a_month()
        )
    ok = timezone.localdate() + timedelta(days=5)
    services.finding_accept_risk(actor=risk, finding=finding, reason="r", until=ok)
    assert Finding.objects.get(pk=finding.pk).status == "accepted"


def test_expired_acceptance_reopens_through_the_engine():
    deployment = DeploymentFactory(owner=None)
    detection.run(kinds=["missing_owner"], notify=False)
    finding = Finding.objects.get(subject_id=deployment.pk)
    risk = UserFactory(username="r3", role=Role.RISK)
    services.finding_accept_risk(
        actor=risk,
        finding=finding,
        reason="migration",
        until=timezone.localdate() + timedelta(days=2),
    )
    detection.run(kinds=["missing_owner"], notify=False)
    assert Finding.objects.get(pk=finding.pk).status == "accepted"
    detection.run(
        kinds=["missing_owner"], notify=False, now=timezone.now() + timedelta(days=3)
    )
    finding.refresh_from_db()
    assert finding.status == "open"
    assert finding.events.filter(action="acceptance_expired").exists()


# ---------------------------------------------------------------------------
# False positive and reopen
# ---------------------------------------------------------------------------
def test_false_positive_holds_until_the_evidence_changes():
    deployment = DeploymentFactory(owner=None)
    detection.run(kinds=["missing_owner"], notify=False)
    finding = Finding.objects.get(subject_id=deployment.pk)
    risk = UserFactory(username="r4", role=Role.RISK)
    services.finding_mark_false_positive(
        actor=risk, finding=finding, reason="owned by the platform team"
    )
    finding.refresh_from_db()
    assert finding.status == "false_positive"
    assert finding.suppressed_key == finding.evidence_key
    assert _audit(finding, "false_positive").get().actor_id == risk.pk
    detection.run(kinds=["missing_owner"], notify=False)
    assert Finding.objects.get(pk=finding.pk).status == "false_positive"
    # The evidence changes: the deployment moves to another team (a fact of this kind).
    im.Deployment.objects.filter(pk=deployment.pk).update(team=TeamFactory())
    detection.run(kinds=["missing_owner"], notify=False)
    finding.refresh_from_db()
    assert finding.status == "open" and finding.suppressed_key == ""
    assert finding.events.filter(action="reopened").exists()


def test_false_positive_needs_a_reason_and_an_open_finding(client, risk, team_a):
    finding = make_finding(team=team_a)
    client.force_login(risk)
    response = client.post(_url(finding, "false_positive"), {"reason": ""})
    assert response.status_code == 422
    assert _has(response, services.REASON_REQUIRED)
    assert (
        client.post(_url(finding, "false_positive"), {"reason": "dup"}).status_code
        == 302
    )
    again = client.post(_url(finding, "false_positive"), {"reason": "dup"})
    assert again.status_code == 422
    assert _has(again, "Only an open finding")


def test_committee_reopens_an_acceptance_and_a_false_positive(client, risk, team_a):
    accepted = make_finding(team=team_a, status="open")
    services.finding_accept_risk(
        actor=risk, finding=accepted, reason="r", until=_in_a_month()
    )
    silenced = make_finding(team=team_a)
    services.finding_mark_false_positive(actor=risk, finding=silenced, reason="fp")
    client.force_login(risk)
    for finding in (accepted, silenced):
        assert (
            client.post(_url(finding, "reopen"), {"reason": "new facts"}).status_code
            == 302
        )
        finding.refresh_from_db()
        assert finding.status == "open"
        assert finding.accepted_until is None and finding.suppressed_key == ""
        assert _audit(finding, "reopen").exists()
        assert finding.events.filter(action="reopened", note="new facts").exists()
    response = client.post(_url(accepted, "reopen"))
    assert response.status_code == 422
    assert _has(response, "Only an accepted risk or a false positive")


def test_owner_cannot_reopen(client, owner, risk, team_a):
    finding = make_finding(team=team_a)
    services.finding_mark_false_positive(actor=risk, finding=finding, reason="fp")
    client.force_login(owner)
    assert client.post(_url(finding, "reopen")).status_code == 403


def test_service_refuses_wrong_roles_directly(owner, auditor, team_a):
    finding = make_finding(team=team_a)
    with pytest.raises(PermissionDenied):
        services.finding_acknowledge(actor=auditor, finding=finding)
    with pytest.raises(PermissionDenied):
        services.finding_accept_risk(
            actor=owner, finding=finding, reason="r", until=_in_a_month()
        )
    with pytest.raises(PermissionDenied):
        services.finding_reopen(actor=owner, finding=finding)
    assert FindingEvent.objects.filter(finding=finding).count() == 1  # opened only


def test_detail_shows_only_the_forms_the_user_may_use(
    client, owner, risk, auditor, team_a
):
    finding = make_finding(team=team_a)
    client.force_login(owner)
    page = client.get(finding.get_absolute_url()).content.decode()
    assert 'data-testid="acknowledge"' in page and 'data-testid="assign"' in page
    assert 'data-testid="accept"' not in page
    client.force_login(risk)
    page = client.get(finding.get_absolute_url()).content.decode()
    assert 'data-testid="accept"' in page and 'data-testid="false-positive"' in page
    client.force_login(auditor)
    page = client.get(finding.get_absolute_url()).content.decode()
    assert (
        'data-testid="no-actions"' in page and 'data-testid="acknowledge"' not in page
    )


def test_detail_renders_evidence_as_escaped_tables_in_constant_queries(
    client, risk, owner, team_a, django_assert_max_num_queries
):
    finding = make_finding(
        team=team_a,
        owner=owner,
        evidence={
            "facts": {"owner": None, "note": "<b>bold</b>"},
            "records": [
                {
                    "source": "mlflow:1",
                    "what": "<script>x()</script>",
                    "at": "2026-12-01",
                },
                {"source": "otlp", "extra": {"nested": [1, 2]}},
            ],
        },
    )
    client.force_login(risk)
    client.get(finding.get_absolute_url())
    services.finding_acknowledge(actor=risk, finding=finding)
    with CaptureQueriesContext(connection) as few:
        response = client.get(finding.get_absolute_url())
    body = response.content.decode()
    assert (
        "<script>x()</script>" not in body
        and "&lt;script&gt;x()&lt;/script&gt;" in body
    )
    assert "&lt;b&gt;bold&lt;/b&gt;" in body
    assert response.context["record_columns"] == ["source", "what", "at", "extra"]
    assert response.context["record_rows"][1][3] == '{"nested": [1, 2]}'
    assert 'data-testid="finding-subject"' in body
    for _ in range(30):
        FindingEvent.objects.create(
            finding=finding, kind=finding.kind, action="evidence"
        )
    with django_assert_max_num_queries(len(few)):
        client.get(finding.get_absolute_url())


def test_assign_takes_the_type_ahead_label(client, risk, owner, team_a):
    finding = make_finding(team=team_a)
    client.force_login(risk)
    page = client.get(finding.get_absolute_url()).content.decode()
    assert 'hx-get="/inventory/lookup/user/?field=assignee&amp;labelled=1"' in page
    response = client.post(
        _url(finding, "assign"), {"assignee": f"olivia (#{owner.pk})"}
    )
    assert response.status_code == 302
    finding.refresh_from_db()
    assert finding.assignee == owner


@pytest.mark.django_db(transaction=True)
def test_an_action_waits_for_a_detection_run_of_its_kind():
    """A run holds its kind's lock while it reads and writes findings back whole; an
    acknowledgement waits for it, then reads the run's result, and is not overwritten."""
    import threading
    import time

    from django.db import connections, transaction

    if connection.vendor != "postgresql":
        pytest.skip(
            "the engine's advisory lock is PostgreSQL's (SQLite has one writer)"
        )

    finding = make_finding()
    person = UserFactory(username="waiter", role=Role.RISK)
    held, release = threading.Event(), threading.Event()

    def run_holding_the_lock():
        try:
            with transaction.atomic():
                detection._lock(finding.kind)
                # A run reads its findings without row locks (and writes them back whole
                # before it commits): only the kind's lock keeps an action out meanwhile.
                assert Finding.objects.get(pk=finding.pk).status == "open"
                held.set()
                release.wait(5)
        finally:
            connections.close_all()

    worker = threading.Thread(target=run_holding_the_lock)
    worker.start()
    assert held.wait(5)
    threading.Timer(0.8, release.set).start()
    started = time.monotonic()
    services.finding_acknowledge(actor=person, finding=finding)
    waited = time.monotonic() - started
    worker.join(5)
    assert waited >= 0.7, waited
    finding.refresh_from_db()
    assert finding.status == "acknowledged"
