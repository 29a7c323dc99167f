"""Detectors whose subject is a non-human identity: orphaned, stale (not rotated), expired
but still active, unused, and missing owner.

Each rule is the inventory's own (`inventory.querysets`: `identity_orphaned_q`,
`identity_unrotated_q`, `identity_expired_q`, `identity_unused_q`, `ownerless_q`), with
the numbers of the `Policy` row, so an identity list filtered by a rule and its findings
agree. A scan reads a chunk of identities in one query (its tier annotated), and at most
one more for the orphans' bindings: the number of queries does not grow with the chunk.

An identity's tier is the riskiest (lowest) `risk_tier` of the deployments bound to it,
4 when it is bound to none; its team and owner are its own.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator
from datetime import datetime
from functools import lru_cache, partial
from types import SimpleNamespace
from typing import Any

from django.db.models import BooleanField, ExpressionWrapper, Min, Q, QuerySet, Value
from django.db.models.functions import Coalesce

from audit.sql import fetch_dicts
from governance.detection import (
    Condition,
    kinds_opened_in_sql,
    memo,
    running_kinds,
)
from governance.detectors.identities_sql import iso, json_bool
from governance.models import Finding
from inventory import models as im
from inventory import querysets as rules
from inventory.selectors import policy_current

Kind = Finding.Kind
IDENTITY = Finding.Subject.IDENTITY
BINDING = im.NonHumanIdentity.deployments.through

# The most deployments an orphan's facts list (the count is always given).
FACT_DEPLOYMENTS = 50

# Why an identity is orphaned (`facts["reasons"]`).
RETIRED_MODEL = "retired_model"
DEPLOYMENTS_GONE = "deployments_retired_or_withdrawn"
BOUND_TO_NOTHING = "bound_to_nothing"

# An identity as a scan reads it: `rows_of`' plain rows (the model's column names).
Identity = SimpleNamespace

IDENTITY_FIELDS = (
    "pk",
    "name",
    "kind",
    "provider",
    "status",
    "model_id",
    "team_id",
    "owner_id",
    "source",
    "issued_at",
    "rotated_at",
    "last_used_at",
    "expires_at",
    "created_at",
)


def bound_tiers(
    ids: Collection[int] | None, id_range: tuple[int, int] | None
) -> dict[int, int]:
    """The riskiest (lowest) tier of each identity's bound deployments, among `ids` or
    within `id_range`: one aggregate over the bindings, shared by the identity detectors
    of a run (`detection.memo`). A scalar subquery per identity instead cost each of the
    five scans about 0.4 s per 50,000 identities."""

    def compute() -> dict[int, int]:
        qs = BINDING.objects.all()
        if ids is not None:
            qs = qs.filter(nonhumanidentity_id__in=list(ids))
        elif id_range is not None:
            qs = qs.filter(
                nonhumanidentity_id__gte=id_range[0],
                nonhumanidentity_id__lt=id_range[1],
            )
        return dict(
            qs.order_by()
            .values("nonhumanidentity_id")
            .annotate(tier=Min("deployment__risk_tier"))
            .values_list("nonhumanidentity_id", "tier")
        )

    key = tuple(sorted(ids)) if ids is not None else id_range
    return memo("identity.bound_tiers", key, compute)


def identities_in(
    ids: Collection[int] | None, id_range: tuple[int, int] | None
) -> QuerySet[im.NonHumanIdentity]:
    """The identities a scan looks at: a change scope's ids or a chunk of a full run."""
    qs = im.NonHumanIdentity.objects.all()
    if ids is not None:
        qs = qs.filter(pk__in=list(ids))
    elif id_range is not None:
        qs = qs.filter(pk__gte=id_range[0], pk__lt=id_range[1])
    return qs.order_by("pk")


