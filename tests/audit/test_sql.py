"""audit.sql's set-based writes and fast reads give what the ORM gives (on SQLite they
are the ORM; on PostgreSQL COPY, unnest UPDATE and psycopg's own datetime loader)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit.sql import copy_rows, fetch_dicts, fetch_rows, reserve_ids, update_rows
from governance.models import Finding
from inventory import models as im
from tests.factories import DeploymentFactory, IdentityFactory

pytestmark = pytest.mark.django_db


def test_fetch_rows_reads_what_the_orm_reads():
    now = timezone.now().replace(microsecond=123456)
    a = IdentityFactory(issued_at=now - timedelta(days=3), expires_at=None)
    IdentityFactory(issued_at=now, rotated_at=now)
    qs = im.NonHumanIdentity.objects.order_by("pk").values_list(
        "pk", "name", "issued_at", "rotated_at", "expires_at", "status"
    )
    rows = fetch_rows(qs)
    assert rows == [tuple(r) for r in qs]
    assert rows[0][0] == a.pk and rows[0][2] == a.issued_at and rows[0][4] is None
    assert rows[0][2].utcoffset() == timedelta(0)
    # A column Django converts (JSON) takes the ORM's own path, with the same result.
    qs = im.NonHumanIdentity.objects.order_by("pk").values_list("pk", "scopes")
    assert fetch_rows(qs) == [tuple(r) for r in qs]
    # Named columns, as dicts.
    dicts = fetch_dicts(im.NonHumanIdentity.objects.order_by("pk"), ["pk", "name"])
    assert dicts[0] == {"pk": a.pk, "name": a.name}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY is PostgreSQL")
def test_copy_rows_under_reserved_ids_and_update_rows():
    d = DeploymentFactory()
    ids = reserve_ids(Finding, 2)
    assert len(set(ids)) == 2
    now = timezone.now()
    columns = [
        "id",
        "kind",
        "subject_type",
        "subject_id",
        "deployment_id",
        "title",
        "severity",
        "tier",
        "status",
        "queue",
        "assigned_manually",
        "source",
        "evidence",
        "evidence_key",
        "opened_at",
        "first_opened_at",
        "last_seen_at",
        "times_opened",
        "decision_reason",
        "suppressed_key",
        "updated_at",
    ]
    rows = [
        (pk, kind, "deployment", d.pk, d.pk, f"t {pk}", 2, 3, "open", "committee",
         False, "", '{"facts": {"n": 1}}', "k", now, now, now, 1, "", "", now)
        for pk, kind in zip(ids, ["missing_owner", "missing_purpose"], strict=True)
    ]  # fmt: skip
    assert copy_rows(Finding, columns, rows) == 2
    found = {f.pk: f for f in Finding.objects.filter(pk__in=ids)}
    assert set(found) == set(ids)
    assert found[ids[0]].evidence == {"facts": {"n": 1}} and found[ids[0]].priority
    # Each row its own values, JSON included.
    for n, f in enumerate(found.values()):
        f.title, f.evidence = f"renamed {n}", {"n": n}
    assert update_rows(Finding, list(found.values()), ["title", "evidence"]) == 2
    after = {f.pk: (f.title, f.evidence) for f in Finding.objects.filter(pk__in=ids)}
    assert after == {f.pk: (f.title, f.evidence) for f in found.values()}
    # A new id after the reserved ones: the sequence moved past them.
    assert reserve_ids(Finding, 1)[0] > max(ids)
