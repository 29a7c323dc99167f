"""Notifications: the in-app list (own only, mark read, all read), the navigation's count,
and one email per person per detection run through Django's (locmem) email backend, sent
by the `send_notification_emails` task (eager in tests) once the rows commit, or by its
beat sweep."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from governance import detection, notifications
from governance.models import Finding, Notification
from inventory import models as im
from inventory.roles import Role
from tests.factories import DeploymentFactory, TeamFactory, UserFactory
from tests.governance.findings_ui_helpers import make_finding

pytestmark = pytest.mark.django_db
LIST = reverse("governance:notification_list")
READ = reverse("governance:notification_read")
COUNT = reverse("governance:notification_count")


def test_one_email_per_person_per_run(
    settings, mailoutbox, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    alice = UserFactory(username="alice", role=Role.OWNER)
    bob = UserFactory(username="bob", role=Role.OWNER)
    quiet = UserFactory(username="quiet", role=Role.OWNER, email="")
    findings = [
        make_finding(assignee=alice, severity=Finding.Severity.HIGH),
        make_finding(assignee=alice, severity=Finding.Severity.CRITICAL),
        make_finding(assignee=alice, severity=Finding.Severity.HIGH),
        make_finding(assignee=bob, severity=Finding.Severity.HIGH),
        make_finding(assignee=bob, severity=Finding.Severity.LOW),  # below the bar
        make_finding(assignee=quiet, severity=Finding.Severity.HIGH),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        written = notifications.findings_assigned(finding_ids=[f.pk for f in findings])
    assert written == 5  # alice's three, bob's high one, quiet's
    assert sorted(m.to[0] for m in mailoutbox) == [
        "alice@example.com",
        "bob@example.com",
    ]
    to_alice = next(m for m in mailoutbox if m.to == ["alice@example.com"])
    assert to_alice.subject == "Runproof: 3 findings assigned to you"
    assert to_alice.body.index("[Critical]") < to_alice.body.index("[High]")
    first, third = findings[0].pk, findings[2].pk
    assert to_alice.body.index(f"/{first}/") < to_alice.body.index(f"/{third}/")
    assert f"{settings.RUNPROOF_BASE_URL}/governance/findings/{findings[1].pk}/" in (
        to_alice.body
    )
    assert alice.notifications.count() == 3 and bob.notifications.count() == 1
    assert quiet.notifications.get().emailed_at is None  # no address: in-app only
    assert not alice.notifications.filter(emailed_at__isnull=True).exists()


def test_detection_run_batches_the_email(
    settings, mailoutbox, django_capture_on_commit_callbacks
):
    """A run opening several high findings for one person sends them one message."""
    person = UserFactory(username="pat", role=Role.OWNER)
    team = TeamFactory()
    # Tier 1 raises missing_owner from medium to high.
    for _ in range(3):
        d = DeploymentFactory(owner=None, model__team=team)
        im.Deployment.objects.filter(pk=d.pk).update(risk_tier=1)
    result = detection.run(kinds=["missing_owner"], notify=False)
    assert result.counts["opened"] == 3
    ids = list(Finding.objects.values_list("pk", flat=True))
    Finding.objects.filter(pk__in=ids).update(assignee=person)
    assert Finding.objects.filter(severity__gte=3).count() == 3
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications.findings_assigned(finding_ids=ids) == 3
    assert len(mailoutbox) == 1 and "3 findings" in mailoutbox[0].subject
    assert not person.notifications.filter(emailed_at__isnull=True).exists()


def _pending(person, *, severity=Finding.Severity.HIGH, **kw) -> Notification:
    finding = make_finding(assignee=person, severity=severity)
    return Notification.objects.create(
        recipient=person, finding=finding, message=f"High: {finding.title}", **kw
    )


def test_the_task_twice_sends_once(mailoutbox):
    from governance.tasks import send_notification_emails

    alice = UserFactory(username="alice", role=Role.OWNER)
    notes = [_pending(alice), _pending(alice, severity=Finding.Severity.CRITICAL)]
    send_notification_emails.delay()
    send_notification_emails.delay()
    assert len(mailoutbox) == 1
    assert mailoutbox[0].subject == "Runproof: 2 findings assigned to you"
    assert all(Notification.objects.get(pk=n.pk).emailed_at for n in notes)


def test_a_failed_send_stays_pending_for_the_next_sweep(monkeypatch, mailoutbox):
    """send_mail with fail_silently returns 0 on failure: the rows stay unemailed, and the
    next sweep sends them (one message, not one per attempt)."""
    from django.core.mail.backends.locmem import EmailBackend

    alice = UserFactory(username="alice", role=Role.OWNER)
    note = _pending(alice)
    monkeypatch.setattr(EmailBackend, "send_messages", lambda self, messages: 0)
    assert notifications.email_pending() == 0
    note.refresh_from_db()
    assert note.emailed_at is None and not mailoutbox
    monkeypatch.undo()
    assert notifications.email_pending() == 1
    note.refresh_from_db()
    assert note.emailed_at is not None and len(mailoutbox) == 1
    assert notifications.email_pending() == 0 and len(mailoutbox) == 1


def test_one_failed_person_does_not_hold_back_the_others(monkeypatch, mailoutbox):
    from django.core.mail.backends.locmem import EmailBackend

    alice = UserFactory(username="alice", role=Role.OWNER)
    bob = UserFactory(username="bob", role=Role.OWNER)
    to_alice, to_bob = _pending(alice), _pending(bob)
    real = EmailBackend.send_messages

    def refuse_bob(self, messages):
        return 0 if messages[0].to == [bob.email] else real(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", refuse_bob)
    assert notifications.email_pending() == 1
    assert [m.to for m in mailoutbox] == [[alice.email]]
    to_alice.refresh_from_db()
    to_bob.refresh_from_db()
    assert to_alice.emailed_at is not None and to_bob.emailed_at is None


def test_older_than_the_look_back_is_not_emailed(mailoutbox):
    alice = UserFactory(username="alice", role=Role.OWNER)
    now = timezone.now()
    old = _pending(
        alice, created_at=now - notifications.EMAIL_LOOKBACK - timedelta(minutes=1)
    )
    assert notifications.email_pending(now=now) == 0
    old.refresh_from_db()
    assert old.emailed_at is None and not mailoutbox
    recent = _pending(alice, created_at=now - timedelta(days=1))
    assert notifications.email_pending(now=now) == 1
    assert mailoutbox[0].subject == "Runproof: 1 finding assigned to you"
    recent.refresh_from_db()
    old.refresh_from_db()
    assert recent.emailed_at == now and old.emailed_at is None


def test_without_an_address_or_inactive_in_app_only(
    mailoutbox, django_capture_on_commit_callbacks
):
    quiet = UserFactory(username="quiet", role=Role.OWNER, email="")
    gone = UserFactory(username="gone", role=Role.OWNER, is_active=False)
    findings = [make_finding(assignee=p, severity=3) for p in (quiet, gone)]
    with django_capture_on_commit_callbacks(execute=True):
        notifications.findings_assigned(finding_ids=[f.pk for f in findings])
    assert notifications.email_pending() == 0
    assert not mailoutbox
    assert quiet.notifications.get().emailed_at is None
    assert gone.notifications.get().emailed_at is None


def test_a_notification_without_a_finding_is_not_emailed(mailoutbox):
    alice = UserFactory(username="alice", role=Role.OWNER)
    Notification.objects.create(recipient=alice, message="a note")
    assert notifications.email_pending() == 0 and not mail.outbox


def test_the_beat_sweeps_every_minute(settings):
    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["notification-emails"]
    assert entry["task"] == "governance.tasks.send_notification_emails"
    assert entry["schedule"] <= 60
    assert "governance.tasks.send_notification_emails" in app.tasks


def test_inbox_lists_only_mine_and_marks_read(client, owner, other_owner, team_a):
    finding = make_finding(team=team_a)
    mine = [
        Notification.objects.create(
            recipient=owner, finding=finding, message=f"High: thing {i}", url="/x/"
        )
        for i in range(3)
    ]
    theirs = Notification.objects.create(recipient=other_owner, message="not yours")
    client.force_login(owner)
    page = client.get(LIST)
    body = page.content.decode()
    assert "High: thing 0" in body and "not yours" not in body
    assert len(page.context["page"].rows) == 3
    assert 'data-testid="notification-count">3<' in client.get(COUNT).content.decode()

    client.post(READ, {"id": mine[0].pk})
    mine[0].refresh_from_db()
    assert mine[0].read_at is not None
    # Another person's notification is not mine to mark.
    client.post(READ, {"id": theirs.pk})
    theirs.refresh_from_db()
    assert theirs.read_at is None
    unread = client.get(LIST, {"state": "unread"})
    assert [n.pk for n in unread.context["page"].rows] == [mine[2].pk, mine[1].pk]
    read = client.get(LIST, {"state": "read"})
    assert [n.pk for n in read.context["page"].rows] == [mine[0].pk]
    csv_body = b"".join(client.get(LIST, {"export": "csv"}).streaming_content).decode()
    assert "High: thing 2" in csv_body and "not yours" not in csv_body

    back = LIST + "?state=unread"
    response = client.post(READ, {"all": "yes", "back": back}, follow=True)
    assert response.redirect_chain[-1][0] == back
    assert "2 notifications marked read." in response.content.decode()
    assert not owner.notifications.filter(read_at__isnull=True).exists()
    assert client.get(COUNT).content.decode().strip() == ""


@pytest.mark.parametrize("value", ["", "abc", "1" * 30, "-1"])
def test_mark_read_bad_input_is_400(client, owner, value):
    client.force_login(owner)
    assert client.post(READ, {"id": value}).status_code == 400


def test_inbox_escapes_messages(client, owner):
    Notification.objects.create(recipient=owner, message="<img src=x onerror=alert(1)>")
    client.force_login(owner)
    body = client.get(LIST).content.decode()
    assert "<img src=x" not in body and "&lt;img src=x" in body


def test_nav_links_findings_and_loads_the_count_lazily(client, owner):
    client.force_login(owner)
    body = client.get(reverse("dashboard")).content.decode()
    assert 'data-testid="nav-findings"' in body
    assert f'hx-get="{COUNT}"' in body and 'hx-trigger="load"' in body


def test_anonymous_is_sent_to_sign_in(client):
    for url in (LIST, COUNT, reverse("governance:finding_list")):
        response = client.get(url)
        assert response.status_code == 302 and "login" in response["Location"]


@pytest.mark.django_db(transaction=True)
def test_rows_another_worker_holds_are_skipped(mailoutbox):
    """On PostgreSQL a sweep skips the rows another worker has claimed (and does not wait
    for them); once that worker lets go they are the next sweep's."""
    import threading

    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    alice = UserFactory(username="alice", role=Role.OWNER)
    bob = UserFactory(username="bob", role=Role.OWNER)
    held, free = _pending(alice), _pending(bob)
    locked, release = threading.Event(), threading.Event()

    def other_worker():
        from django.db import connections

        try:
            with transaction.atomic():
                list(Notification.objects.filter(pk=held.pk).select_for_update())
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    worker = threading.Thread(target=other_worker)
    worker.start()
    try:
        assert locked.wait(10)
        assert notifications.email_pending() == 1
        assert [m.to for m in mailoutbox] == [[bob.email]]
    finally:
        release.set()
        worker.join(10)
    assert notifications.email_pending() == 1
    assert [m.to for m in mailoutbox] == [[bob.email], [alice.email]]
    held.refresh_from_db()
    free.refresh_from_db()
    assert held.emailed_at is not None and free.emailed_at is not None


