"""Bearer authentication on the API: who gets 401, who gets 403, who reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory import models as m
from inventory import services
from inventory.api.authentication import INVALID_TOKEN
from inventory.api.permissions import HasReadScope

pytestmark = pytest.mark.django_db

URL = "/api/v1/deployments/"


def _issue(*scopes: str, days: int = 30) -> tuple[m.APIToken, str]:
    return services.api_token_issue(
        actor=None, name="machine", scopes=scopes, days=days
    )


def _get(client, authorization: str | None = None):
    headers = {"Authorization": authorization} if authorization else {}
    return client.get(URL, headers=headers)


def test_missing_token_is_401_with_challenge_not_a_login_redirect(client):
    response = _get(client)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="runproof"'
    assert response["Content-Type"] == "application/json"
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer nonsense",
        "Bearer rp_000000000000_secret",
        "Bearer",
        "Bearer two words",
    ],
)
def test_bad_token_is_401(client, authorization):
    _issue(m.APIToken.Scope.READ)

    response = _get(client, authorization)

    assert response.status_code == 401
    assert response.json() == {"detail": INVALID_TOKEN}
    assert response["WWW-Authenticate"] == 'Bearer realm="runproof"'


def test_token_with_a_wrong_secret_is_401(client):
    token, raw = _issue(m.APIToken.Scope.READ)
    forged = f"rp_{token.prefix}_{'x' * 43}"

    assert _get(client, f"Bearer {forged}").status_code == 401
    assert _get(client, f"Bearer {raw}").status_code == 200


def test_expired_token_is_401(client):
    token, raw = _issue(m.APIToken.Scope.READ)
    m.APIToken.objects.filter(pk=token.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )

    response = _get(client, f"Bearer {raw}")

    assert response.status_code == 401
    assert response.json() == {"detail": INVALID_TOKEN}


def test_revoked_token_is_401(client):
    token, raw = _issue(m.APIToken.Scope.READ)
    assert _get(client, f"Bearer {raw}").status_code == 200

    services.api_token_revoke(actor=None, token=token)

    assert _get(client, f"Bearer {raw}").status_code == 401


def test_token_without_read_scope_is_403(client):
    _, raw = _issue(m.APIToken.Scope.TELEMETRY, m.APIToken.Scope.DEPLOY)

    response = _get(client, f"Bearer {raw}")

    assert response.status_code == 403
    assert response.json() == {"detail": HasReadScope.message}


def test_read_scope_reads_every_team(client, team_a, team_b):
    from tests.factories import DeploymentFactory

    mine = DeploymentFactory(model__team=team_a)
    theirs = DeploymentFactory(model__team=team_b)
    _, raw = _issue(m.APIToken.Scope.READ)

    response = _get(client, f"Bearer {raw}")

    assert response.status_code == 200
    assert {row["id"] for row in response.json()["results"]} == {mine.pk, theirs.pk}


def test_keyword_is_case_insensitive(client):
    _, raw = _issue(m.APIToken.Scope.READ)

    assert _get(client, f"bearer {raw}").status_code == 200


def test_a_session_is_not_an_api_credential(login, admin_user):
    client = login(admin_user)

    response = client.get(URL)

    assert response.status_code == 401


def test_responses_are_not_cached(client):
    _, raw = _issue(m.APIToken.Scope.READ)

    response = _get(client, f"Bearer {raw}")

    assert "no-store" in response["Cache-Control"]


def test_use_is_recorded_on_the_token_and_its_identity(client):
    token, raw = _issue(m.APIToken.Scope.READ)

    _get(client, f"Bearer {raw}")

    token.refresh_from_db()
    token.identity.refresh_from_db()
    assert token.last_used_at is not None
    assert token.identity.last_used_at == token.last_used_at


def test_no_csrf_token_needed_for_bearer_requests(client):
    _, raw = _issue(m.APIToken.Scope.READ)
    client.handler.enforce_csrf_checks = True

    response = client.post(
        URL,
        {},
        content_type="application/json",
        headers={"Authorization": f"Bearer {raw}"},
    )

    # Method not allowed (the API is read-only), not a CSRF 403.
    assert response.status_code == 405
