"""Headings name the kind and the object: "Edit deployment fraud-scorer-prod", not "Edit"."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from sources import models as sm
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
    SystemFactory,
)

pytestmark = pytest.mark.django_db


def h1(response) -> str:
    match = re.search(r"<h1[^>]*>(.*?)</h1>", response.content.decode(), re.S)
    assert match is not None
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())


def title(response) -> str:
    match = re.search(r"<title>(.*?)</title>", response.content.decode(), re.S)
    return " ".join(match.group(1).split()) if match else ""


def test_edit_new_and_delete_pages_name_the_object(client, admin_user, team_a):
    model = AIModelFactory(name="fraud-scorer", team=team_a)
    objects = {
        "team": (team_a, "team"),
        "aimodel": (model, "model"),
        "modelversion": (ModelVersionFactory(model=model, version="4.2"), "version"),
        "system": (SystemFactory(name="payments-api", team=team_a), "system"),
        "deployment": (
            DeploymentFactory(name="fraud-scorer-prod", model=model, team=team_a),
            "deployment",
        ),
        "identity": (IdentityFactory(name="svc-fraud", team=team_a), "identity"),
    }
    client.force_login(admin_user)
    for key, (obj, _) in objects.items():
        noun = obj._meta.verbose_name
        edit = client.get(reverse(f"inventory:{key}_edit", args=[obj.pk]))
        assert h1(edit) == f"Edit {noun} {obj}", key
        assert title(edit).startswith(f"Edit {noun} {obj}"), key
        new = client.get(reverse(f"inventory:{key}_create"))
        assert h1(new) == f"New {noun}", key
        delete = client.get(reverse(f"inventory:{key}_delete", args=[obj.pk]))
        assert h1(delete) == f"Delete {noun} “{obj}”?", key
    edit = client.get(
        reverse("inventory:deployment_edit", args=[objects["deployment"][0].pk])
    )
    assert h1(edit) == "Edit deployment fraud-scorer-prod"


def test_a_source_edit_page_names_the_source(client, admin_user):
    source = sm.DataSource.objects.create(
        name="GCP keys", kind="gcp_keys", schedule_minutes=0
    )
    client.force_login(admin_user)
    response = client.get(reverse("sources:source_edit", args=[source.pk]))
    assert h1(response) == "Edit source GCP keys"
