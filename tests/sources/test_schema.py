"""sources.sync.schema: a kind's settings declared once, read the same by every caller.

The form renders them, the services (and so the API, the admin and the command) check them
and the connector reads them typed; a bad value gets the same words everywhere, and a
bad stored value fails the run with them, never a 500.
"""

from __future__ import annotations

import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client

from sources import models as sm
from sources.admin import DataSourceAdminForm
from sources.connectors.kubernetes import BAD_CA_CERT, KubernetesConnector, Options
from sources.connectors.mlflow import URL_CREDENTIALS, MLflowConnector
from sources.forms import SourceForm
from sources.sync import runner, services
from sources.sync.schema import Schema, Setting, TypedSettings

pytestmark = pytest.mark.django_db

PAGE_SIZE = next(s for s in MLflowConnector.schema.fields if s.name == "page_size")
TOO_BIG = PAGE_SIZE.bounds_text()


def test_parse_gives_every_setting_typed_and_defaulted():
    options = KubernetesConnector.schema.parse(
        {"namespaces": "team-a, team-b", "page_size": "250", "verify_tls": "false"},
        {"token": "s3cret-token-value"},
    )
    assert isinstance(options, TypedSettings)
    assert options.namespaces == ("team-a", "team-b")
    assert options.resources == tuple(Options().resources), "the default, as a tuple"
    assert (options.page_size, options.verify_tls) == (250, False)
    assert options.environment == "production"
    assert options.secrets == {"token": "s3cret-token-value"}
    assert "s3cret" not in repr(options), "secrets' values never show in a repr"
    with pytest.raises(AttributeError):
        options.page_size = 1
    assert Options.from_typed(options).namespaces == ("team-a", "team-b")


def test_parse_refuses_what_clean_refuses_with_the_same_keys():
    bad = {"page_size": 0, "ca_cert": "not a pem", "resources": "pods"}
    with pytest.raises(ValidationError) as parsed:
        KubernetesConnector.schema.parse(bad)
    with pytest.raises(ValidationError) as cleaned:
        services.clean_settings(KubernetesConnector, bad)
    assert parsed.value.message_dict == cleaned.value.message_dict
    assert parsed.value.message_dict["config.ca_cert"] == [BAD_CA_CERT]
    assert parsed.value.message_dict["config.page_size"] == [
        "Enter a whole number from 1 to 10000."
    ]


def test_stored_keys_no_longer_declared_are_ignored_when_parsing():
    options = MLflowConnector.schema.parse(
        {"tracking_uri": "http://mlflow:5000", "dropped_setting": "x"}
    )
    assert options.tracking_uri == "http://mlflow:5000"
    assert "dropped_setting" not in options


def test_validators_normalise_and_bounds_apply():
    schema = Schema(
        (
            Setting("n", "N", kind="int", default=5, min_value=1, max_value=9),
            Setting("tags", "Tags", many=True, choices=(("a", "A"), ("b", "B"))),
            Setting("name", "Name", validators=(str.upper,)),
        )
    )
    assert schema.clean({"n": "3", "tags": ["b", "a"], "name": "x"}) == {
        "n": 3,
        "tags": "b,a",
        "name": "X",
    }
    assert schema.parse({}).n == 5 and schema.parse({}).tags == ()
    with pytest.raises(ValidationError) as exc:
        schema.clean({"n": 10, "tags": "a,c"})
    assert exc.value.message_dict == {
        "config.n": ["Enter a whole number from 1 to 9."],
        "config.tags": ["Unknown: c. Choose from: a, b."],
    }


def test_the_form_renders_the_declared_bounds():
    form = SourceForm(connector=MLflowConnector)
    html = str(form["cfg_page_size"])
    assert 'min="1"' in html and f'max="{PAGE_SIZE.max_value}"' in html
    assert form.fields["cfg_page_size"].help_text == PAGE_SIZE.help


def _mlflow_form_data(**config):
    data = {"name": "Registry", "enabled": "on", "schedule_minutes": "60"}
    data.update({f"cfg_{k}": v for k, v in config.items()})
    return data


def test_one_bad_value_gets_the_same_words_in_form_api_admin_and_command(token_for):
    config = {"tracking_uri": "http://mlflow:5000", "page_size": 5000}

    form = SourceForm(_mlflow_form_data(**config), connector=MLflowConnector)
    assert not form.is_valid()
    assert form.errors["cfg_page_size"] == [TOO_BIG]

    _, raw = token_for("sources")
    api = Client(headers={"Authorization": f"Bearer {raw}"})
    response = api.post(
        "/api/v1/sources/",
        json.dumps({"name": "Registry", "kind": "mlflow", "config": config}),
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["config"] == {"page_size": [TOO_BIG]}

    admin_form = DataSourceAdminForm(
        {
            "name": "Registry",
            "kind": "mlflow",
            "enabled": "on",
            "schedule_minutes": "60",
            "config": json.dumps(config),
        }
    )
    assert not admin_form.is_valid()
    assert TOO_BIG in str(admin_form.errors)

    with pytest.raises(CommandError, match=TOO_BIG):
        call_command(
            "sources",
            "add",
            "--kind", "mlflow",
            "--name", "Registry",
            "--set", "tracking_uri=http://mlflow:5000",
            "--set", "page_size=5000",
            stdout=io.StringIO(),
        )  # fmt: skip
    assert not sm.DataSource.objects.exists()


def test_a_field_validator_speaks_through_the_api(token_for):
    _, raw = token_for("sources")
    api = Client(headers={"Authorization": f"Bearer {raw}"})
    response = api.post(
        "/api/v1/sources/",
        json.dumps(
            {
                "name": "Registry",
                "kind": "mlflow",
                "config": {"tracking_uri": "https://u:p@mlflow.internal/"},
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["config"] == {"tracking_uri": [URL_CREDENTIALS]}


def test_a_bad_stored_setting_fails_the_run_with_the_schemas_words(
    django_capture_on_commit_callbacks,
):
    source = services.source_create(
        actor=None, name="Cluster", kind="kubernetes", config={"page_size": 100}
    )
    # Written past the services, as an old version or a hand edit could have.
    sm.DataSource.objects.filter(pk=source.pk).update(config={"page_size": 0})
    with django_capture_on_commit_callbacks(execute=True):
        run, _ = runner.request_sync(source=source, trigger="command")
    run.refresh_from_db()
    assert run.status == sm.SyncRun.Status.FAILED
    assert run.error == "page_size: Enter a whole number from 1 to 10000."


def test_the_connector_reads_the_parsed_settings(django_capture_on_commit_callbacks):
    source = services.source_create(
        actor=None,
        name="Cluster",
        kind="kubernetes",
        config={"namespaces": "a,b,a", "page_size": "7"},
    )
    assert source.config == {"namespaces": "a,b", "page_size": 7}
    ctx = runner.fetch_context(source)
    assert ctx.options.namespaces == ("a", "b")
    assert Options.from_typed(ctx.options).page_size == 7
