"""The audit log pages: who sees which events, filters, CSV, the htmx fragment, query counts."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from pytest_django.asserts import assertTemplateUsed

from audit.chain import audit_checkpoint_take
from audit.models import AuditEvent
from inventory import models as m
from inventory import services
from tests.factories import UserFactory

URL = reverse("governance:audit_list")


@pytest.fixture
def events(admin_user, owner, team_a, team_b):
    """Events of both teams, and one the owner made about an object outside their teams."""
    mine = services.object_create(
        actor=owner, instance=m.AIModel(name="credit-scorer", team=team_a)
    )
    mine.description = "Scores loan applications."
    services.object_update(actor=admin_user, instance=mine)
    theirs = services.object_create(
        actor=admin_user, instance=m.AIModel(name="fraud-detector", team=team_b)
    )
    personal = services.object_create(
        actor=owner, instance=m.System(name="olivia-sandbox", owner=owner)
    )
    return {"mine": mine, "theirs": theirs, "personal": personal}


def seqs(response) -> list[int]:
    return [row.seq for row in response.context["table"].data]


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["admin_user", "auditor", "compliance", "risk"])
def test_read_all_roles_see_every_event_and_the_chain_status(
    role, request, client, events
):
    client.force_login(request.getfixturevalue(role))
    response = client.get(URL)
    assert response.status_code == 200
    assert seqs(response) == [4, 3, 2, 1]
    assert 'data-testid="chain-status"' in response.content.decode()
    assert response.context["chain"]["head_seq"] == 4


@pytest.mark.django_db
def test_owner_sees_their_teams_events_and_their_own_actions(client, owner, events):
    client.force_login(owner)
    response = client.get(URL)
    assert response.status_code == 200
    # 1, 2: their team's model (2 was made by the admin); 4: their own action, no team.
    assert seqs(response) == [4, 2, 1]
    body = response.content.decode()
    assert "fraud-detector" not in body
    assert response.context["chain"] is None  # the whole chain is not theirs to see


@pytest.mark.django_db
def test_owner_gets_404_for_another_teams_event(client, owner, events):
    client.force_login(owner)
    theirs = AuditEvent.objects.get(object_repr="fraud-detector")
    mine = AuditEvent.objects.get(seq=1)
    assert (
        client.get(reverse("governance:audit_detail", args=[theirs.seq])).status_code
        == 404
    )
    assert (
        client.get(reverse("governance:audit_detail", args=[mine.seq])).status_code
        == 200
    )
    assert client.get(reverse("governance:audit_detail", args=[999])).status_code == 404


@pytest.mark.django_db
def test_users_without_a_role_are_refused(client, events):
    nobody = UserFactory(username="nobody")
    nobody.save()  # UserFactory saves the password only when it adds a role
    client.force_login(nobody)
    assert client.get(URL).status_code == 403
    assert client.get(reverse("governance:audit_detail", args=[1])).status_code == 403
    assert client.get(URL + "?export=csv").status_code == 403


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(client, events):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_detail_shows_the_field_level_diff_and_integrity(client, admin_user, events):
    client.force_login(admin_user)
    response = client.get(reverse("governance:audit_detail", args=[2]))
    assertTemplateUsed(response, "governance/audit_detail.html")
    changes = {
        c["field"]: (c["before"], c["after"]) for c in response.context["changes"]
    }
    assert changes == {"description": ("", "Scores loan applications.")}
    assert response.context["hash_ok"] and response.context["link_ok"]
    assert response.context["object_url"] == events["mine"].get_absolute_url()
    body = response.content.decode()
    assert "matches its hash" in body
    assert "object_type=inventory.aimodel&amp;object_id=" in body


@pytest.mark.django_db
def test_the_history_link_of_a_detail_page_filters_to_that_object(
    client, admin_user, events
):
    client.force_login(admin_user)
    detail = client.get(events["mine"].get_absolute_url()).content.decode()
    link = f"{URL}?object_type=inventory.aimodel&object_id={events['mine'].pk}"
    assert link.replace("&", "&amp;") in detail or link in detail
    assert seqs(client.get(link)) == [2, 1]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor=OLIVIA", [4, 1]),
        ("actor=oli", []),  # the whole actor name, not a fragment
        ("action=aimodel.create", [3, 1]),
        ("action=aimodel.update", [2]),
        ("object_type=inventory.system", [4]),
        ("object_type=Inventory.AIModel&object_id={mine}", [2, 1]),
        ("q=fraud", [3]),
        ("q=scorer&action=aimodel.create", [1]),
    ],
)
def test_filters(query, expected, client, admin_user, events):
    client.force_login(admin_user)
    response = client.get(f"{URL}?{query.format(mine=events['mine'].pk)}")
    assert seqs(response) == expected


@pytest.mark.django_db
def test_date_filters_take_whole_days(client, admin_user, team_a, monkeypatch):
    from audit import services as audit

    now = timezone.now()
    # Events are append-only (on PostgreSQL, enforced), so the old one is recorded as old.
    monkeypatch.setattr(
        audit, "timezone", SimpleNamespace(now=lambda: now - timedelta(days=10))
    )
    services.object_create(actor=admin_user, instance=m.System(name="old", team=team_a))
    monkeypatch.undo()
    services.object_create(actor=admin_user, instance=m.System(name="new", team=team_a))
    client.force_login(admin_user)
    today = timezone.localdate().isoformat()
    ten_days_ago = (timezone.localdate() - timedelta(days=10)).isoformat()
    nine_days_ago = (timezone.localdate() - timedelta(days=9)).isoformat()
    assert seqs(client.get(f"{URL}?date_from={today}")) == [2]
    assert seqs(client.get(f"{URL}?date_to={ten_days_ago}")) == [1]
    assert seqs(client.get(f"{URL}?date_to={nine_days_ago}")) == [1]
    assert seqs(
        client.get(f"{URL}?date_from={ten_days_ago}&date_to={ten_days_ago}")
    ) == [1]
    assert seqs(client.get(f"{URL}?date_from={nine_days_ago}&date_to={today}")) == [2]


@pytest.mark.django_db
def test_invalid_filters_are_reported_and_ignored(client, admin_user, events):
    client.force_login(admin_user)
    response = client.get(f"{URL}?date_from=yesterday")
    assert seqs(response) == [4, 3, 2, 1]
    assert "were not valid" in response.content.decode()
    # The last date there is: its next day would overflow (this was a 500).
    response = client.get(f"{URL}?date_to=9999-12-31&date_from=0001-01-01")
    assert response.status_code == 200 and seqs(response) == [4, 3, 2, 1]
    assert "were not valid" in response.content.decode()


@pytest.mark.django_db
def test_csv_export_holds_the_filtered_events(client, owner, events):
    client.force_login(owner)
    response = client.get(f"{URL}?export=csv&action=aimodel.create")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["seq"] for r in rows] == ["1"]  # the admin's fraud-detector is not theirs
    assert rows[0]["action"] == "aimodel.create"
    assert rows[0]["actor_label"] == "olivia"
    assert '"name":"credit-scorer"' in rows[0]["after"]
    assert rows[0]["before"] == ""
    assert len(rows[0]["hash"]) == 64


@pytest.mark.django_db
def test_htmx_request_gets_the_results_fragment(client, admin_user, events):
    client.force_login(admin_user)
    page = client.get(f"{URL}?action=aimodel.create")
    fragment = client.get(
        f"{URL}?action=aimodel.create", headers={"HX-Request": "true"}
    )
    page_body, body = page.content.decode(), fragment.content.decode()
    assert "<html" in page_body and 'id="filters"' in page_body
    assert "<html" not in body and 'id="filters"' not in body
    assert body.lstrip().startswith('<div id="results"')
    assert seqs(fragment) == [3, 1]
    assert "HX-Request" in fragment["Vary"]
    # The export link in the fragment keeps the filters, so it follows htmx updates.
    assert "?action=aimodel.create&amp;export=csv" in body


@pytest.mark.django_db
def test_keyset_pages_walk_forward_and_back(client, admin_user, team_a):
    for n in range(60):
        services.object_create(
            actor=admin_user, instance=m.System(name=f"s{n:02}", team=team_a)
        )
    client.force_login(admin_user)
    first = client.get(URL)
    page = first.context["page"]
    assert seqs(first) == list(range(60, 10, -1))
    second = client.get(f"{URL}?after={page.next_cursor}")
    assert seqs(second) == list(range(10, 0, -1))
    back = client.get(f"{URL}?before={second.context['page'].prev_cursor}")
    assert seqs(back) == seqs(first)
    ascending = client.get(f"{URL}?sort=seq")
    assert seqs(ascending)[:3] == [1, 2, 3]


def _build_events(n: int, actor, team) -> None:
    for i in range(n):
        services.object_create(
            actor=actor, instance=m.System(name=f"sys-{team.pk}-{i}", team=team)
        )


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["admin_user", "owner"])
def test_query_count_does_not_grow_with_events(
    role, request, client, team_a, admin_user, django_assert_max_num_queries
):
    client.force_login(request.getfixturevalue(role))
    client.get(URL)  # the first request stamps the session (idle timeout)
    _build_events(3, admin_user, team_a)
    audit_checkpoint_take()
    few = _queries(client, URL)
    few_detail = _queries(client, reverse("governance:audit_detail", args=[2]))
    _build_events(30, admin_user, team_a)
    with django_assert_max_num_queries(few):
        client.get(URL)
    with django_assert_max_num_queries(few):
        client.get(URL, headers={"HX-Request": "true"})
    with django_assert_max_num_queries(few_detail):
        client.get(reverse("governance:audit_detail", args=[20]))
    assert few <= 8
