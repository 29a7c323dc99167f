"""Every inventory page and action, for every role: who gets what.

Objects live in two teams: the owner's ("mine") and another team's ("theirs"). An owner
asking for another team's object gets 404 (its existence is not revealed); a role that may
read but not change gets 403 on change pages and actions.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from inventory import models as m
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
    SystemFactory,
)

ROLES = ["owner", "risk", "compliance", "auditor", "admin_user"]
KEYS = ["team", "aimodel", "modelversion", "system", "deployment", "identity"]


@pytest.fixture
def world(team_a, team_b):
    def objects_for(team):
        model = AIModelFactory(team=team)
        version = ModelVersionFactory(model=model)
        system = SystemFactory(team=team)
        deployment = DeploymentFactory(
            model=model, team=team, system=system, observed_version=version
        )
        identity = IdentityFactory(team=team, deployments=[deployment])
        return {
            "team": team,
            "aimodel": model,
            "modelversion": version,
            "system": system,
            "deployment": deployment,
            "identity": identity,
        }

    return {"mine": objects_for(team_a), "theirs": objects_for(team_b)}


def expected_read(role: str, whose: str) -> int:
    return 404 if role == "owner" and whose == "theirs" else 200


def expected_edit(role: str, key: str, whose: str) -> int:
    if role == "owner" and whose == "theirs":
        return 404
    if role == "admin_user":
        return 200
    if role == "owner":
        return 403 if key == "team" else 200
    return 403


def expected_delete(role: str, whose: str) -> int:
    if role == "owner" and whose == "theirs":
        return 404
    return 200 if role == "admin_user" else 403


def expected_create(role: str, key: str) -> int:
    if role == "admin_user":
        return 200
    if role == "owner":
        return 403 if key == "team" else 200
    return 403


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_role_page_matrix(role, request, client, world):
    user = request.getfixturevalue(role)
    client.force_login(user)
    failures = []

    def check(url, expected, method="get"):
        status = getattr(client, method)(url).status_code
        if status != expected:
            failures.append(
                f"{method.upper()} {url}: expected {expected}, got {status}"
            )

    check(reverse("dashboard"), 200)
    for key in KEYS:
        check(reverse(f"inventory:{key}_list"), 200)
        check(reverse(f"inventory:{key}_list") + "?export=csv", 200)
        check(reverse(f"inventory:{key}_create"), expected_create(role, key))
        for whose in ("mine", "theirs"):
            pk = world[whose][key].pk
            check(
                reverse(f"inventory:{key}_detail", args=[pk]),
                expected_read(role, whose),
            )
            check(
                reverse(f"inventory:{key}_edit", args=[pk]),
                expected_edit(role, key, whose),
            )
            check(
                reverse(f"inventory:{key}_delete", args=[pk]),
                expected_delete(role, whose),
            )
    check(reverse("governance:audit_list"), 200)
    check(reverse("tokens:token_list"), 200 if role == "admin_user" else 403)
    check(reverse("admin:index"), 200 if role == "admin_user" else 302)
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["risk", "compliance", "auditor"])
def test_read_only_roles_cannot_write_by_forged_post(role, request, client, world):
    client.force_login(request.getfixturevalue(role))
    deployment = world["mine"]["deployment"]
    before = m.Deployment.objects.count()
    create = client.post(
        reverse("inventory:deployment_create"),
        {"name": "forged", "model": deployment.model_id},
    )
    edit = client.post(
        reverse("inventory:deployment_edit", args=[deployment.pk]), {"name": "renamed"}
    )
    delete = client.post(reverse("inventory:deployment_delete", args=[deployment.pk]))
    assert (create.status_code, edit.status_code, delete.status_code) == (403, 403, 403)
    assert m.Deployment.objects.count() == before
    deployment.refresh_from_db()
    assert deployment.name != "renamed"


@pytest.mark.django_db
def test_owner_cannot_touch_another_teams_object_by_forged_post(client, owner, world):
    client.force_login(owner)
    theirs = world["theirs"]["deployment"]
    response = client.post(
        reverse("inventory:deployment_edit", args=[theirs.pk]), {"name": "mine now"}
    )
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.name != "mine now"


@pytest.mark.django_db
def test_owner_lists_show_only_their_teams(client, owner, world):
    client.force_login(owner)
    body = client.get(reverse("inventory:deployment_list")).content.decode()
    assert world["mine"]["deployment"].name in body
    assert world["theirs"]["deployment"].name not in body
    export = b"".join(
        client.get(
            reverse("inventory:deployment_list") + "?export=csv"
        ).streaming_content
    ).decode()
    assert world["mine"]["deployment"].name in export
    assert world["theirs"]["deployment"].name not in export


@pytest.mark.django_db
def test_owner_sees_objects_they_own_personally_in_another_team(client, owner, team_b):
    personal = DeploymentFactory(
        team=team_b, model=AIModelFactory(team=team_b), owner=owner
    )
    client.force_login(owner)
    assert client.get(personal.get_absolute_url()).status_code == 200


@pytest.mark.django_db
def test_anonymous_is_sent_to_login(client, world):
    for key in KEYS:
        response = client.get(reverse(f"inventory:{key}_list"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    assert client.get(reverse("dashboard")).status_code == 302
