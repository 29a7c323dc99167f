"""Issue 9, item 5: lists say how many rows match (capped, in the page's own query), the
deployment list shows the approved version beside the observed one, and sorts on owner,
team, last seen and last call (keyset pages, NULL the smallest value), with the CSV
carrying the same."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inventory import models as m
from inventory import usage
from inventory.pagination import encode_cursor, keyset_paginate
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    ModelVersionFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def walk(qs, field: str, descending: bool, per_page: int = 3):
    """Every page forwards, then every page backwards from the last: both orders of pks."""
    pages, after = [], None
    while True:
        page = keyset_paginate(
            qs, field=field, descending=descending, after=after, per_page=per_page
        )
        pages.append(page)
        if not page.has_next:
            break
        after = page.next_cursor
    forwards = [d.pk for p in pages for d in p.rows]
    backwards, before = [], pages[-1].prev_cursor
    while before:
        page = keyset_paginate(
            qs, field=field, descending=descending, before=before, per_page=per_page
        )
        backwards = [d.pk for d in page.rows] + backwards
        before = page.prev_cursor
    return forwards, backwards + [d.pk for d in pages[-1].rows], len(pages)


def expected(qs, key, descending: bool) -> list[int]:
    """NULL the smallest value, ties broken by id in the sort's direction."""
    rows = list(qs)
    present = [r for r in rows if key(r) is not None]
    absent = [r for r in rows if key(r) is None]
    present.sort(key=lambda r: (key(r), r.pk), reverse=descending)
    absent.sort(key=lambda r: r.pk, reverse=descending)
    return [r.pk for r in (present + absent if descending else absent + present)]


@pytest.fixture
def mixed(team_a):
    """Deployments with and without owner, team and last call, with ties on each."""
    people = [UserFactory(username=n) for n in ("zoe", "adam", "mia")]
    teams = [team_a, TeamFactory(name="aaa-team")]
    model = AIModelFactory(team=team_a)
    for i in range(11):
        DeploymentFactory(
            model=model,
            name=f"dep-{i:02d}",
            owner=None if i % 4 == 0 else people[i % 3],
            team=None if i % 5 == 0 else teams[i % 2],
            last_call_at=None if i % 3 == 0 else T0 + timedelta(hours=i % 4),
        )
    return m.Deployment.objects.select_related("owner", "team")


@pytest.mark.parametrize(
    "field,key",
    [
        ("last_call_at", lambda d: d.last_call_at),
        ("owner_id", lambda d: d.owner_id),
        ("team_id", lambda d: d.team_id),
        # Names through a join page the same way (not a list's sort: no index).
        ("owner__username", lambda d: d.owner.username if d.owner else None),
    ],
)
@pytest.mark.parametrize("descending", [False, True])
def test_nullable_sorts_page_every_row_once_forward_and_back_null_smallest(
    mixed, field, key, descending
):
    forwards, backwards, pages = walk(mixed, field, descending)
    assert pages > 3
    assert forwards == expected(mixed, key, descending)
    assert backwards == forwards


def test_a_forged_null_cursor_on_a_field_never_null_starts_over(mixed):
    page = keyset_paginate(
        mixed, field="name", descending=False, after=encode_cursor([None, 3])
    )
    assert page.rows[0].name == "dep-00"


def test_the_count_is_capped_and_read_in_the_page_query(mixed):
    with CaptureQueriesContext(connection) as ctx:
        page = keyset_paginate(
            mixed, field="name", descending=False, per_page=2, count=True, cap=5
        )
    assert len(ctx) == 1
    assert page.matching == 6 and page.capped and page.matching_label == "5+"
    exact = keyset_paginate(mixed, field="name", descending=False, count=True)
    assert exact.matching == 11 and exact.matching_label == "11"
    # A cursor past the last row: no rows to carry the count, counted apart.
    past = keyset_paginate(
        mixed,
        field="name",
        descending=False,
        after=encode_cursor(["zzz", 1]),
        count=True,
    )
    assert past.rows == [] and past.matching == 11


def test_the_list_says_how_many_match_for_its_filters(client, admin_user, mixed):
    client.force_login(admin_user)
    body = client.get(reverse("inventory:deployment_list")).content.decode()
    assert 'data-testid="matching">11</span> matching' in body
    owned = m.Deployment.objects.filter(owner__isnull=True).count()
    body = client.get(
        reverse("inventory:deployment_list") + "?risk=ownerless"
    ).content.decode()
    assert f'data-testid="matching">{owned}</span> matching' in body


