"""The filter form's markup is cached per process (inventory.lists.filter_fields_html):
the cache must never show a form other than the one a fresh render shows."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.urls import reverse

from inventory import lists
from inventory.views import SPECS
from sources import models as sm
from sources.sync import services as source_services
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    lists._FIELDS_CACHE.clear()
    yield
    lists._FIELDS_CACHE.clear()


def render_uncached(filterset) -> str:
    lists._FIELDS_CACHE.clear()
    html = str(lists.filter_fields_html(filterset))
    lists._FIELDS_CACHE.clear()
    return html


@pytest.mark.parametrize("key", list(SPECS))
def test_the_unfiltered_form_is_the_form_with_no_filter_set(key, admin_user):
    spec = SPECS[key]
    base = spec.selector(user=admin_user)
    request = RequestFactory().get("/", {"sort": "name"})
    bound = spec.filterset(request.GET, queryset=base, user=admin_user)
    expected = render_uncached(bound)
    names = lists._Once(
        lambda: dict(bound.source_names()) if hasattr(bound, "source_names") else {}
    )
    first = lists._unfiltered_fields_html(spec.page, base, admin_user, names)
    cached = lists._unfiltered_fields_html(spec.page, base, admin_user, names)
    assert str(first) == str(cached) == expected


def test_a_new_source_name_is_a_new_form(client, admin_user):
    client.force_login(admin_user)
    url = reverse("inventory:deployment_list")
    assert "Brand new source" not in client.get(url).content.decode()
    source_services.source_create(
        actor=admin_user, name="Brand new source", kind="cicd"
    )
    assert "Brand new source" in client.get(url).content.decode()
    assert "Brand new source" in client.get(url + "?status=active").content.decode()


def test_a_select_of_objects_is_rendered_every_time(client, admin_user):
    client.force_login(admin_user)
    url = reverse("sources:run_list")
    client.get(url)
    source_services.source_create(
        actor=admin_user, name="Another registry", kind="cicd"
    )
    assert sm.DataSource.objects.filter(name="Another registry").exists()
    assert "Another registry" in client.get(url).content.decode()


def test_a_chosen_team_shows_its_name_and_values_are_kept(client, admin_user):
    client.force_login(admin_user)
    team = TeamFactory(name="Payments <b>")
    url = reverse("inventory:deployment_list")
    body = client.get(f"{url}?team={team.pk}&q=fr%22aud").content.decode()
    assert "Payments &lt;b&gt;" in body
    assert 'value="fr&quot;aud"' in body
    other = client.get(f"{url}?q=other").content.decode()
    assert 'value="other"' in other and "fr&quot;aud" not in other


@pytest.mark.parametrize("key", list(SPECS))
def test_filter_sets_share_their_form_class_not_their_fields(key, admin_user):
    """The form class is built once per filter set class (filters.BaseFilter); each form
    still gets its own fields, so what one request sets on its fields (a type-ahead's
    label, a widget's attrs) never shows in another's."""
    spec = SPECS[key]
    base = spec.selector(user=admin_user)
    team = TeamFactory(name="Chosen team")
    first = spec.filterset({"team": str(team.pk)}, queryset=base, user=admin_user)
    second = spec.filterset(None, queryset=base, user=admin_user)
    assert type(first.form) is type(second.form)
    assert first.form.fields is not second.form.fields
    for name, field in first.form.fields.items():
        other = second.form.fields[name]
        assert field is not other and field.widget is not other.widget, name
        assert field.widget.attrs is not other.widget.attrs, name
    first.form.fields["q"].widget.attrs["placeholder"] = "only here"
    assert "placeholder" not in second.form.fields["q"].widget.attrs
    if "team" in first.form.fields:
        assert first.form.fields["team"].widget.current_label == "Chosen team"
        assert second.form.fields["team"].widget.current_label in (None, "")
    fresh = spec.filterset(None, queryset=base, user=admin_user)
    assert "placeholder" not in fresh.form.fields["q"].widget.attrs
    assert str(fresh.form) == str(second.form)
