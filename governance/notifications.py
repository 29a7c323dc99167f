"""Telling people about findings: an in-app list, and email through Django's backend.

A finding of severity high or above that is opened, reopened or assigned to a person
writes one `Notification` for them (`findings_assigned`). The emails go out from a task of
their own (`governance.tasks.send_notification_emails`, asked for when those rows commit
and run by beat every minute): it sends each person one message listing their unemailed
notifications (`email_pending`), not one per finding. The rows are the record of the work:
a lost broker message or a failed send leaves them unemailed for the next sweep.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import get_connection, send_mail
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from audit.sql import insert_rows
from governance.models import Finding, Notification

NOTIFY_MIN_SEVERITY = Finding.Severity.HIGH

# Only notifications this recent are emailed. The sweep makes up for a lost broker message
# or a failed send (minutes, hours while a mail server is down); it must not mail a backlog
# of old findings as "needing attention" once email starts working again or a person is
# given an address. Older ones stay in the in-app list. It also bounds what each sweep reads.
EMAIL_LOOKBACK = timedelta(days=7)
# People emailed per transaction: their rows stay locked while their messages are sent,
# and marking one read waits for that, so a transaction holds a few hundred people at most.
EMAIL_PEOPLE_PER_BATCH = 200

_NOTIFICATION_COLUMNS = ("recipient", "finding", "message", "url", "created_at")


def findings_assigned(*, finding_ids: Collection[int]) -> int:
    """Notify the assignees of these findings (those high or above, still unresolved):
    write their in-app notifications, and ask for the emails once those rows commit.
    Returns the number of notifications written."""
    if connection.vendor == "postgresql":
        with transaction.atomic():
            written = _insert_in_sql(list(finding_ids), timezone.now())
            if written:
                transaction.on_commit(_ask_for_emails, robust=True)
        return written
    findings = list(
        Finding.objects.filter(
            pk__in=list(finding_ids),
            severity__gte=NOTIFY_MIN_SEVERITY,
            assignee__isnull=False,
        )
        .exclude(status=Finding.Status.RESOLVED)
        .only("pk", "title", "severity", "assignee_id")
        .order_by("-severity", "pk")
    )
    if not findings:
        return 0
    now = timezone.now()
    rows = [
        Notification(
            recipient_id=finding.assignee_id,
            finding=finding,
            message=f"{finding.get_severity_display()}: {finding.title}"[:500],
            url=finding.get_absolute_url(),
            created_at=now,
        )
        for finding in findings
    ]
    with transaction.atomic():
        written = insert_rows(Notification, rows, _NOTIFICATION_COLUMNS)
        # After the commit, or the task could look before the rows are there. robust: a
        # broker that is down must not fail the run or request that committed them; the
        # beat sweep emails them.
        transaction.on_commit(_ask_for_emails, robust=True)
    return written


def _insert_in_sql(finding_ids: list[int], now: datetime) -> int:
    """`findings_assigned`'s rows written by one INSERT … SELECT (PostgreSQL): the same
    message (the severity's label, the title, at most 500 characters), link and order.
    Building a model instance and reversing a URL per finding took a first full run about
    3 s for its 33,000 notifications."""
    if not finding_ids:
        return 0
    qn = connection.ops.quote_name
    marker = 987654321
    prefix, _, suffix = reverse("governance:finding_detail", args=[marker]).partition(
        str(marker)
    )
    labels = " ".join(
        f"WHEN {int(value)} THEN %s" for value, _label in Finding.Severity.choices
    )
    label_params = [str(label) for _value, label in Finding.Severity.choices]
    finding = Finding._meta.db_table
    # Only quoted names from the models' meta and SQL written here are formatted in.
    sql = (
        f"INSERT INTO {qn(Notification._meta.db_table)} "  # noqa: S608
        f"({qn('recipient_id')}, {qn('finding_id')}, {qn('message')}, {qn('url')}, "
        f"{qn('created_at')}) "
        f"SELECT f.{qn('assignee_id')}, f.id, "
        f"left((CASE f.{qn('severity')} {labels} ELSE '' END) || ': ' || f.{qn('title')}, 500), "
        f"%s || f.id::text || %s, %s "
        f"FROM {qn(finding)} f "
        f"WHERE f.id = ANY(%s) AND f.{qn('severity')} >= %s "
        f"AND f.{qn('assignee_id')} IS NOT NULL AND f.{qn('status')} <> %s "
        f"ORDER BY f.{qn('severity')} DESC, f.id"
    )
    params = [
        *label_params,
        prefix,
        suffix,
        now,
        finding_ids,
        int(NOTIFY_MIN_SEVERITY),
        Finding.Status.RESOLVED.value,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(cursor.rowcount, 0)


def _ask_for_emails() -> None:
    from governance.tasks import send_notification_emails

    send_notification_emails.delay()


def email_pending(*, now: datetime | None = None) -> int:
    """Email every person their unemailed notifications (of a finding, at most
    `EMAIL_LOOKBACK` old), one message each, and mark those that went out. A person
    whose message failed keeps theirs unemailed for the next call; a person without an
    address, or inactive, is never emailed (in-app only). Returns the emails sent."""
    now = now or timezone.now()
    pending = Notification.objects.filter(
        emailed_at__isnull=True,
        finding__isnull=False,
        created_at__gte=now - EMAIL_LOOKBACK,
        recipient__is_active=True,
    ).exclude(recipient__email="")
    people = sorted(
        pending.order_by().values_list("recipient_id", flat=True).distinct()
    )
    if not people:
        return 0
    sent = 0
    # One connection for every message (an SMTP connection per email is most of the cost).
    with get_connection(fail_silently=True) as mail:
        for start in range(0, len(people), EMAIL_PEOPLE_PER_BATCH):
            part = people[start : start + EMAIL_PEOPLE_PER_BATCH]
            sent += _email_people(pending.filter(recipient_id__in=part), now, mail)
    return sent


def _email_people(pending: Any, now: datetime, mail: Any) -> int:
    with transaction.atomic():
        # Claimed under a row lock that another worker's claim skips (PostgreSQL; SQLite
        # has no row locks and Django leaves the clause out), so no row is emailed twice.
        # Only the notification rows are locked, not the joined people and findings.
        claimed = list(
            pending.select_for_update(skip_locked=True, of=("self",))
            .select_related("recipient", "finding")
            .only(
                "recipient",
                "finding",
                "recipient__email",
                "finding__title",
                "finding__severity",
            )
            .order_by("recipient_id", "-finding__severity", "finding_id", "pk")
        )
        by_person: dict[int, list[Notification]] = defaultdict(list)
        for notification in claimed:
            by_person[notification.recipient_id].append(notification)
        sent = 0
        delivered: list[int] = []
        for theirs in by_person.values():
            # A finding notified twice before its email went out is listed once.
            findings = list({n.finding_id: n.finding for n in theirs}.values())
            if _send(theirs[0].recipient.email, findings, mail):
                sent += 1
                delivered.extend(n.pk for n in theirs)
        # Only the people whose message went out: the others' stay unemailed. (Should this
        # transaction fail after a send, that person is emailed again: at least once.)
        if delivered:
            Notification.objects.filter(pk__in=delivered).update(emailed_at=now)
    return sent


def _send(address: str, findings: Sequence[Finding], mail: Any) -> int:
    base = getattr(settings, "RUNPROOF_BASE_URL", "").rstrip("/")
    lines = [
        f"- [{f.get_severity_display()}] {f.title}\n  {base}{f.get_absolute_url()}"
        for f in findings
    ]
    noun = "finding" if len(findings) == 1 else "findings"
    return send_mail(
        subject=f"Runproof: {len(findings)} {noun} assigned to you",
        message="These findings need your attention:\n\n" + "\n".join(lines) + "\n",
        from_email=None,
        recipient_list=[address],
        fail_silently=True,
        connection=mail,
    )
