"""Notifications: the in-app list (own only, mark read, all read), the navigation's count,
and one email per person per detection run through Django's (locmem) email backend."""

from __future__ import annotations

import pytest
from django.urls import reverse

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


def test_one_email_per_person_per_run(settings, mailoutbox):
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
    sent = notifications.findings_assigned(finding_ids=[f.pk for f in findings])
    assert sent == 2
    assert sorted(m.to[0] for m in mailoutbox) == [
        "alice@example.com",
        "bob@example.com",
    ]
    to_alice = next(m for m in mailoutbox if m.to == ["alice@example.com"])
    assert to_alice.subject == "Runproof: 3 findings assigned to you"
    assert to_alice.body.index("[Critical]") < to_alice.body.index("[High]")
    assert f"/governance/findings/{findings[1].pk}/" in to_alice.body
    assert alice.notifications.count() == 3 and bob.notifications.count() == 1
    assert quiet.notifications.get().emailed_at is None  # no address: in-app only
    assert not alice.notifications.filter(emailed_at__isnull=True).exists()


def test_detection_run_batches_the_email(settings, mailoutbox):
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
    assert notifications.findings_assigned(finding_ids=ids) == 1
    assert len(mailoutbox) == 1 and "3 findings" in mailoutbox[0].subject


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
