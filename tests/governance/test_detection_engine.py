"""The engine's life cycle of a finding, on the missing-owner detector: open, update,
resolve, reopen; false positive and accepted risk; twice changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from governance import detection
from governance.models import Finding, FindingEvent, Notification
from inventory import models as im
from tests.factories import DeploymentFactory, UserFactory

pytestmark = pytest.mark.django_db
KIND = Finding.Kind.MISSING_OWNER


def _run(**kw):
    return detection.run(kinds=[KIND], **kw)


def test_open_update_resolve_reopen():
    d = DeploymentFactory(owner=None)
    result = _run()
    assert result.counts["opened"] == 1
    finding = Finding.objects.get(kind=KIND, subject_id=d.pk)
    assert finding.status == "open" and finding.deployment_id == d.pk
    assert finding.queue in {"team", "committee"}

    # Twice: nothing new, no second finding, no event.
    events = FindingEvent.objects.count()
    again = _run()
    assert again.counts["opened"] == 0 and again.counts["updated"] == 1
    assert Finding.objects.filter(kind=KIND).count() == 1
    assert FindingEvent.objects.count() == events

    owner = UserFactory()
    im.Deployment.objects.filter(pk=d.pk).update(owner=owner)
    assert _run().counts["resolved"] == 1
    finding.refresh_from_db()
    assert finding.status == "resolved" and finding.resolved_at

    im.Deployment.objects.filter(pk=d.pk).update(owner=None)
    assert _run().counts["reopened"] == 1
    finding.refresh_from_db()
    assert finding.status == "open" and finding.times_opened == 2
    assert Finding.objects.filter(kind=KIND).count() == 1
    assert list(finding.events.values_list("action", flat=True)) == [
        "opened",
        "resolved",
        "reopened",
    ]


def test_last_seen_moves_once_it_is_older_than_the_refresh(settings):
    settings.FINDINGS_SEEN_REFRESH_MINUTES = 60
    d = DeploymentFactory(owner=None)
    t0 = timezone.now()
    _run(now=t0)
    finding = Finding.objects.get(kind=KIND, subject_id=d.pk)
    assert finding.last_seen_at == t0

    # Confirmed again within the hour: the row is not rewritten.
    assert _run(now=t0 + timedelta(minutes=30)).counts["updated"] == 1
    finding.refresh_from_db()
    assert finding.last_seen_at == t0

    # An hour and more later, it moves to the run that confirmed it.
    later = t0 + timedelta(minutes=61)
    _run(now=later)
    finding.refresh_from_db()
    assert finding.last_seen_at == later

    # A change moves it at once, whatever its age.
    im.Deployment.objects.filter(pk=d.pk).update(name="renamed-for-the-title")
    changed = later + timedelta(minutes=1)
    _run(now=changed)
    finding.refresh_from_db()
    assert finding.last_seen_at == changed and "renamed-for-the-title" in finding.title


def test_scope_limits_the_run():
    a, b = DeploymentFactory(owner=None), DeploymentFactory(owner=None)
    _run(scope=detection.scope_for_changes([("inventory.deployment", a.pk)]))
    assert set(Finding.objects.values_list("subject_id", flat=True)) == {a.pk}
    _run()
    assert set(Finding.objects.values_list("subject_id", flat=True)) == {a.pk, b.pk}


def test_dry_run_writes_nothing():
    DeploymentFactory(owner=None)
    assert _run(dry_run=True).counts["opened"] == 1
    assert not Finding.objects.exists()


def test_false_positive_holds_until_the_evidence_changes():
    d = DeploymentFactory(owner=None)
    _run()
    finding = Finding.objects.get()
    Finding.objects.filter(pk=finding.pk).update(
        status="false_positive", suppressed_key=finding.evidence_key
    )
    _run()
    finding.refresh_from_db()
    assert finding.status == "false_positive"
    # The facts name the team: moving the deployment changes the evidence.
    other = DeploymentFactory().team
    im.Deployment.objects.filter(pk=d.pk).update(team=other)
    _run()
    finding.refresh_from_db()
    assert finding.status == "open"


def test_expired_acceptance_reopens():
    DeploymentFactory(owner=None)
    _run()
    finding = Finding.objects.get()
    now = timezone.now()
    Finding.objects.filter(pk=finding.pk).update(
        status="accepted", accepted_until=now + timedelta(days=1)
    )
    _run(now=now)
    finding.refresh_from_db()
    assert finding.status == "accepted"
    _run(now=now + timedelta(days=2))
    finding.refresh_from_db()
    assert finding.status == "open"


def test_high_findings_notify_their_assignee_once(
    settings, django_capture_on_commit_callbacks
):
    owner = UserFactory(email="owner@example.com")
    d = DeploymentFactory(owner=owner)
    finding = Finding.objects.create(
        kind=KIND,
        subject_type="deployment",
        subject_id=d.pk,
        deployment=d,
        title="t",
        severity=3,
        queue="owner",
        assignee=owner,
        evidence_key="x",
    )
    from governance import notifications

    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.findings_assigned(finding_ids=[finding.pk]) == 1
    assert len(mail.outbox) == 1 and "owner@example.com" in mail.outbox[0].to
    assert Notification.objects.get(recipient=owner).emailed_at is not None


def test_deletes_reach_the_copied_keys_without_a_database_constraint():
    """A finding's model, team, owner and assignee have no database constraint; Django
    still applies their on_delete (cascade for the model, set null for the others)."""
    owner = UserFactory()
    d = DeploymentFactory(owner=owner, business_purpose="", environment="production")
    detection.run(kinds=[Finding.Kind.MISSING_PURPOSE])
    finding = Finding.objects.get(kind=Finding.Kind.MISSING_PURPOSE, subject_id=d.pk)
    assert finding.team_id and finding.owner_id == owner.pk
    assert finding.assignee_id == owner.pk

    owner.delete()
    finding.refresh_from_db()
    assert finding.owner_id is None and finding.assignee_id is None
    team = finding.team
    im.Deployment.objects.filter(team=team).update(team=None)
    im.NonHumanIdentity.objects.filter(team=team).update(team=None)
    im.AIModel.objects.filter(team=team).update(team=None)
    team.delete()
    finding.refresh_from_db()
    assert finding.team_id is None
    model = finding.model
    im.Deployment.objects.filter(pk=d.pk).delete()
    assert not Finding.objects.filter(pk=finding.pk).exists()
    assert model is not None


@pytest.mark.services
def test_moving_last_seen_rewrites_the_row_without_touching_an_index():
    """The findings table keeps room in its pages (migration governance 0011), so a run
    moving an unchanged finding's last seen time is a heap-only update."""
    from django.db import connection

    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE oid = 'governance_finding'::regclass"
        )
        assert "fillfactor=50" in cursor.fetchone()[0]
    d = DeploymentFactory(owner=None)
    _run()
    finding = Finding.objects.get(kind=KIND, subject_id=d.pk)

    def hot_updates() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_stat_get_xact_tuples_hot_updated("
                "'governance_finding'::regclass)"
            )
            return cursor.fetchone()[0]

    before = hot_updates()
    later = timezone.now() + timedelta(hours=3)
    assert _run(now=later).counts["updated"] == 1
    finding.refresh_from_db()
    assert finding.last_seen_at == later
    assert hot_updates() == before + 1
