"""Hostile input, generated: no 5xx, no partial write, no runaway parse (issue 8, item 16).

- Every operation of the OpenAPI document (drf-spectacular's), with a token holding every
  scope: path parameters, query parameters and bodies drawn from hostile values shaped by
  the schema's own names.
- Every form (create pages) and every filter (list pages, their CSV too) with the same
  values.
- JSON: `inventory.jsonsafe` either refuses a text or returns what the audit chain can
  hash; the upload depth scan agrees with a real parse; the upload guard, whatever bytes
  it is given, reports in the worker and never takes the worker down.

A request that failed (4xx) must leave the governed tables as they were.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.test import Client
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from audit.models import AuditEvent
from inventory import jsonsafe, services
from inventory import models as m
from inventory.roles import Role
from sources import models as sm
from sources.connectors.kubernetes import KubernetesConnector
from sources.sync import upload_guard
from sources.sync.base import FetchContext, SourceConfigError
from tests.factories import AIModelFactory, DeploymentFactory, UserFactory
from tests.hostile.tally import TALLY

pytestmark = pytest.mark.django_db

NASTY_STRINGS = [
    "",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff x",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "99999999999999999999999",
    "-1",
    "0",
    "1.5",
    "2024-01-01",
    "2024-13-45T99:99",
    "' OR 1=1 --",
    '"; DROP TABLE x; --',
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%00",
    "W251bGwsIDFd",
    "cD1hYmM=",
    "[" * 3000,
    "{" * 3000,
    "x" * 20_000,
    "é" * 300,
    "\u202e\u200b",
    "true",
    "null",
]
hostile_text = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.text(max_size=40),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
)
hostile_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
)
hostile_json = st.recursive(
    hostile_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)
    ),
    max_leaves=12,
)
DEEP_TEXTS = ['{"a": ' + "[" * 20_000 + "]" * 20_000 + "}", "[" * 50_000]


def encode(value: Any) -> str:
    """JSON text of a hostile value: NaN and Infinity as Python writes them, lone
    surrogates escaped (as a hostile client would send them)."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True)


def governed() -> tuple[int, ...]:
    return tuple(
        model._default_manager.count()
        for model in (
            m.Team,
            m.AIModel,
            m.ModelVersion,
            m.System,
            m.Deployment,
            m.NonHumanIdentity,
            m.APIToken,
            sm.DataSource,
            sm.SyncRun,
            sm.DeploymentEvent,
            AuditEvent,
        )
    )


def send(client: Client, method: str, url: str, **kwargs) -> int:
    """Send one request; count it; a 5xx or a failed request that wrote is a finding."""
    before = governed()
    response = getattr(client, method)(url, **kwargs)
    TALLY["requests"] += 1
    status = response.status_code
    if status >= 500:
        TALLY["5xx"] += 1
        pytest.fail(f"{method.upper()} {url[:200]} answered {status}")
    if status >= 400 and governed() != before:
        TALLY["partial writes"] += 1
        pytest.fail(f"{method.upper()} {url[:200]} answered {status} but wrote rows")
    return status


# ---------------------------------------------------------------------------
# The API, from its OpenAPI document
# ---------------------------------------------------------------------------
_SCHEMA: dict[str, Any] = {}


def openapi() -> dict[str, Any]:
    if not _SCHEMA:
        _SCHEMA.update(Client().get("/api/v1/openapi.json").json())
    return _SCHEMA


def operations() -> list[tuple[str, str]]:
    paths = openapi()["paths"]
    return sorted(
        (path, method)
        for path, item in paths.items()
        for method in item
        if method in {"get", "post", "patch", "put", "delete"}
    )


