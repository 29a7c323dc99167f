"""Every type-ahead on every form asks the lookup with its own text parameter (`field`),
and the lookup filters on what is typed there, including for the field called `model`."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from inventory import forms
from inventory import models as m
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
    SystemFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

INPUT = re.compile(r"<input[^>]*\bhx-get=\"([^\"]+)\"[^>]*>")


def lookups(rendered: str) -> dict[str, str]:
    """{input name: its lookup URL} for each LookupInput in the markup."""
    found = {}
    for tag in INPUT.finditer(rendered):
        name = re.search(r'\bname="([^"]+)"', tag.group(0)).group(1)
        found[name] = html.unescape(tag.group(1))
    return found


def ask(client, url: str, name: str, text: str, **extra) -> str:
    path, query = urlsplit(url).path, parse_qs(urlsplit(url).query)
    assert query["field"] == [name]
    params = {k: v[0] for k, v in query.items()}
    return client.get(path, {**params, name: text, **extra}).content.decode()


@pytest.fixture
def rows(team_a):
    owner = UserFactory(username="priya-owner", teams=[team_a])
    UserFactory(username="zed-other", teams=[team_a])
    wanted = AIModelFactory(name="fraud-scorer", team=team_a, owner=owner)
    AIModelFactory(name="churn-xgb", team=team_a)
    ModelVersionFactory(model=wanted, version="9.1")
    ModelVersionFactory(model=wanted, version="3.0")
    SystemFactory(name="payments-api", team=team_a)
    SystemFactory(name="crm", team=team_a)
    deployment = DeploymentFactory(
        name="fraud-prod", model=wanted, team=team_a, source=m.MANUAL_SOURCE
    )
    DeploymentFactory(name="churn-prod", model=wanted, team=team_a)
    return {"model": wanted, "deployment": deployment}


def test_every_form_lookup_filters_on_its_own_text(client, admin_user, rows):
    client.force_login(admin_user)
    deployment = rows["deployment"]
    form = forms.DeploymentForm(instance=deployment, user=admin_user)
    urls = lookups(str(form))
    assert set(urls) >= {"model", "observed_version", "system", "owner"}
    typed = {
        "model": ("fraud", "fraud-scorer", "churn-xgb"),
        "system": ("pay", "payments-api", "crm"),
        "owner": ("priya", "priya-owner", "zed-other"),
    }
    for name, (text, shown, left_out) in typed.items():
        body = ask(client, urls[name], name, text)
        assert shown in body and left_out not in body, name
        # Labelled: the option names the object and carries its id.
        assert re.search(rf'value="{re.escape(shown)}[^"]* \(#\d+\)"', body), name
    body = ask(
        client,
        urls["observed_version"],
        "observed_version",
        "9",
        model=f"fraud-scorer (#{rows['model'].pk})",
    )
    assert "9.1" in body and "3.0" not in body

    dependency = forms.DependencyForm(user=admin_user, downstream=deployment)
    url = lookups(str(dependency))["upstream"]
    body = ask(client, url, "upstream", "churn")
    assert "churn-prod" in body and "fraud-prod" not in body

    bind = forms.IdentityBindForm(user=admin_user)
    url = lookups(str(bind))["deployment"]
    body = ask(client, url, "deployment", "fraud")
    assert "fraud-prod" in body and "churn-prod" not in body


def test_a_labelled_choice_is_read_back_as_its_id(admin_user, rows, team_a):
    identity = IdentityFactory(team=team_a)
    deployment = rows["deployment"]
    form = forms.IdentityBindForm(
        {"deployment": f"fraud-prod (#{deployment.pk})"}, user=admin_user
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["deployment"] == deployment
    # A name without its id is not a choice: names are not unique.
    assert not forms.IdentityBindForm(
        {"deployment": "fraud-prod"}, user=admin_user
    ).is_valid()
    assert not identity.deployments.exists()


def test_the_edit_form_shows_names_in_one_query_per_lookup(
    admin_user, rows, django_assert_num_queries
):
    deployment = m.Deployment.objects.get(pk=rows["deployment"].pk)
    chosen = sum(
        1
        for v in (
            deployment.model_id,
            deployment.observed_version_id,
            deployment.system_id,
            deployment.owner_id,
        )
        if v is not None
    )
    # One query per lookup that holds an object (its label), plus the user's roles.
    with django_assert_num_queries(chosen + 1):
        form = forms.DeploymentForm(instance=deployment, user=admin_user)
    rendered = str(form["model"]) + str(form["system"]) + str(form["owner"])
    assert f'value="fraud-scorer (#{rows["model"].pk})"' in rendered
    # The labels were read when the form was built; rendering costs nothing more.
    with django_assert_num_queries(0):
        str(form["model"])
        str(form["owner"])
