"""Telling people about findings: an in-app list, and email through Django's backend.

A finding of severity high or above that is opened, reopened or assigned to a person
writes one `Notification` for them; each person gets one email per detection run (or per
bulk assignment) listing theirs, not one per finding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from governance.models import Finding, Notification

NOTIFY_MIN_SEVERITY = Finding.Severity.HIGH


def findings_assigned(*, finding_ids: Collection[int]) -> int:
    """Notify the assignees of these findings (those high or above, still unresolved).
    Returns the number of emails sent."""
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
    by_person: dict[int, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_person[finding.assignee_id].append(finding)
    with transaction.atomic():
        Notification.objects.bulk_create(
            [
                Notification(
                    recipient_id=person,
                    finding=finding,
                    message=f"{finding.get_severity_display()}: {finding.title}"[:500],
                    url=finding.get_absolute_url(),
                    created_at=now,
                )
                for person, theirs in by_person.items()
                for finding in theirs
            ],
            batch_size=1000,
        )
    users = list(
        get_user_model()
        .objects.filter(pk__in=by_person, is_active=True)
        .exclude(email="")
        .only("pk", "email")
    )
    sent = 0
    emailed: list[int] = []
    base = getattr(settings, "RUNPROOF_BASE_URL", "").rstrip("/")
    for user in users:
        theirs = by_person[user.pk]
        lines = [
            f"- [{f.get_severity_display()}] {f.title}\n  {base}{f.get_absolute_url()}"
            for f in theirs
        ]
        noun = "finding" if len(theirs) == 1 else "findings"
        delivered = send_mail(
            subject=f"Runproof: {len(theirs)} {noun} assigned to you",
            message="These findings need your attention:\n\n" + "\n".join(lines) + "\n",
            from_email=None,
            recipient_list=[user.email],
            fail_silently=True,
        )
        if delivered:
            sent += delivered
            emailed.append(user.pk)
    # Only the people whose message went out: the others' notifications stay unemailed.
    if emailed:
        Notification.objects.filter(recipient_id__in=emailed, created_at=now).update(
            emailed_at=timezone.now()
        )
    return sent