def rows_of(
    qs: QuerySet[im.NonHumanIdentity],
    ids: Collection[int] | None,
    id_range: tuple[int, int] | None,
    *extra: str,
) -> Iterator[SimpleNamespace]:
    """The scan's columns of each identity, as attributes (`i.name`, `i.bound_tier`):
    plain rows, not model instances, which cost several times more to build. Read in
    one fetch (a chunk is bounded): a server-side cursor would have PostgreSQL plan for
    the first rows (`cursor_tuple_fraction`) and cost a round trip per 2,000."""
    tiers = bound_tiers(ids, id_range)
    for row in fetch_dicts(qs, [*IDENTITY_FIELDS, *extra]):
        yield SimpleNamespace(**row, bound_tier=tiers.get(row["pk"], 4))


def chunk_identities(
    ids: Collection[int] | None,
    id_range: tuple[int, int] | None,
    now: datetime,
    kind: str,
) -> tuple[im.Policy, list[SimpleNamespace]]:
    """The identities among `ids` or within `id_range` that hold at least one identity
    rule, each with a flag per rule (`i.holds[kind]`), read in one query shared by the
    identity detectors of a run (`detection.memo`): the rules of the run's kinds, or
    outside a run only `kind`'s. Each flag is the rule's own `Q`
    (`IdentityRule.matching`, `identity_orphaned_q`) selected as a boolean, so a finding
    and a list filtered by the rule still agree. Five queries, one per detector, each
    reading its matches again, cost about twice as much (PostgreSQL and row building).
    Also returns the policy the rules read (the current one, or the defaults when no
    rule of the run reads one)."""

    def compute(wanted: set[str]) -> tuple[im.Policy, list[SimpleNamespace], set[str]]:
        chosen = [d for d in DETECTORS if d.kind in wanted]
        uses_policy = any(d.uses_policy for d in chosen)
        policy = policy_current() if uses_policy else im.Policy()
        rules_by_kind = {d.kind: d.matching(policy, now) for d in chosen}
        names = [f"holds_{n}" for n in range(len(rules_by_kind))]
        qs = (
            identities_in(ids, id_range)
            # Every identity rule is of active identities: the others hold none.
            .filter(rules.ACTIVE_IDENTITY)
            .annotate(
                model_lifecycle=Coalesce("model__lifecycle", Value("")),
                **{
                    name: ExpressionWrapper(q, output_field=BooleanField())
                    for name, q in zip(names, rules_by_kind.values(), strict=True)
                },
            )
        )
        kinds = list(rules_by_kind)
        found = []
        for i in rows_of(qs, ids, id_range, "model_lifecycle", *names):
            flags = [getattr(i, name) for name in names]
            if any(flags):
                i.holds = {
                    kind: bool(flag) for kind, flag in zip(kinds, flags, strict=True)
                }
                found.append(i)
        return policy, found, set(kinds)

    running = running_kinds()
    wanted = set(running) if running is not None else {kind}
    key = (tuple(sorted(ids)) if ids is not None else id_range, now)

    def first() -> tuple[im.Policy, list[SimpleNamespace], set[str]]:
        # The kinds whose chunk PostgreSQL opens in one statement read no flag here.
        if id_range is None:
            return compute(wanted)
        others = [d for d in DETECTORS if d.kind in wanted - {kind}]
        return compute(wanted - kinds_opened_in_sql(others, IDENTITY, id_range))

    policy, found, computed = memo("identity.chunk_identities", key, first)
    if kind not in computed:
        # Foreseen as opened in SQL, but the chunk has a finding of the kind by now (or
        # the run is a dry run): its flags are read after all.
        policy, found, computed = memo(
            "identity.chunk_identities.again", (key, kind), lambda: compute(wanted)
        )
    return policy, found


