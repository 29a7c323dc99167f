"""The demo's name catalogues are data files (devtools/data/*.json), read into the shapes
the seeder uses; a wrong kind or a missing domain fails here, not half-way through a seed."""

from __future__ import annotations

import json

import pytest

from devtools import demo
from inventory import models as m

pytestmark = pytest.mark.django_db


def test_every_catalogue_is_read_from_its_data_file():
    teams = json.loads((demo.DATA_DIR / "teams.json").read_text(encoding="utf-8"))
    assert [t[1] for t in demo.BASE_TEAMS] == [t["slug"] for t in teams["base"]]
    assert teams["regions"] == demo.REGIONS
    people = json.loads((demo.DATA_DIR / "people.json").read_text(encoding="utf-8"))
    assert people["first_names"] == demo.FIRST_NAMES
    assert sorted(p.name for p in demo.DATA_DIR.glob("*.json")) == [
        "models.json",
        "operations.json",
        "people.json",
        "systems.json",
        "teams.json",
    ]


def test_catalogue_kinds_are_model_choices_and_every_domain_has_entries():
    domains = {domain for _, _, domain, _ in demo.BASE_TEAMS}
    assert {domain for _, domain in demo.AREAS} <= domains
    assert set(demo.MODEL_CATALOGUE) == domains == set(demo.SYSTEM_CATALOGUE)
    for rows in demo.MODEL_CATALOGUE.values():
        assert rows and all(isinstance(k, m.AIModel.Kind) for _, k, _, _ in rows)
    for rows in demo.SYSTEM_CATALOGUE.values():
        assert rows and all(isinstance(k, m.System.Kind) for _, k, _ in rows)
    assert all(isinstance(k, m.AIModel.Kind) for _, k in demo.VENDOR_VERSIONS)
    assert set(demo.DEPENDENCY_TEXT) == set(m.Dependency.Kind)


def test_a_seed_draws_its_names_from_the_catalogues():
    demo.seed_demo(models=40, deployments=120, identities=300)
    bases = {name for rows in demo.MODEL_CATALOGUE.values() for name, *_ in rows}
    names = set(m.AIModel.objects.values_list("name", flat=True))
    assert names and all(
        any(name == b or name.startswith(f"{b}-") for b in bases) for name in names
    )
    assert set(m.Team.objects.values_list("slug", flat=True)) >= {
        slug for _, slug, _, _ in demo.BASE_TEAMS
    }
