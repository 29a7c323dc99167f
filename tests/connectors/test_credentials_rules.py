"""Naming rules, status and time parsing, and the apply step the credential connectors share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from inventory import models as m
from sources import models as sm
from sources.connectors import credentials as c
from sources.connectors.aws_iam import AwsIamConnector
from sources.connectors.gcp_keys import GcpKeysConnector
from sources.connectors.vault import VaultConnector
from sources.sync.base import Record
from sources.sync.engine import ApplyContext
from tests.factories import AIModelFactory, DeploymentFactory, TeamFactory


# ---------------------------------------------------------------------------
# Parsing and validating rules
# ---------------------------------------------------------------------------
def test_rules_parse_groups_fixed_names_comments_and_arrows_in_patterns():
    rules = c.parse_rules(
        "# service users\n"
        "^svc-(?P<model>[a-z0-9-]+)$ => model\n"
        "\n"
        "   ^deploy-(?P<deployment>.+)$   =>   deployment  \n"
        "^ci-release$ => deployment fraud-prod\n"
        "^a=>b-(?P<model>x)$ => model\n"
    )
    assert [(r.line, r.target, r.fixed_name) for r in rules] == [
        (2, "model", ""),
        (4, "deployment", ""),
        (5, "deployment", "fraud-prod"),
        (6, "model", ""),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("^svc-.*$", c.RULE_SHAPE.format(line=1)),
        ("^svc-(?P<model>.*)$ => team", c.RULE_TARGET.format(line=1, target="team")),
        (" => model", c.RULE_EMPTY.format(line=1)),
        ("^svc-(.*)$ => model", c.RULE_GROUP.format(line=1, target="model")),
        (
            "^svc-(?P<model>.*)$ => deployment",
            c.RULE_GROUP.format(line=1, target="deployment"),
        ),
    ],
)
def test_bad_rules_are_refused_with_their_line(line, message):
    with pytest.raises(ValidationError) as exc:
        c.parse_rules(line)
    assert exc.value.message_dict == {"rules": [message]}


def test_every_bad_line_is_reported_by_number():
    with pytest.raises(ValidationError) as exc:
        c.parse_rules(
            "^ok-(?P<model>.+)$ => model\n^bad-(?P<model>[a-z$ => model\nnope"
        )
    problems = exc.value.message_dict["rules"]
    assert len(problems) == 2
    assert problems[0].startswith(
        "Line 2: the pattern is not a valid regular expression"
    )
    assert problems[1] == c.RULE_SHAPE.format(line=3)


@pytest.mark.parametrize("cls", [AwsIamConnector, VaultConnector, GcpKeysConnector])
def test_connectors_validate_rules_in_settings(cls):
    good = {"rules": "^svc-(?P<model>.+)$ => model"}
    assert cls.validate_settings(good) == good
    with pytest.raises(ValidationError) as exc:
        cls.validate_settings({"rules": "(unclosed => model"})
    assert "Line 1" in exc.value.message_dict["rules"][0]


def test_first_matching_rule_per_target_wins():
    rules = c.parse_rules(
        "^svc-(?P<model>fraud)-.*$ => model\n"
        "^svc-(?P<model>[a-z]+)$ => model\n"
        "^svc-(?P<deployment>.+)$ => deployment\n"
        "^svc-.*-prod$ => deployment fraud-prod\n"
    )
    assert c.names_from_rules(rules, "svc-fraud-prod") == ("fraud", "fraud-prod")
    assert c.names_from_rules(rules, "svc-support") == ("support", "support")
    assert c.names_from_rules(rules, "alice") == ("", "")
    assert c.names_from_rules(rules, "") == ("", "")


# ---------------------------------------------------------------------------
# Status and times
# ---------------------------------------------------------------------------
def test_effective_status_expires_only_active_credentials_past_their_expiry():
    now = timezone.now()
    past, future = now - timedelta(seconds=1), now + timedelta(days=1)
    assert c.effective_status("active", past, now) == "expired"
    assert c.effective_status("active", future, now) == "active"
    assert c.effective_status("active", None, now) == "active", "never expires"
    assert c.effective_status("disabled", past, now) == "disabled"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "2026-11-26T03:31:00.241633437Z",
            datetime(2026, 11, 26, 3, 31, 0, 241633, tzinfo=UTC),
        ),
        ("2023-05-16T08:47:09.000-07:00", datetime(2023, 5, 16, 15, 47, 9, tzinfo=UTC)),
        ("2023-01-15T10:00:00", datetime(2023, 1, 15, 10, tzinfo=UTC)),
        (1795663850, datetime(2026, 11, 26, 3, 30, 50, tzinfo=UTC)),
        (None, None),
        ("", None),
    ],
)
def test_parse_time_reads_the_sources_formats(value, expected):
    assert c.parse_time(value) == expected


@pytest.mark.parametrize("value", ["yesterday", True, {"t": 1}, 10**20])
def test_parse_time_refuses_the_rest(value):
    with pytest.raises(ValueError):
        c.parse_time(value)


# ---------------------------------------------------------------------------
# Applying: lookups, bindings, team
# ---------------------------------------------------------------------------
@pytest.fixture
def apply_ctx(db):
    team = TeamFactory(name="Platform", slug="platform")
    source = sm.DataSource.objects.create(name="Keys", kind="gcp_keys", team=team)
    run = sm.SyncRun.objects.create(source=source, trigger="command")
    return ApplyContext(source=source, run=run)


def cred(**kw) -> c.Credential:
    return c.Credential(**{"name": "k", "kind": "access_key", "provider": "gcp", **kw})


def test_apply_links_models_by_tag_then_rule_and_never_creates_them(apply_ctx):
    tagged = AIModelFactory(name="fraud-scorer")
    ruled = AIModelFactory(name="support-llm")
    rules = c.parse_rules("^svc-(?P<model>[a-z0-9-]+)$ => model")
    batch = [
        Record("a", cred(subject="svc-support-llm", model_name="fraud-scorer")),
        Record("b", cred(subject="svc-support-llm")),
        Record("c", cred(subject="svc-nobody-registered")),
    ]
    ids = c.apply_credentials(batch, apply_ctx, rules)
    rows = m.NonHumanIdentity.objects.in_bulk(ids.values())
    assert rows[ids["a"]].model == tagged, "the tag wins over the rule"
    assert rows[ids["b"]].model == ruled
    assert rows[ids["c"]].model is None
    assert not m.AIModel.objects.filter(name="nobody-registered").exists()
    assert apply_ctx.counts.created == 3


def test_apply_binds_deployments_and_takes_their_model(apply_ctx):
    prod = DeploymentFactory(name="fraud-prod")
    rules = c.parse_rules("^ci-release$ => deployment fraud-prod")
    ids = c.apply_credentials(
        [Record("a", cred(subject="ci-release"))], apply_ctx, rules
    )
    identity = m.NonHumanIdentity.objects.get(pk=ids["a"])
    assert list(identity.deployments.all()) == [prod]
    assert identity.model == prod.model
    # The rule is removed: the next apply unbinds, as the source no longer says it.
    c.apply_credentials([Record("a", cred(subject="ci-release"))], apply_ctx, [])
    identity.refresh_from_db()
    assert not identity.deployments.exists() and identity.model is None


def test_apply_gives_the_source_team_to_new_rows_only(apply_ctx):
    ids = c.apply_credentials([Record("a", cred())], apply_ctx, [])
    identity = m.NonHumanIdentity.objects.get(pk=ids["a"])
    assert identity.team == apply_ctx.source.team
    other = TeamFactory(name="Risk", slug="risk")
    m.NonHumanIdentity.objects.filter(pk=identity.pk).update(team=other)
    c.apply_credentials([Record("a", cred(name="renamed"))], apply_ctx, [])
    identity.refresh_from_db()
    assert (identity.name, identity.team) == ("renamed", other), (
        "a team set by hand stays"
    )


def test_apply_marks_expired_credentials(apply_ctx):
    past = timezone.now() - timedelta(days=1)
    ids = c.apply_credentials([Record("a", cred(expires_at=past))], apply_ctx, [])
    assert m.NonHumanIdentity.objects.get(pk=ids["a"]).status == "expired"