def _at(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _record(i: Identity, what: str, at: datetime | None) -> dict[str, Any]:
    return {"source": i.source, "what": what, "at": _at(at)}


def _credential_times(i: Identity) -> tuple[tuple[str, datetime | None], ...]:
    return (
        ("issued", i.issued_at),
        ("rotated", i.rotated_at),
        ("last used", i.last_used_at),
        ("expires", i.expires_at),
    )


def credential_records(i: Identity) -> list[dict[str, Any]]:
    """The identity's credential times, those it has."""
    return [_record(i, what, at) for what, at in _credential_times(i) if at is not None]


@lru_cache(maxsize=1024)
def _json_text(value: str) -> str:
    return json.dumps(value)


def records_json(i: Identity, *, created: bool = False) -> str:
    """`json.dumps(credential_records(i))` (with the created record first if `created`),
    written directly: a first full run writes the records of some 320,000 identity
    findings, and building the dicts to encode them cost about 2 s of its CPU."""
    source = _json_text(i.source)
    times = _credential_times(i)
    if created:
        times = (("created", i.created_at), *times)
    return (
        "["
        + ", ".join(
            f'{{"source": {source}, "what": "{what}", "at": "{at.isoformat()}"}}'
            if at is not None
            else f'{{"source": {source}, "what": "{what}", "at": null}}'
            for what, at in times
            if at is not None or what == "created"
        )
        + "]"
    )


def condition(kind: str, i: Identity, title: str, facts: dict, **extra) -> Condition:
    """A condition on identity `i` (its model, team, owner and tier filled in); `i` comes
    from `rows_of` (for `bound_tier`)."""
    return Condition(
        kind=kind,
        subject_type=IDENTITY,
        subject_id=i.pk,
        title=title,
        facts=facts,
        identity_id=i.pk,
        model_id=i.model_id,
        team_id=i.team_id,
        owner_id=i.owner_id,
        tier=getattr(i, "bound_tier", None) or 4,
        source=i.source,
        **extra,
    )


class IdentityRule:
    """A detector for one `inventory.querysets` rule over identities: subclasses give the
    rule (`matching`) and each match's title and facts."""

    kind: str
    subject_type = IDENTITY
    uses_policy = True  # False: the rule reads no policy number (skip its query)

    def matching(self, policy: im.Policy, now: datetime) -> Q:
        raise NotImplementedError

    def title(self, i: Identity, policy: im.Policy) -> str:
        raise NotImplementedError

    def facts(self, i: Identity, policy: im.Policy) -> dict[str, Any]:
        raise NotImplementedError

    def records(self, i: Identity) -> list[dict[str, Any]]:
        return credential_records(i)

    def records_text(self, i: Identity) -> str:
        """`records(i)` as JSON text (`Condition.records_json`)."""
        return records_json(i)

    # The SQL of a new finding's title and facts text (PostgreSQL; the columns of `m`,
    # the identity), each with its parameters: given, a chunk with no finding of the
    # kind opens its findings in one statement (`identities_sql.open_in_sql`). Both must
    # write what `title` and the JSON of `facts` (sorted keys) write.
    title_sql: Callable[[im.Policy], tuple[str, list]] | None = None
    facts_sql: Callable[[im.Policy], tuple[str, list]] | None = None
    records_created = False  # the records start with the created one

    def open_all(
        self, *, now: datetime, id_range: tuple[int, int]
    ) -> list[tuple[int, int, int | None]]:
        """Open a finding for every identity in `id_range` holding the rule, in SQL
        (`identities_sql.open_in_sql`): (id, severity, assignee) of each."""
        from governance.detectors import identities_sql

        policy = policy_current() if self.uses_policy else im.Policy()
        return identities_sql.open_in_sql(
            self, policy=policy, now=now, id_range=id_range
        )

    def scan(
        self,
        *,
        now: datetime,
        ids: Collection[int] | None,
        id_range: tuple[int, int] | None,
    ) -> Iterator[Condition]:
        policy, found = chunk_identities(ids, id_range, now, self.kind)
        for i in found:
            if i.holds.get(self.kind):
                yield condition(
                    self.kind,
                    i,
                    self.title(i, policy),
                    self.facts(i, policy),
                    # Listed only if the finding's evidence is written.
                    records=partial(self.records, i),
                    records_json=partial(self.records_text, i),
                )


class StaleCredential(IdentityRule):
    """Active and not rotated (never rotated: issued) within the policy's days."""

    kind = Kind.STALE_CREDENTIAL

    def matching(self, policy: im.Policy, now: datetime) -> Q:
        return rules.identity_unrotated_q(policy, now)

    def title(self, i: Identity, policy: im.Policy) -> str:
        return f"{i.name} not rotated in {policy.unrotated_after_days} days"

    def facts(self, i: Identity, policy: im.Policy) -> dict[str, Any]:
        return {
            "ever_rotated": i.rotated_at is not None,
            "unrotated_after_days": policy.unrotated_after_days,
        }

    def title_sql(self, policy: im.Policy) -> tuple[str, list]:
        return "m.name || %s", [f" not rotated in {policy.unrotated_after_days} days"]

    def facts_sql(self, policy: im.Policy) -> tuple[str, list]:
        return (
            f"'{{\"ever_rotated\": ' || {json_bool('m.rotated_at IS NOT NULL')} || %s",
            [f', "unrotated_after_days": {int(policy.unrotated_after_days)}}}'],
        )


class ExpiredActive(IdentityRule):
    """Past its expiry and still active."""

    kind = Kind.EXPIRED_ACTIVE

    def matching(self, policy: im.Policy, now: datetime) -> Q:
        return rules.identity_expired_q(now)

    def title(self, i: Identity, policy: im.Policy) -> str:
        return f"{i.name} expired on {i.expires_at:%Y-%m-%d} but is still active"

    def facts(self, i: Identity, policy: im.Policy) -> dict[str, Any]:
        # The expiry is the identity's own datum, not a clock: it moves only if the
        # provider reports another.
        return {"expires_at": _at(i.expires_at), "status": i.status}

    def title_sql(self, policy: im.Policy) -> tuple[str, list]:
        return (
            "m.name || %s || to_char(m.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') "
            "|| %s",
            [" expired on ", " but is still active"],
        )

    def facts_sql(self, policy: im.Policy) -> tuple[str, list]:
        return (
            f"%s || {iso('m.expires_at')} || %s || to_json(m.status::text)::text || %s",
            ['{"expires_at": "', '", "status": ', "}"],
        )


class UnusedCredential(IdentityRule):
    """Active and not used (never used: issued) within the policy's days."""

    kind = Kind.UNUSED_CREDENTIAL

    def matching(self, policy: im.Policy, now: datetime) -> Q:
        return rules.identity_unused_q(policy, now)

    def title(self, i: Identity, policy: im.Policy) -> str:
        if i.last_used_at is None:
            return f"{i.name} never used since it was issued"
        return f"{i.name} not used in {policy.unused_after_days} days"

    def facts(self, i: Identity, policy: im.Policy) -> dict[str, Any]:
        return {
            "ever_used": i.last_used_at is not None,
            "unused_after_days": policy.unused_after_days,
        }

    def title_sql(self, policy: im.Policy) -> tuple[str, list]:
        return (
            "m.name || CASE WHEN m.last_used_at IS NULL THEN %s ELSE %s END",
            [
                " never used since it was issued",
                f" not used in {policy.unused_after_days} days",
            ],
        )

    def facts_sql(self, policy: im.Policy) -> tuple[str, list]:
        return (
            f"'{{\"ever_used\": ' || {json_bool('m.last_used_at IS NOT NULL')} || %s",
            [f', "unused_after_days": {int(policy.unused_after_days)}}}'],
        )


class IdentityMissingOwner(IdentityRule):
    """An active identity with no accountable person (the deployments' missing-owner
    kind, on identities)."""

    kind = Kind.MISSING_OWNER
    uses_policy = False

    def matching(self, policy: im.Policy, now: datetime) -> Q:
        return rules.ACTIVE_IDENTITY & rules.ownerless_q()

    def title(self, i: Identity, policy: im.Policy) -> str:
        return f"{i.name} has no accountable owner"

    def facts(self, i: Identity, policy: im.Policy) -> dict[str, Any]:
        return {"owner": None, "team_id": i.team_id}

    def records(self, i: Identity) -> list[dict[str, Any]]:
        return [_record(i, "created", i.created_at), *credential_records(i)]

    def records_text(self, i: Identity) -> str:
        return records_json(i, created=True)

    records_created = True

    def title_sql(self, policy: im.Policy) -> tuple[str, list]:
        return "m.name || %s", [" has no accountable owner"]

    def facts_sql(self, policy: im.Policy) -> tuple[str, list]:
        return (
            "%s || COALESCE(m.team_id::text, 'null') || %s",
            ['{"owner": null, "team_id": ', "}"],
        )


class OrphanedIdentity:
    """An active credential with nothing left to serve (`identity_orphaned_q`): it belongs
    to a retired model, or all its bound deployments are withdrawn or of a retired model,
    or it is bound to nothing. Facts say which, and list the bindings."""

    kind = Kind.ORPHANED_IDENTITY
    subject_type = IDENTITY
    uses_policy = False

    def matching(self, policy: im.Policy, now: datetime) -> Q:
        return rules.identity_orphaned_q()

    def scan(
        self,
        *,
        now: datetime,
        ids: Collection[int] | None,
        id_range: tuple[int, int] | None,
    ) -> Iterator[Condition]:
        _, found = chunk_identities(ids, id_range, now, self.kind)
        orphans = [i for i in found if i.holds.get(self.kind)]
        if not orphans:
            return
        bindings: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for row in (
            BINDING.objects.filter(nonhumanidentity_id__in=[i.pk for i in orphans])
            .order_by("nonhumanidentity_id", "deployment_id")
            .values(
                "nonhumanidentity_id",
                "deployment_id",
                "deployment__name",
                "deployment__status",
                "deployment__model__lifecycle",
            )
        ):
            bindings[row["nonhumanidentity_id"]].append(row)
        for i in orphans:
            bound = bindings.get(i.pk, [])
            reasons = []
            if i.model_lifecycle == rules.RETIRED:
                reasons.append(RETIRED_MODEL)
            if bound:
                # The rule holds, so no binding is live unless the model is retired.
                if all(
                    b["deployment__status"] == im.Deployment.Status.WITHDRAWN
                    or b["deployment__model__lifecycle"] == rules.RETIRED
                    for b in bound
                ):
                    reasons.append(DEPLOYMENTS_GONE)
            elif i.model_id is None:
                reasons.append(BOUND_TO_NOTHING)
            facts = {
                "reasons": reasons,
                "model_id": i.model_id,
                "model_lifecycle": i.model_lifecycle or None,
                "deployment_count": len(bound),
                "deployments": [
                    {
                        "id": b["deployment_id"],
                        "status": b["deployment__status"],
                        "model_lifecycle": b["deployment__model__lifecycle"],
                    }
                    for b in bound[:FACT_DEPLOYMENTS]
                ],
            }
            yield condition(
                self.kind,
                i,
                _orphan_title(i, reasons, bound),
                facts,
                records=partial(credential_records, i),
                records_json=partial(records_json, i),
            )


def _orphan_title(i: Identity, reasons: list[str], bound: list[dict[str, Any]]) -> str:
    if BOUND_TO_NOTHING in reasons:
        return f"{i.name} is active but bound to nothing"
    if DEPLOYMENTS_GONE in reasons:
        if len(bound) == 1:
            return f"{i.name} is active but its only deployment is retired or withdrawn"
        return (
            f"{i.name} is active but all its {len(bound)} deployments are retired "
            "or withdrawn"
        )
    return f"{i.name} is active but its model is retired"


DETECTORS = [
    OrphanedIdentity(),
    StaleCredential(),
    ExpiredActive(),
    UnusedCredential(),
    IdentityMissingOwner(),
]
