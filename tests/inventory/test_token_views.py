"""API tokens UI: administrators issue (raw token shown once), list and revoke."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from pytest_django.asserts import assertTemplateUsed

from audit.models import AuditEvent
from inventory import models as m
from inventory import services
from inventory.views_tokens import FORM_INVALID, TOKEN_REVOKED

pytestmark = pytest.mark.django_db

LIST_URL = reverse("tokens:token_list")
ISSUE_URL = reverse("tokens:token_issue")
VALID = {"name": "CI deploys", "scopes": ["read", "deploy"], "days": "30"}


def _raw_token(response) -> str:
    match = re.search(
        r'value="(rp_[0-9a-f]+_[A-Za-z0-9_\-]+)"', response.content.decode()
    )
    assert match, "the raw token is on the page"
    return match.group(1)


def _api_status(client, raw: str) -> int:
    return client.get(
        "/api/v1/teams/", headers={"Authorization": f"Bearer {raw}"}
    ).status_code


def test_admin_issues_a_token_shown_once_that_authenticates(login, admin_user, client):
    admin = login(admin_user)

    response = admin.post(ISSUE_URL, VALID)

    assert response.status_code == 200
    assertTemplateUsed(response, "inventory/token_issued.html")
    assert "no-store" in response["Cache-Control"]
    raw = _raw_token(response)
    token = m.APIToken.objects.get()
    assert token.name == "CI deploys"
    assert token.scopes == ["deploy", "read"]
    assert token.created_by == admin_user
    assert 29 <= (token.expires_at - token.created_at).days <= 30
    assert token.identity.kind == m.NonHumanIdentity.Kind.RUNPROOF_TOKEN
    event = AuditEvent.objects.get(action="apitoken.issue")
    assert event.actor_id == admin_user.pk
    assert raw not in str(event.after)
    # Shown once: neither the list nor the identity page shows it again.
    listing = admin.get(LIST_URL)
    assert raw not in listing.content.decode()
    assert token.prefix in listing.content.decode()
    assert raw not in admin.get(token.identity.get_absolute_url()).content.decode()
    # And it works.
    client.logout()
    assert _api_status(client, raw) == 200


def test_token_list_shows_status_and_identity_link(login, admin_user):
    active, _ = services.api_token_issue(
        actor=None, name="live", scopes=["read"], days=5
    )
    revoked, _ = services.api_token_issue(
        actor=None, name="gone", scopes=["read"], days=5
    )
    services.api_token_revoke(actor=None, token=revoked)
    expired, _ = services.api_token_issue(
        actor=None, name="old", scopes=["read"], days=5
    )
    m.APIToken.objects.filter(pk=expired.pk).update(expires_at=expired.created_at)

    response = login(admin_user).get(LIST_URL)

    assert response.status_code == 200
    html = response.content.decode()
    statuses = re.findall(r'data-testid="token-status"><span[^>]*>(\w+)</span>', html)
    assert statuses == ["Expired", "Revoked", "Active"]  # newest first
    assert active.identity.get_absolute_url() in html
    assert html.count(">Revoke <") == 2  # no button on the revoked one


def test_token_list_query_count_is_constant(
    login, admin_user, django_assert_max_num_queries
):
    admin = login(admin_user)
    for count in (3, 30):
        while m.APIToken.objects.count() < count:
            services.api_token_issue(
                actor=admin_user, name="t", scopes=["read"], days=5
            )
        with django_assert_max_num_queries(8):
            assert admin.get(LIST_URL).status_code == 200


@pytest.mark.parametrize("role", ["owner", "risk", "compliance", "auditor"])
def test_non_admins_get_403_everywhere(request, login, role):
    token, raw = services.api_token_issue(actor=None, name="x", scopes=["read"], days=5)
    client = login(request.getfixturevalue(role))

    assert client.get(LIST_URL).status_code == 403
    assert client.get(ISSUE_URL).status_code == 403
    assert client.post(ISSUE_URL, VALID).status_code == 403
    assert (
        client.post(reverse("tokens:token_revoke", args=[token.pk])).status_code == 403
    )
    assert m.APIToken.objects.count() == 1
    token.refresh_from_db()
    assert token.revoked_at is None


def test_anonymous_is_sent_to_login(client):
    response = client.get(LIST_URL)

    assert response.status_code == 302
    assert reverse("login") in response["Location"]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({**VALID, "scopes": []}, "scopes", services.TOKEN_NO_SCOPES),
        ({**VALID, "scopes": ["root"]}, "scopes", None),
        ({**VALID, "days": "0"}, "days", services.TOKEN_DAYS_RANGE),
        ({**VALID, "days": "731"}, "days", services.TOKEN_DAYS_RANGE),
        ({**VALID, "days": "soon"}, "days", None),
        ({**VALID, "name": ""}, "name", None),
        ({**VALID, "name": "n" * 201}, "name", None),
    ],
)
def test_invalid_form_is_422_and_writes_nothing(
    login, admin_user, data, field, message
):
    response = login(admin_user).post(ISSUE_URL, data)

    assert response.status_code == 422
    assertTemplateUsed(response, "inventory/token_form.html")
    assert field in response.context["form"].errors
    if message:
        assert message in response.context["form"].errors[field]
    assert FORM_INVALID in [str(msg) for msg in response.context["messages"]]
    assert not m.APIToken.objects.exists()
    assert not m.NonHumanIdentity.objects.exists()
    assert not AuditEvent.objects.filter(action="apitoken.issue").exists()


def test_issue_form_renders_scopes_as_checkboxes(login, admin_user):
    response = login(admin_user).get(ISSUE_URL)

    html = response.content.decode()
    assert response.status_code == 200
    for scope in m.APIToken.Scope.values:
        assert f'type="checkbox" name="scopes" value="{scope}"' in html
    assert 'value="90"' in html
    assert "<script>" not in html
    assert "style=" not in html


def test_revoke_stops_the_token_and_twice_shows_an_error(login, admin_user, client):
    token, raw = services.api_token_issue(
        actor=None, name="ci", scopes=["read"], days=5
    )
    admin = login(admin_user)
    url = reverse("tokens:token_revoke", args=[token.pk])

    first = admin.post(url, follow=True)
    second = admin.post(url, follow=True)

    assert first.status_code == 200
    assert TOKEN_REVOKED.format(name="ci") in [
        str(x) for x in first.context["messages"]
    ]
    assert second.status_code == 200
    assert services.TOKEN_ALREADY_REVOKED in [
        str(x) for x in second.context["messages"]
    ]
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token.identity.status == m.NonHumanIdentity.Status.REVOKED
    assert AuditEvent.objects.filter(action="apitoken.revoke").count() == 1
    assert AuditEvent.objects.get(action="apitoken.revoke").actor_id == admin_user.pk
    client.logout()
    assert _api_status(client, raw) == 401


def test_revoke_needs_post_and_an_existing_token(login, admin_user):
    token, _ = services.api_token_issue(actor=None, name="ci", scopes=["read"], days=5)
    admin = login(admin_user)

    assert admin.get(reverse("tokens:token_revoke", args=[token.pk])).status_code == 405
    assert admin.post(reverse("tokens:token_revoke", args=[999999])).status_code == 404


def test_revoke_requires_csrf(admin_user, client):
    token, _ = services.api_token_issue(actor=None, name="ci", scopes=["read"], days=5)
    client.handler.enforce_csrf_checks = True
    client.force_login(admin_user)

    response = client.post(reverse("tokens:token_revoke", args=[token.pk]))

    assert response.status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None
