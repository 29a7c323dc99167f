"""The hourly run of the time-based kinds: the clock alone opens and resolves them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from governance import tasks
from governance.models import Finding
from tests.factories import IdentityFactory

pytestmark = pytest.mark.django_db


def test_the_time_based_kinds_are_real_kinds():
    assert set(tasks.TIME_BASED_KINDS) <= set(Finding.Kind.values)


def test_an_identity_expires_and_the_hourly_run_finds_it_without_any_change():
    now = timezone.now()
    key = IdentityFactory(status="active", expires_at=now + timedelta(minutes=30))
    tasks.detect_time_based.delay()
    assert not Finding.objects.filter(kind="expired_active", subject_id=key.pk).exists()
    with freeze_time(now + timedelta(hours=1)):
        tasks.detect_time_based.delay()
    finding = Finding.objects.get(kind="expired_active", subject_id=key.pk)
    assert finding.status == "open"
    # Only the time-based kinds ran: no other kind was opened.
    assert not Finding.objects.exclude(kind__in=tasks.TIME_BASED_KINDS).exists()
