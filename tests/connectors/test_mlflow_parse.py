"""The MLflow connector's mapping, on REST answers recorded from a real mlflow 3.17.2 server.

tests/fixtures/mlflow/*.json were recorded once from `mlflow server` seeded with
`test_mlflow.seed_calls("demo")` through MlflowClient: two pages of
`registered-models/search?max_results=3`, `model-versions/search` for two models
(`name IN (...)`, ordered by name and version), `model-versions/get` of a version with an
alias, and two error answers. Variants (an integer version, client-style tag dicts,
missing or broken fields) are derived from those recordings in the tests.
"""

from __future__ import annotations

import ast
import copy
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from inventory import models as m
from sources import models as sm
from sources.connectors.mlflow import (
    MAX_VERSION_FILTER_CHARS,
    VERSION_NAMES_PER_QUERY,
    MalformedItem,
    MLflowConnector,
    MlflowError,
    Rules,
    name_groups,
    page_size_from,
    parse_model,
    parse_version,
    rules_from,
    tag_dict,
    version_filter,
)
from sources.sync import runner
from sources.sync.engine import ApplyContext

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mlflow"
RULES = Rules()
ODD = 'demo-o\'brien "odd" \\ %_ model'


def load(name):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def models():
    """Every recorded registered model, parsed with the default rules, by name."""
    raw = (
        load("registered_models_page1.json")["registered_models"]
        + load("registered_models_page2.json")["registered_models"]
    )
    return {model["name"]: parse_model(model, RULES) for model in raw}


@pytest.fixture
def raw_versions():
    return {
        f"{v['name']}/{v['version']}": v
        for v in load("model_versions_search.json")["model_versions"]
    }


def parsed(raw_versions, models, rules=RULES):
    return {
        ext: parse_version(raw, models[raw["name"]], rules)[1]
        for ext, raw in raw_versions.items()
    }


# ---------------------------------------------------------------------------
# Registered models
# ---------------------------------------------------------------------------
def test_recorded_pages_give_every_model_with_aliases_and_lifecycle():
    first = load("registered_models_page1.json")
    assert first["next_page_token"], "the first page says there is more"
    assert "next_page_token" not in load("registered_models_page2.json")
    models = {
        raw["name"]: parse_model(raw, RULES)
        for raw in first["registered_models"]
        + load("registered_models_page2.json")["registered_models"]
    }
    assert set(models) == {
        "demo-credit-limit",
        "demo-empty",
        "demo-fraud-scorer",
        "demo-legacy-ranker",
        ODD,
    }
    fraud = models["demo-fraud-scorer"]
    assert fraud.fields == {
        "name": "demo-fraud-scorer",
        "description": "Scores card transactions",
        "provider": "internal",
        "lifecycle": "active",
    }
    assert fraud.aliases == {"2": ["champion"], "3": ["challenger"]}
    assert models["demo-empty"].fields["description"] == ""
    assert models["demo-empty"].aliases == {}
    assert models["demo-legacy-ranker"].retired
    assert models["demo-legacy-ranker"].fields["lifecycle"] == "retired"


def test_retired_tag_setting_accepts_a_key_or_key_value():
    raw = {"name": "x", "tags": [{"key": "stage", "value": "Sunset"}]}
    assert not parse_model(raw, RULES).retired
    assert parse_model(raw, rules_from({"retired_tag": "stage=sunset"})).retired
    raw["tags"][0]["value"] = "retired"
    assert parse_model(raw, rules_from({"retired_tag": "stage"})).retired


def test_a_provider_tag_names_the_provider():
    raw = {"name": "gpt-wrapper", "tags": [{"key": "provider", "value": "openai"}]}
    assert parse_model(raw, RULES).fields["provider"] == "openai"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (["not", "an", "object"], "not a JSON object"),
        ({"description": "no name"}, "has no name"),
        ({"name": "   "}, "has no name"),
        ({"name": "x", "tags": "owner=me"}, "neither a list nor an object"),
        ({"name": "x", "tags": [{"value": "no key"}]}, "not a {key, value} pair"),
        ({"name": "x", "aliases": {"champion": "1"}}, "aliases are not a list"),
        ({"name": "x", "aliases": [{"alias": "champion"}]}, "no version number"),
        ({"name": "x", "aliases": ["champion"]}, "not an {alias, version} pair"),
        ({"name": "x", "description": 42}, "description is not text"),
    ],
)
def test_malformed_models_say_why(raw, reason):
    with pytest.raises(MalformedItem, match=reason.replace("{", r"\{")):
        parse_model(raw, RULES)