def body_names(operation: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {})
    schema = (content.get("application/json") or {}).get("schema", {})
    ref = schema.get("$ref", "")
    if ref:
        schema = openapi()["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return sorted(schema.get("properties", {}))


@pytest.fixture
def machine(db):
    team = m.Team.objects.create(name="Fuzz", slug="fuzz")
    DeploymentFactory(model=AIModelFactory(team=team), team=team)
    sm.DataSource.objects.create(name="k8s", kind="kubernetes", config={})
    _, raw = services.api_token_issue(
        actor=None, name="fuzz", scopes=[s.value for s in m.APIToken.Scope], days=1
    )
    return Client(headers={"Authorization": f"Bearer {raw}"})


@pytest.mark.parametrize("operation", operations(), ids="{0[1]} {0[0]}".format)
@given(data=st.data())
def test_every_api_operation_answers_hostile_input_without_a_5xx(
    machine, operation, data
):
    path, method = operation
    spec = openapi()["paths"][path][method]
    url = path
    query: dict[str, str] = {}
    for param in spec.get("parameters", []):
        value = data.draw(
            st.one_of(hostile_text, st.sampled_from(["1", "2"])), label=param["name"]
        )
        if param["in"] == "path":
            url = url.replace(
                "{" + param["name"] + "}",
                quote(value, safe="", errors="surrogatepass") or "1",
            )
        elif param["in"] == "query":
            query[param["name"]] = value
    if "cursor" in {p["name"] for p in spec.get("parameters", [])}:
        query["cursor"] = data.draw(hostile_text, label="cursor")
    # Percent-encoded as a client would (a lone surrogate as its raw UTF-8 bytes).
    kwargs: dict[str, Any] = {"QUERY_STRING": urlencode(query, errors="surrogatepass")}
    if method in {"post", "patch", "put"}:
        names = body_names(spec) or ["model", "name"]
        body = data.draw(
            st.one_of(
                st.fixed_dictionaries(dict.fromkeys(names, hostile_json)).map(encode),
                hostile_json.map(encode),
                st.sampled_from(DEEP_TEXTS),
            ),
            label="body",
        )
        kwargs.update(data=body, content_type="application/json")
    send(machine, method, url, **kwargs)


# ---------------------------------------------------------------------------
# Forms and filters
# ---------------------------------------------------------------------------
FORMS = {
    "inventory:team_create": ["name", "slug", "description", "members"],
    "inventory:aimodel_create": [
        "name",
        "kind",
        "provider",
        "team",
        "owner",
        "lifecycle",
    ],
    "inventory:modelversion_create": [
        "model",
        "version",
        "artifact_uri",
        "digest",
        "approved_bounds",
        "approval",
    ],
    "inventory:system_create": ["name", "kind", "team", "owner", "description"],
    "inventory:deployment_create": [
        "name",
        "model",
        "environment",
        "endpoint",
        "team",
        "change_window",
    ],
    "inventory:identity_create": ["name", "kind", "provider", "scopes", "expires_at"],
    "tokens:token_issue": ["name", "scopes", "days"],
}


def form_body(values: dict[str, str]) -> dict[str, Any]:
    """A form POST's body as a browser (or a hostile client) sends it, surrogates too."""
    return {
        "data": urlencode(values, errors="surrogatepass"),
        "content_type": "application/x-www-form-urlencoded",
    }


@pytest.fixture
def admin_client(db):
    user = UserFactory(username="fuzz-admin", role=Role.ADMIN, is_staff=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("form", sorted(FORMS))
@given(data=st.data())
def test_every_form_answers_hostile_input_without_a_5xx(admin_client, form, data):
    values = {
        name: data.draw(
            st.one_of(
                hostile_text, hostile_json.map(encode), st.sampled_from(DEEP_TEXTS)
            ),
            label=name,
        )
        for name in FORMS[form]
    }
    send(admin_client, "post", reverse(form), **form_body(values))


@pytest.mark.parametrize(
    "form", ["kubernetes", "mlflow", "gcp_keys", "aws_iam", "vault", "otlp", "cicd"]
)
@given(data=st.data())
def test_every_source_form_answers_hostile_settings_without_a_5xx(
    admin_client, form, data
):
    values = {
        name: data.draw(hostile_text, label=name)
        for name in (
            "name",
            "schedule_minutes",
            "team",
            "api_url",
            "rules",
            "page_size",
        )
    }
    send(
        admin_client,
        "post",
        reverse("sources:source_create", args=[form]),
        **form_body(values),
    )


LISTS = [
    "inventory:team_list",
    "inventory:aimodel_list",
    "inventory:modelversion_list",
    "inventory:system_list",
    "inventory:deployment_list",
    "inventory:identity_list",
    "sources:source_list",
    "sources:run_list",
    "sources:event_list",
    "governance:audit_list",
]
# `after` and `before` (the HTML keyset cursor, issue 8 item 2) belong to the list view
# being rewritten; its own tests cover them.
NOT_FUZZED_HERE = {"after", "before", "csrfmiddlewaretoken"}


@pytest.mark.parametrize("page", LISTS)
@given(data=st.data())
def test_every_filter_answers_hostile_input_without_a_5xx(admin_client, page, data):
    url = reverse(page)
    names = _filter_names(admin_client, url)
    query = {
        name: data.draw(hostile_text, label=name)
        for name in names
        if data.draw(st.booleans(), label=f"use {name}")
    }
    query["sort"] = data.draw(hostile_text, label="sort")
    if data.draw(st.booleans(), label="csv"):
        query["export"] = "csv"
    send(
        admin_client, "get", url, QUERY_STRING=urlencode(query, errors="surrogatepass")
    )


_NAMES: dict[str, list[str]] = {}


def _filter_names(client: Client, url: str) -> list[str]:
    if url not in _NAMES:
        page = client.get(url).content.decode()
        _NAMES[url] = sorted(
            set(re.findall(r'name="([a-z_]+)"', page)) - NOT_FUZZED_HERE
        )
    return _NAMES[url]


# ---------------------------------------------------------------------------
# JSON and uploads
# ---------------------------------------------------------------------------
@given(text=st.one_of(hostile_json.map(encode), st.text(max_size=200)))
def test_jsonsafe_refuses_or_returns_what_the_audit_chain_can_hash(text):
    try:
        value = jsonsafe.loads(text)
    except jsonsafe.UnsafeJSON as exc:
        assert str(exc) in {
            jsonsafe.JSON_INVALID,
            jsonsafe.JSON_NOT_FINITE,
            jsonsafe.JSON_BAD_TEXT,
            jsonsafe.JSON_TOO_DEEP.format(limit=jsonsafe.MAX_DEPTH),
        }
        return
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


@given(value=hostile_json, indent=st.sampled_from([None, 1, 2]))
def test_the_upload_depth_scan_agrees_with_a_parse(value, indent, tmp_path_factory):
    path = tmp_path_factory.mktemp("scan") / "f.json"
    path.write_text(json.dumps(value, indent=indent, ensure_ascii=True), "utf-8")
    assert upload_guard.json_depth(str(path)) == _depth(value)


@pytest.fixture
def k8s(db):
    return sm.DataSource.objects.create(name="k8s", kind="kubernetes", config={})


@given(
    content=st.one_of(
        st.binary(max_size=2000),
        hostile_json.map(lambda v: ('{"items": ' + encode([v]) + "}").encode()),
        st.integers(min_value=1, max_value=400_000).map(
            lambda n: b'{"items":' + b"[" * n + b"]" * n + b"}"
        ),
    )
)
def test_the_upload_guard_reports_any_file_and_the_worker_lives(
    k8s, content, tmp_path_factory
):
    """The parse runs in the guard's child under its memory limit: a file that would
    exhaust the machine only ends that child."""
    path = tmp_path_factory.mktemp("upload") / "u.json"
    path.write_bytes(content)
    fctx = FetchContext(source=k8s, settings={}, secrets={}, upload_path=str(path))
    TALLY["requests"] += 1
    try:
        upload_guard.check_upload(
            connector=KubernetesConnector(k8s), fctx=fctx, json_upload=True
        )
    except SourceConfigError as exc:
        assert str(exc)