def test_a_costly_filter_counts_to_its_smaller_cap(
    client, admin_user, mixed, monkeypatch
):
    """A rule no index answers (drift, bound to a retired model) counts to a smaller cap,
    so the count does not cost more than the page; other filters keep COUNT_CAP."""
    from django.http import QueryDict

    from inventory import lists

    assert lists.count_cap(QueryDict("risk=drift")) < lists.COUNT_CAP
    assert lists.count_cap(QueryDict("risk=retired_model&q=x")) < lists.COUNT_CAP
    assert lists.count_cap(QueryDict("risk=ownerless")) == lists.COUNT_CAP
    monkeypatch.setitem(lists.COSTLY_COUNT_CAPS, ("risk", "ownerless"), 2)
    client.force_login(admin_user)
    body = client.get(
        reverse("inventory:deployment_list") + "?risk=ownerless"
    ).content.decode()
    assert 'data-testid="matching">2+</span> matching' in body


def test_the_list_sorts_on_owner_team_and_last_call(client, admin_user, mixed):
    client.force_login(admin_user)
    url = reverse("inventory:deployment_list")
    for alias, key in [
        ("owner", lambda d: d.owner_id),
        ("team", lambda d: d.team_id),
        ("last_call_at", lambda d: d.last_call_at),
    ]:
        for descending in (False, True):
            body = client.get(
                f"{url}?sort={'-' if descending else ''}{alias}"
            ).content.decode()
            names = [
                m.Deployment.objects.get(pk=pk).name
                for pk in expected(mixed, key, descending)
            ]
            positions = [body.index(f">{n}<") for n in names]
            assert positions == sorted(positions), (alias, descending)
            assert (
                'aria-sort="{}"'.format("descending" if descending else "ascending")
                in body
            )


def test_the_approved_version_is_the_baseline_on_the_page_and_in_the_csv(
    client, admin_user, team_a
):
    client.force_login(admin_user)
    model = AIModelFactory(team=team_a)
    baseline = ModelVersionFactory(model=model, version="2.0", approval="approved")
    pin = ModelVersionFactory(model=model, version="1.5", approval="approved")
    running = ModelVersionFactory(model=model, version="3.0")
    m.AIModel.objects.filter(pk=model.pk).update(baseline_version=baseline)
    DeploymentFactory(model=model, name="follows", observed_version=running)
    DeploymentFactory(
        model=model, name="pinned", observed_version=pin, approved_version=pin
    )
    bare = AIModelFactory(team=team_a)
    DeploymentFactory(
        model=bare,
        name="no-baseline",
        observed_version=ModelVersionFactory(model=bare, version="0.1"),
        write_access=True,
    )
    body = client.get(reverse("inventory:deployment_list")).content.decode()
    row = {
        name: body[body.index(f">{name}<") :].split("</tr>")[0]
        for name in ("follows", "pinned", "no-baseline")
    }
    assert "<td>2.0</td>" in row["follows"] and "drift" in row["follows"]
    assert "1.5 <span" in row["pinned"] and "pinned</span>" in row["pinned"]
    # Running 0.1, approved: none.
    assert "<td>0.1</td><td>—</td>" in row["no-baseline"]
    response = client.get(reverse("inventory:deployment_list") + "?export=csv")
    text = b"".join(response.streaming_content).decode().lstrip("\ufeff")
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(text))}
    assert rows["follows"]["approved_version"] == "2.0"
    assert rows["follows"]["approved_version_pinned"] == "false"
    assert rows["pinned"]["approved_version"] == "1.5"
    assert rows["pinned"]["approved_version_pinned"] == "true"
    assert rows["no-baseline"]["approved_version"] == ""
    assert "last_call_at" in rows["follows"]


def test_record_calls_moves_last_call_and_last_seen_forward_only(team_a):
    model = AIModelFactory(team=team_a)
    old = DeploymentFactory(model=model, last_seen_at=T0, last_call_at=None)
    seen_later = DeploymentFactory(
        model=model, last_seen_at=T0 + timedelta(days=2), last_call_at=T0
    )
    usage.record_calls(
        {old.pk: T0 + timedelta(hours=1), seen_later.pk: T0 + timedelta(hours=5)}
    )
    old.refresh_from_db()
    seen_later.refresh_from_db()
    assert old.last_call_at == T0 + timedelta(hours=1)
    assert old.last_seen_at == T0 + timedelta(hours=1)
    assert seen_later.last_call_at == T0 + timedelta(hours=5)
    assert seen_later.last_seen_at == T0 + timedelta(days=2)  # never moved back
    usage.record_calls({old.pk: T0})  # a replayed, older call
    old.refresh_from_db()
    assert old.last_call_at == T0 + timedelta(hours=1)