# ---------------------------------------------------------------------------
# Versions
# ---------------------------------------------------------------------------
def test_recorded_versions_map_to_approval_states(models, raw_versions):
    versions = parsed(raw_versions, models)
    assert {ext: v["approval"] for ext, v in versions.items()} == {
        "demo-credit-limit/1": "approved",
        "demo-credit-limit/2": "deprecated",
        "demo-credit-limit/3": "deprecated",
        "demo-fraud-scorer/1": "rejected",
        "demo-fraud-scorer/2": "approved",
        "demo-fraud-scorer/3": "pending",
    }
    champion = versions["demo-fraud-scorer/2"]
    raw = raw_versions["demo-fraud-scorer/2"]
    assert champion == {
        "version": "2",
        "artifact_uri": "s3://models/fraud/2",
        "run_id": raw["run_id"],
        "registry_status": "READY",
        "aliases": ["champion"],
        "tags": {"git_sha": "abc2"},
        "approval": "approved",
        "approved_at": datetime.fromtimestamp(
            raw["last_updated_timestamp"] / 1000, tz=UTC
        ),
    }
    assert "approved_by" not in champion, "a Runproof user is never guessed"
    assert versions["demo-credit-limit/2"]["registry_status"] == "READY / Archived"
    assert versions["demo-credit-limit/1"]["approved_at"] is not None
    assert versions["demo-fraud-scorer/3"]["approved_at"] is None
    assert versions["demo-fraud-scorer/3"]["aliases"] == ["challenger"]


def test_versions_search_has_no_aliases_but_the_model_list_does(models, raw_versions):
    """Recorded: search answers omit `aliases`; `model-versions/get` lists them."""
    assert all("aliases" not in v for v in raw_versions.values())
    got = load("model_version_get.json")["model_version"]
    assert got["aliases"] == ["champion"]
    _, fields = parse_version(got, models["demo-fraud-scorer"], RULES)
    assert fields["aliases"] == ["champion"] and fields["approval"] == "approved"


def test_every_version_of_a_retired_model_is_retired(models):
    legacy = models["demo-legacy-ranker"]
    raw = {"name": legacy.name, "version": "1", "tags": []}
    assert legacy.aliases == {"1": ["champion"]}
    _, fields = parse_version(raw, legacy, RULES)
    assert fields["approval"] == "retired" and fields["approved_at"] is None


def test_integer_versions_dict_tags_and_missing_fields(models, raw_versions):
    """What older clients and trimmed answers send: the same rows come out."""
    raw = copy.deepcopy(raw_versions["demo-fraud-scorer/2"])
    raw["version"] = 2
    raw["tags"] = {"git_sha": "abc2"}
    _, fields = parse_version(raw, models["demo-fraud-scorer"], RULES)
    assert fields == parsed(raw_versions, models)["demo-fraud-scorer/2"]

    bare = {"name": "demo-fraud-scorer", "version": "9"}
    ext, fields = parse_version(bare, models["demo-fraud-scorer"], RULES)
    assert ext == "demo-fraud-scorer/9"
    assert fields == {
        "version": "9",
        "artifact_uri": "",
        "run_id": "",
        "registry_status": "",
        "aliases": [],
        "tags": {},
        "approval": "pending",
        "approved_at": None,
    }


