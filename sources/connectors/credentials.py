"""What the four credential sources share: naming rules, the identity row, status and apply.

AWS IAM keys, Vault/OpenBao tokens, GCP service-account keys and GitHub tokens all become
`NonHumanIdentity` rows. Each connector turns a source record into a `Credential`; this
module turns credentials into rows, ties each to the model (and deployment) it exists for,
and binds it. The tie comes first from the source's own tag or metadata key (IAM user tag
`model`, Vault token meta `model`, a GCP label), then from the administrator's naming rules,
one a line:

    ^svc-(?P<model>[a-z0-9-]+)$          => model
    ^deploy-(?P<deployment>[a-z0-9-]+)$  => deployment
    ^ci-fraud-release$                   => deployment fraud-scorer-prod

A rule's named group (or the fixed name after the target) gives the name. Models are only
looked up, never created: a credential naming an unknown model stays unlinked rather than
inventing a model nobody registered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, ClassVar

import ijson
from django.core.exceptions import ValidationError
from django.utils import timezone

from inventory import models as m
from sources.sync.base import Connector, Record, Setting, SourceConfigError
from sources.sync.engine import ApplyContext

MODEL = "model"
DEPLOYMENT = "deployment"
TARGETS = (MODEL, DEPLOYMENT)

RULE_SHAPE = 'Line {line}: write "pattern => model" or "pattern => deployment".'
RULE_TARGET = 'Line {line}: after "=>" write "model" or "deployment", not {target!r}.'
RULE_REGEX = "Line {line}: the pattern is not a valid regular expression ({error})."
RULE_GROUP = (
    "Line {line}: the pattern needs a named group (?P<{target}>…) "
    'or a fixed name after "{target}".'
)
RULE_EMPTY = "Line {line}: the pattern is empty."
MAX_RULES = 200
RULES_INVALID = (
    "The naming rules are invalid; fix them in the source's settings. {problems}"
)

FILE_EMPTY = "The file is empty."
FILE_NOT_JSON = "The file is not valid JSON ({error})."

RULES_HELP = (
    'One rule a line: "regex => model" or "regex => deployment". The named group '
    "(?P<model>…) or (?P<deployment>…) gives the name, or write a fixed name after the "
    "target. Lines starting with # are ignored. A tag or metadata value wins over rules."
)


# ---------------------------------------------------------------------------
# Naming rules
# ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NamingRule:
    line: int
    pattern: re.Pattern[str]
    target: str  # MODEL | DEPLOYMENT
    fixed_name: str = ""

    def name_for(self, subject: str) -> str:
        match = self.pattern.search(subject)
        if match is None:
            return ""
        if self.fixed_name:
            return self.fixed_name
        return (match.groupdict().get(self.target) or "").strip()


def parse_rules(text: str | None) -> list[NamingRule]:
    """Rules from the settings text; ValidationError listing every bad line by number."""
    rules: list[NamingRule] = []
    problems: list[str] = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "=>" not in line:
            problems.append(RULE_SHAPE.format(line=number))
            continue
        # The target never contains "=>", a pattern might: split on the last one.
        pattern_text, target_text = (part.strip() for part in line.rsplit("=>", 1))
        target, _, fixed_name = target_text.partition(" ")
        fixed_name = fixed_name.strip()
        if target not in TARGETS:
            problems.append(RULE_TARGET.format(line=number, target=target_text))
            continue
        if not pattern_text:
            problems.append(RULE_EMPTY.format(line=number))
            continue
        try:
            pattern = re.compile(pattern_text)
        except re.error as exc:
            problems.append(RULE_REGEX.format(line=number, error=exc))
            continue
        if not fixed_name and target not in pattern.groupindex:
            problems.append(RULE_GROUP.format(line=number, target=target))
            continue
        rules.append(NamingRule(number, pattern, target, fixed_name))
    if len(rules) > MAX_RULES:
        problems.append(f"At most {MAX_RULES} rules.")
    if problems:
        raise ValidationError({"rules": problems})
    return rules


def names_from_rules(rules: Iterable[NamingRule], subject: str) -> tuple[str, str]:
    """(model name, deployment name) from the first matching rule of each target."""
    found = {MODEL: "", DEPLOYMENT: ""}
    if not subject:
        return "", ""
    for rule in rules:
        if found[rule.target]:
            continue
        found[rule.target] = rule.name_for(subject)
        if found[MODEL] and found[DEPLOYMENT]:
            break
    return found[MODEL], found[DEPLOYMENT]


# ---------------------------------------------------------------------------
# The credential a connector reports
# ---------------------------------------------------------------------------
@dataclass(slots=True)
class Credential:
    """One credential as a source reported it, before naming rules and lookups.

    `subject` is what naming rules are matched against (an IAM user name, a token's
    display name, a service account's local part); `model_name` / `deployment_name`
    come from the source's own tags or metadata and win over the rules.
    """

    name: str
    kind: str
    provider: str
    subject: str = ""
    vendor: str = ""
    scopes: list[str] = field(default_factory=list)
    status: str = m.NonHumanIdentity.Status.ACTIVE
    issued_at: datetime | None = None
    rotated_at: datetime | None = None
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    model_name: str = ""
    deployment_name: str = ""


def effective_status(
    status: str, expires_at: datetime | None, now: datetime | None = None
) -> str:
    """A credential past its expiry cannot be used, whatever flag its source still shows.

    A missing expiry means the credential never expires (IAM keys, a Vault token with no
    TTL, a GCP key valid until 9999, a GitHub token without expiry): it stays as reported.
    """
    now = now or timezone.now()
    if status == m.NonHumanIdentity.Status.ACTIVE and expires_at and expires_at <= now:
        return m.NonHumanIdentity.Status.EXPIRED
    return status


def identity_fields(cred: Credential, now: datetime | None = None) -> dict[str, Any]:
    """The NonHumanIdentity columns a sync owns (model is added by apply)."""
    return {
        "name": cred.name,
        "kind": cred.kind,
        "provider": cred.provider,
        "vendor": cred.vendor,
        "scopes": list(cred.scopes),
        "status": effective_status(cred.status, cred.expires_at, now),
        "issued_at": cred.issued_at,
        "rotated_at": cred.rotated_at,
        "last_used_at": cred.last_used_at,
        "expires_at": cred.expires_at,
    }


def apply_credentials(
    batch: list[Record], ctx: ApplyContext, rules: list[NamingRule]
) -> dict[str, int]:
    """Upsert a batch of Credential records, link each to its model and bind deployments.

    A credential's model is the one its tag or a model rule names; failing that, the model
    of the deployment it is bound to, so a key that only names a deployment is still seen
    when that deployment's model is retired. Returns external id -> identity id.
    """
    now = timezone.now()
    wanted: dict[str, tuple[str, str]] = {}
    for record in batch:
        cred: Credential = record.payload
        rule_model, rule_deployment = names_from_rules(rules, cred.subject)
        wanted[record.external_id] = (
            cred.model_name or rule_model,
            cred.deployment_name or rule_deployment,
        )
    model_ids = ctx.model_ids_by_name({mn for mn, _ in wanted.values() if mn})
    deployment_ids = ctx.deployment_ids_by_name({dn for _, dn in wanted.values() if dn})
    model_of_deployment = dict(
        m.Deployment.objects.filter(pk__in=set(deployment_ids.values())).values_list(
            "pk", "model_id"
        )
    )
    rows = []
    deployment_of: dict[str, int] = {}
    for record in batch:
        model_name, deployment_name = wanted[record.external_id]
        deployment_id = deployment_ids.get(deployment_name)
        model_id = model_ids.get(model_name)
        if model_id is None and deployment_id is not None:
            model_id = model_of_deployment.get(deployment_id)
        if deployment_id is not None:
            deployment_of[record.external_id] = deployment_id
        fields = identity_fields(record.payload, now)
        fields["model_id"] = model_id
        rows.append((record.external_id, fields))

    existing = set(
        m.NonHumanIdentity.objects.filter(
            source=ctx.label, external_id__in=[ext for ext, _ in rows]
        ).values_list("external_id", flat=True)
    )
    ids = ctx.upsert(m.NonHumanIdentity, rows)
    ctx.bind(
        ids.values(),
        {ids[ext]: {dep} for ext, dep in deployment_of.items() if ext in ids},
    )
    team_id = ctx.team_id()
    new_ids = [pk for ext, pk in ids.items() if ext not in existing]
    if team_id and new_ids:
        # The source's team goes to new rows only: a team set by hand later is kept.
        m.NonHumanIdentity.objects.filter(pk__in=new_ids, team__isnull=True).update(
            team_id=team_id
        )
    return ids


# ---------------------------------------------------------------------------
# The connector base the four share
# ---------------------------------------------------------------------------
def _rules_text(text: str) -> str:
    """The rules must compile; every bad line is named in the error."""
    try:
        parse_rules(text)
    except ValidationError as exc:
        raise ValidationError(exc.message_dict["rules"]) from None
    return text


def rules_setting() -> Setting:
    return Setting(
        "rules",
        "Naming rules",
        kind="textarea",
        default="",
        help=RULES_HELP,
        validators=(_rules_text,),
    )


def key_settings(model_default: str, what: str) -> tuple[Setting, ...]:
    return (
        Setting(
            "model_key",
            f"Model {what}",
            default=model_default,
            help=f"The {what} whose value is the model's name.",
        ),
        Setting(
            "deployment_key",
            f"Deployment {what}",
            default=DEPLOYMENT,
            help=f"The {what} whose value is the deployment's name.",
        ),
    )


class CredentialConnector(Connector):
    """Shared apply and settings checks; subclasses fetch Credential records."""

    owns = (m.NonHumanIdentity,)
    # The status a revoked credential of this source gets (AWS keys are deactivated, not
    # deleted, so they can be re-enabled; tokens are gone for good).
    revoked_status: ClassVar[str] = m.NonHumanIdentity.Status.REVOKED

    def _rules(self) -> list[NamingRule]:
        # Parsed here, not by the schema, so that rules stored before they were checked
        # fail with RULES_INVALID in check_rules(); the schema gives the text, defaulted.
        return parse_rules(self.schema.typed(self.source.config)["rules"])

    def check_rules(self) -> None:
        """Fail the run up front on rules saved before they were checked (or by hand in
        the admin), rather than failing every record in apply()."""
        try:
            self._rules()
        except ValidationError as exc:
            raise SourceConfigError(
                RULES_INVALID.format(problems=" ".join(exc.message_dict["rules"]))
            ) from exc

    def apply(self, batch: list[Record], ctx: ApplyContext) -> None:
        rules = ctx.cache.setdefault("naming_rules", {})
        if "rules" not in rules:
            rules["rules"] = self._rules()
        apply_credentials(batch, ctx, rules["rules"])


def as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


# ---------------------------------------------------------------------------
# Parsing helpers
# ---------------------------------------------------------------------------
def parse_time(value: Any) -> datetime | None:
    """A time from ISO 8601 text (any fraction, Z or offset) or epoch seconds; None if empty.

    Raises ValueError for anything else, so the caller can report the record.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError) as exc:
            raise ValueError(f"not a time: {value!r}") from exc
    if not isinstance(value, str):
        raise ValueError(f"not a time: {value!r:.80}")
    parsed = datetime.fromisoformat(value.strip())
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def json_entries(fp: IO[bytes]) -> Iterator[Any]:
    """The top-level entries of a JSON file, streamed.

    A top-level array gives its items one at a time (ijson), so a 50k-key export is never
    held whole; a top-level object is one entry. Several top-level values in a row, as
    `gh api --paginate` writes them, are read in turn. Raises ijson.JSONError when the
    text is not JSON.
    """
    depth = 0
    in_array = False
    builder: ijson.ObjectBuilder | None = None
    for _prefix, event, value in ijson.parse(fp, multiple_values=True):
        opening = event in ("start_map", "start_array")
        closing = event in ("end_map", "end_array")
        if depth == 0:
            if event == "start_array":
                in_array, depth = True, 1
                continue
            builder = ijson.ObjectBuilder()
            builder.event(event, value)
            if opening:
                depth = 1
            else:
                yield builder.value
                builder = None
            continue
        if in_array and depth == 1:
            if event == "end_array":
                in_array, depth = False, 0
                continue
            builder = ijson.ObjectBuilder()
            builder.event(event, value)
            if opening:
                depth = 2
            else:
                yield builder.value
                builder = None
            continue
        # Inside an entry: the bookkeeping above has started its builder.
        builder.event(event, value)  # type: ignore[union-attr]
        if opening:
            depth += 1
        elif closing:
            depth -= 1
            if depth == (1 if in_array else 0):
                yield builder.value
                builder = None


def entry_excerpt(entry: Any, limit: int = 500) -> str:
    try:
        text = json.dumps(entry, default=str)
    except (TypeError, ValueError):
        text = repr(entry)
    return text if len(text) <= limit else text[:limit] + "…"


def text_list(value: Any) -> list[str]:
    """A list of strings from a source field, dropping anything else."""
    if not isinstance(value, list):
        return []
    return [str(v) for v in value if isinstance(v, str | int) and str(v)]