def test_the_notifications_written_name_the_finding_and_link_to_it():
    """`findings_assigned` writes, for each unresolved finding of severity high or above
    assigned to a person, their message (the severity's label and the title, at most
    500 characters) and the finding's link: on PostgreSQL in one statement, elsewhere
    row by row, the same rows."""
    alice, bob = UserFactory(username="n-alice"), UserFactory(username="n-bob")
    long_title = "té '%s" * 50  # the longest title a finding holds, odd characters
    critical = make_finding(assignee=alice, severity=Finding.Severity.CRITICAL)
    high = make_finding(
        assignee=bob, severity=Finding.Severity.HIGH, title=long_title[:300]
    )
    medium = make_finding(assignee=alice, severity=Finding.Severity.MEDIUM)
    unassigned = make_finding(severity=Finding.Severity.CRITICAL)
    resolved = make_finding(
        assignee=bob, severity=Finding.Severity.HIGH, status=Finding.Status.RESOLVED
    )

    written = notifications.findings_assigned(
        finding_ids=[f.pk for f in (critical, high, medium, unassigned, resolved)]
    )

    assert written == 2
    rows = {
        n.finding_id: n
        for n in Notification.objects.filter(finding__isnull=False).order_by("id")
    }
    assert set(rows) == {critical.pk, high.pk}
    assert rows[critical.pk].recipient_id == alice.pk
    assert rows[critical.pk].message == f"Critical: {critical.title}"
    assert rows[critical.pk].url == critical.get_absolute_url()
    assert rows[high.pk].recipient_id == bob.pk
    assert rows[high.pk].message == f"High: {high.title}"[:500]
    assert rows[high.pk].url == high.get_absolute_url()
    assert rows[critical.pk].read_at is None and rows[critical.pk].emailed_at is None