def test_explicit_rejection_or_the_revoke_tag_outrank_a_stale_alias(models):
    fraud = models["demo-fraud-scorer"]
    raw = {"name": fraud.name, "version": "2"}
    for tags, expected in [
        ([], "approved"),
        ([{"key": "approval_status", "value": "revoked"}], "rejected"),
        ([{"key": "approval_status", "value": "Rejected"}], "rejected"),
        ([{"key": "deprecated", "value": "yes"}], "deprecated"),
        ([{"key": "deprecated", "value": "false"}], "approved"),
    ]:
        raw["tags"] = tags
        assert parse_version(raw, fraud, RULES)[1]["approval"] == expected, tags
    custom = rules_from({"revoke_tag": "governance=withdrawn"})
    raw["tags"] = [{"key": "governance", "value": "withdrawn"}]
    assert parse_version(raw, fraud, custom)[1]["approval"] == "rejected"


def test_custom_alias_and_approval_tag(models, raw_versions):
    rules = rules_from({"approved_alias": "challenger", "approval_tag": "review"})
    versions = parsed(raw_versions, models, rules)
    assert versions["demo-fraud-scorer/3"]["approval"] == "approved"
    assert versions["demo-fraud-scorer/2"]["approval"] == "pending"
    # approval_status is no longer the approval tag; "rejected" there means nothing
    assert versions["demo-fraud-scorer/1"]["approval"] == "pending"
    assert versions["demo-credit-limit/1"]["approval"] == "pending"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"version": None}, "no version number"),
        ({"version": ""}, "not a number or text"),
        ({"version": True}, "no version number"),
        ({"version": 2.5}, "not a number or text"),
        ({"tags": [["key", "value"]]}, "not a {key, value} pair"),
        ({"tags": [{"key": "k", "value": {"nested": 1}}]}, "not text"),
        ({"last_updated_timestamp": "yesterday"}, "not epoch milliseconds"),
        ({"source": ["s3://a"]}, "source is not text"),
    ],
)
def test_malformed_versions_say_why(models, raw_versions, change, reason):
    raw = {**raw_versions["demo-fraud-scorer/2"], **change}
    with pytest.raises(MalformedItem, match=reason.replace("{", r"\{")):
        parse_version(raw, models["demo-fraud-scorer"], RULES)
    with pytest.raises(MalformedItem, match="not a JSON object"):
        parse_version("v2", models["demo-fraud-scorer"], RULES)


def test_tag_dict_reads_both_forms():
    assert tag_dict([{"key": "a", "value": "1"}, {"key": "b"}]) == {"a": "1", "b": ""}
    assert tag_dict({"a": 1, "b": None}) == {"a": "1", "b": ""}
    assert tag_dict(None) == {}


# ---------------------------------------------------------------------------
# Version filters
# ---------------------------------------------------------------------------
def test_version_filter_quotes_any_name_as_mlflow_reads_it():
    """MLflow reads the IN list with ast.literal_eval: each name must come back exact."""
    names = [ODD, "plain", "it's", 'say "hi"', "back\\slash\\", "tab\tnew\nline", "ünï"]
    text = version_filter(names)
    assert text.startswith("name IN (") and text.endswith(")")
    parsed_back = ast.literal_eval(text[len("name IN ") :])
    assert list(parsed_back) == names
    single = ast.literal_eval(version_filter(["only"])[len("name IN ") :])
    assert single == "only"  # MLflow wraps a lone string in a tuple itself


def test_name_groups_bound_the_filter():
    names = [f"model-{i:04d}" for i in range(250)]
    groups = list(name_groups(names))
    assert [len(g) for g in groups] == [100, 100, 50]
    assert sum(groups, []) == names
    long = ["x" * 900 for _ in range(10)]
    for group in name_groups(long):
        assert len(version_filter(group)) <= MAX_VERSION_FILTER_CHARS + 20
        assert len(group) <= VERSION_NAMES_PER_QUERY


# ---------------------------------------------------------------------------
# Settings and errors
# ---------------------------------------------------------------------------
def test_settings_defaults_and_checks():
    rules = rules_from({})
    assert rules == Rules()
    assert page_size_from({}) == 500
    assert page_size_from({"page_size": "1000"}) == 1000
    for bad in (0, 1001, "lots", True):
        with pytest.raises(ValueError, match="page_size"):
            page_size_from({"page_size": bad})
    with pytest.raises(ValueError, match="revoke_tag"):
        rules_from({"revoke_tag": "approval_status"})
    with pytest.raises(ValueError, match="revoke_action"):
        rules_from({"revoke_action": "delete_model"})


def test_validate_settings_reports_each_field():
    ok = MLflowConnector.validate_settings(
        {"tracking_uri": "http://mlflow:5000/", "page_size": 200}
    )
    assert ok["tracking_uri"] == "http://mlflow:5000"
    with pytest.raises(ValidationError) as caught:
        MLflowConnector.validate_settings(
            {
                "tracking_uri": "https://user:pw@mlflow.internal",
                "page_size": 5000,
                "revoke_tag": "no-equals-sign",
            }
        )
    assert set(caught.value.message_dict) == {"tracking_uri", "page_size", "revoke_tag"}


def test_recorded_error_answers_keep_mlflows_message():
    bad = load("error_bad_filter.json")
    error = MlflowError(bad["status"], bad["body"])
    assert error.code == "INVALID_PARAMETER_VALUE"
    assert "Invalid attribute key 'colour'" in str(error)
    gone = load("error_not_found.json")
    assert MlflowError(gone["status"], gone["body"]).code == "RESOURCE_DOES_NOT_EXIST"


# ---------------------------------------------------------------------------
# Applying a record with an unreadable version
# ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_an_unreadable_version_is_recorded_and_keeps_its_last_known_row(
    models, raw_versions
):
    source = sm.DataSource.objects.create(
        name="mlflow", kind="mlflow", config={"tracking_uri": "http://127.0.0.1:9"}
    )
    connector = MLflowConnector(source)
    fraud = models["demo-fraud-scorer"]
    good = [v for ext, v in raw_versions.items() if ext.startswith(fraud.name)]

    first = ApplyContext(
        source=source, run=sm.SyncRun.objects.create(source=source, status="succeeded")
    )
    connector.apply([connector._record(fraud, good, RULES)], first)
    assert (first.counts.created, first.counts.errors) == (4, 0)

    broken = copy.deepcopy(good)
    broken[0]["tags"] = "not tags"
    second = ApplyContext(
        source=source, run=sm.SyncRun.objects.create(source=source, status="succeeded")
    )
    connector.apply([connector._record(fraud, broken, RULES)], second)
    runner._mark_gone(connector, second)
    assert second.counts.errors == 1
    assert second.errors[0].external_id == "demo-fraud-scorer/1"
    assert "neither a list nor an object" in second.errors[0].reason
    assert (second.counts.unchanged, second.counts.gone) == (3, 0)
    kept = m.ModelVersion.objects.get(external_id="demo-fraud-scorer/1")
    assert kept.gone_at is None and kept.approval == "rejected"


@pytest.mark.django_db
def test_a_model_the_registry_retires_moves_through_the_batched_service(
    models, raw_versions
):
    """A stored model the registry now reports retired is retired by the service (the
    transition table, one `aimodel.retire` event with the source as actor), in one
    batched call for the whole batch."""
    from audit.models import AuditEvent

    source = sm.DataSource.objects.create(
        name="mlflow", kind="mlflow", config={"tracking_uri": "http://127.0.0.1:9"}
    )
    connector = MLflowConnector(source)
    fraud = models["demo-fraud-scorer"]
    versions = [v for ext, v in raw_versions.items() if ext.startswith(fraud.name)]
    record = connector._record(fraud, versions, RULES)
    assert record.payload["model"]["lifecycle"] != "retired"
    first = ApplyContext(
        source=source, run=sm.SyncRun.objects.create(source=source, status="succeeded")
    )
    connector.apply([record], first)
    record.payload["model"]["lifecycle"] = "retired"
    second = ApplyContext(
        source=source, run=sm.SyncRun.objects.create(source=source, status="succeeded")
    )
    connector.apply([record], second)
    stored = m.AIModel.objects.get(source=source.source_label)
    assert stored.lifecycle == "retired"
    events = AuditEvent.objects.filter(
        action="aimodel.retire", object_id=str(stored.pk)
    )
    assert [(e.actor_kind, e.actor_label) for e in events] == [
        ("source", source.source_label)
    ]
    assert events[0].before["lifecycle"] != "retired"
    assert events[0].after["lifecycle"] == "retired"
    assert second.counts.errors == 0
