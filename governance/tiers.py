"""Risk tiers: a deployment's tier from its facts, the policy's weights and cut-offs, and
the committee's overrides; a model's tier is the riskiest of its deployments'.

The rule (TierPolicy): the score is the sum of the weights of the facts that hold
(externally exposed, write access, decision-making, production, and the weight of its
business purpose's sensitivity: the system's if set, else the model's); tier 1 from
`tier1_min_score`, 2 from `tier2_min_score`, 3 from `tier3_min_score`, else 4. An override
in force (not ended, not expired) replaces the computed tier, never the score.

`explain` says why one deployment has its tier (the page's panel). `recompute` stores
tiers in bulk SQL: one UPDATE per id range joined to the computed rows, writing only the
rows whose tier or score changed, then the touched models' tiers. It runs
- for everything: nightly (governance.tasks_tiers), `manage.py recompute_tiers`, after a
  policy change, and at the end of the demo seed;
- for a few deployments (`deployment_ids=[...]`: seven small queries): after an
  override is set or ended, and for what the change queue says changed (a person's edit
  through inventory's forms, a sync): the change consumer calls
  `recompute_for(deployment_ids=..., system_ids=..., model_ids=...)`, which adds the
  deployments of changed systems and models (their sensitivity is a fact of each).
Expired overrides stop applying at the next recompute of their deployment (nightly at the
latest); `explain` already ignores them.

The policy page, the override form and their audit events are in governance.views_tiers
and the services below (`tier_policy_update`, `tier_override_set`, `tier_override_end`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, NullIf
from django.utils import timezone

from governance.models import TierOverride, TierPolicy
from inventory import models as m
from inventory import permissions
from inventory.roles import Role
from inventory.services import change_record
from inventory.snapshots import snapshot

TIERS = (1, 2, 3, 4)
TIER_LABELS = {
    1: "Tier 1 (riskiest)",
    2: "Tier 2",
    3: "Tier 3",
    4: "Tier 4 (least risky)",
}
# Rows per UPDATE: each statement holds its row locks briefly; 50,000 deployments are five.
CHUNK = 10_000
# A policy change recomputes in the request up to this many deployments, else in a task:
# rewriting a deployment row costs its 26 indexes (0.15 to 0.3 ms a row on the 2-core test
# machine), so a change that moves 50,000 tiers is write-bound at several seconds.
INLINE_MAX = getattr(settings, "TIER_RECOMPUTE_INLINE_MAX", 10_000)

POLICY_FIELDS = (
    "weight_external",
    "weight_write_access",
    "weight_decision_making",
    "weight_production",
    "weight_sensitivity_medium",
    "weight_sensitivity_high",
    "weight_sensitivity_critical",
    "tier1_min_score",
    "tier2_min_score",
    "tier3_min_score",
)
SENSITIVITY_WEIGHTS = {
    m.Sensitivity.MEDIUM: "weight_sensitivity_medium",
    m.Sensitivity.HIGH: "weight_sensitivity_high",
    m.Sensitivity.CRITICAL: "weight_sensitivity_critical",
}

CUTOFFS_MUST_DESCEND = (
    "The cut-offs must descend: tier 1's minimum score above tier 2's, tier 2's above "
    "tier 3's."
)
POLICY_UNKNOWN_FIELD = "Unknown tier policy setting(s): {names}."
OVERRIDE_ROLE_ONLY = "Only the risk committee or an administrator can override a tier."
OVERRIDE_REASON_REQUIRED = "Give the reason for the override."
OVERRIDE_REASON_TOO_LONG = "Keep the reason under {max} characters."
OVERRIDE_TIER_INVALID = "Choose a tier from 1 to 4."
OVERRIDE_EXPIRY_PAST = "The expiry must be in the future."
OVERRIDE_EXPIRY_TOO_FAR = "An override lasts at most {days} days."
OVERRIDE_NONE_IN_FORCE = "No override is in force on this deployment."
OVERRIDE_REASON_MAX = 2000


def override_max_days() -> int:
    return int(getattr(settings, "TIER_OVERRIDE_MAX_DAYS", 365))


# ---------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------
def policy_current() -> TierPolicy:
    """The policy row, or the defaults (unsaved) before an administrator saved one."""
    return TierPolicy.objects.filter(pk=TierPolicy.SINGLETON_ID).first() or TierPolicy()


def tier_for_score(score: int, policy: TierPolicy) -> int:
    if score >= policy.tier1_min_score:
        return 1
    if score >= policy.tier2_min_score:
        return 2
    if score >= policy.tier3_min_score:
        return 3
    return 4


def in_force_q(now: dt.datetime) -> Q:
    return Q(ended_at__isnull=True, expires_at__gt=now)


def override_in_force(
    deployment_id: int, now: dt.datetime | None = None
) -> TierOverride | None:
    """The newest override in force on the deployment (one indexed query)."""
    return (
        TierOverride.objects.filter(in_force_q(now or timezone.now()))
        .filter(deployment_id=deployment_id)
        .select_related("created_by")
        .order_by("-created_at", "-pk")
        .first()
    )


def can_override(user: Any) -> bool:
    return permissions.has_role(user, Role.RISK, Role.ADMIN)


@dataclass(frozen=True)
class Fact:
    key: str
    label: str
    holds: bool
    weight: int
    detail: str = ""

    @property
    def points(self) -> int:
        return self.weight if self.holds else 0


@dataclass(frozen=True)
class Explanation:
    facts: list[Fact]
    score: int
    computed_tier: int
    cutoffs: tuple[int, int, int]
    override: TierOverride | None
    effective_tier: int
    sensitivity: str
    sensitivity_from: str  # "system" or "model"
    # What the deployment row holds now (differs until the next recompute, e.g. just after
    # an override expired).
    stored_tier: int
    stored_score: int

    @property
    def stale(self) -> bool:
        return (self.stored_tier, self.stored_score) != (
            self.effective_tier,
            self.score,
        )


def sensitivity_of(deployment: m.Deployment) -> tuple[str, str]:
    """(sensitivity, where it comes from): the system's if it has one, else the model's."""
    system = deployment.system if deployment.system_id else None
    if system is not None and system.sensitivity:
        return system.sensitivity, "system"
    return deployment.model.sensitivity, "model"


def explain(
    deployment: m.Deployment,
    policy: TierPolicy | None = None,
    *,
    override: TierOverride | None | bool = False,
    now: dt.datetime | None = None,
) -> Explanation:
    """Which facts hold, each weight, the score, the computed and the effective tier.

    Reads the deployment's system and model (select them with it) and, unless
    `override` is given (None: none in force), its override in force: one query.
    """
    policy = policy or policy_current()
    now = now or timezone.now()
    if override is False:
        override = override_in_force(deployment.pk, now)
    elif override is not None and not override.in_force(now):
        override = None
    sensitivity, source = sensitivity_of(deployment)
    labels = dict(m.Sensitivity.choices)
    weight_field = SENSITIVITY_WEIGHTS.get(sensitivity)
    facts = [
        Fact(
            "external",
            "Externally exposed",
            deployment.exposure == m.Deployment.Exposure.EXTERNAL,
            policy.weight_external,
        ),
        Fact(
            "write_access",
            "Write access",
            bool(deployment.write_access),
            policy.weight_write_access,
        ),
        Fact(
            "decision_making",
            "Decision-making",
            bool(deployment.decision_making),
            policy.weight_decision_making,
        ),
        Fact(
            "production",
            "Runs in production",
            deployment.environment == m.Deployment.Environment.PRODUCTION,
            policy.weight_production,
        ),
        Fact(
            "sensitivity",
            f"Sensitivity: {labels.get(sensitivity, sensitivity)}",
            weight_field is not None,
            getattr(policy, weight_field) if weight_field else 0,
            detail=f"from its {source}",
        ),
    ]
    score = sum(f.points for f in facts)
    computed = tier_for_score(score, policy)
    return Explanation(
        facts=facts,
        score=score,
        computed_tier=computed,
        cutoffs=(
            policy.tier1_min_score,
            policy.tier2_min_score,
            policy.tier3_min_score,
        ),
        override=override,
        effective_tier=override.tier if override is not None else computed,
        sensitivity=sensitivity,
        sensitivity_from=source,
        stored_tier=deployment.risk_tier,
        stored_score=deployment.risk_score,
    )


def tier_counts(queryset: QuerySet[m.Deployment]) -> dict[int, int]:
    """Deployments per tier (every tier present, 0 for none): one grouped query."""
    counts = dict.fromkeys(TIERS, 0)
    for row in (
        queryset.order_by().values("risk_tier").annotate(n=Count("pk")).order_by()
    ):
        counts[row["risk_tier"]] = row["n"]
    return counts


# ---------------------------------------------------------------------------
# Recompute (bulk SQL)
# ---------------------------------------------------------------------------
def _score_expression(policy: TierPolicy) -> Any:
    def weight(condition: Q, value: int) -> Case:
        return Case(When(condition, then=Value(value)), default=Value(0))

    sensitivity = Coalesce(
        NullIf(F("system__sensitivity"), Value("")), F("model__sensitivity")
    )
    return (
        weight(Q(exposure=m.Deployment.Exposure.EXTERNAL), policy.weight_external)
        + weight(Q(write_access=True), policy.weight_write_access)
        + weight(Q(decision_making=True), policy.weight_decision_making)
        + weight(
            Q(environment=m.Deployment.Environment.PRODUCTION),
            policy.weight_production,
        )
        + Case(
            *(
                When(Q(_tier_sensitivity=level), then=Value(getattr(policy, field)))
                for level, field in SENSITIVITY_WEIGHTS.items()
            ),
            default=Value(0),
            output_field=IntegerField(),
        )
    ), sensitivity


def _tier_expression(policy: TierPolicy) -> Case:
    return Case(
        When(Q(_tier_score__gte=policy.tier1_min_score), then=Value(1)),
        When(Q(_tier_score__gte=policy.tier2_min_score), then=Value(2)),
        When(Q(_tier_score__gte=policy.tier3_min_score), then=Value(3)),
        default=Value(4),
        output_field=IntegerField(),
    )


def overrides_in_force(now: dt.datetime, where: Q | None = None) -> dict[int, int]:
    """{deployment id: tier} of the newest override in force on each (one query; they are
    few: the committee sets them by hand)."""
    rows = TierOverride.objects.filter(in_force_q(now))
    if where is not None:
        rows = rows.filter(
            deployment__in=m.Deployment.objects.filter(where).values("pk")
        )
    tiers_by_deployment: dict[int, int] = {}
    for deployment_id, tier in rows.order_by("created_at", "pk").values_list(
        "deployment_id", "tier"
    ):
        tiers_by_deployment[deployment_id] = tier  # the newest wins
    return tiers_by_deployment


def _computed_rows(
    policy: TierPolicy, overrides: dict[int, int], where: Q
) -> tuple[str, Sequence[Any]]:
    """SELECT id, score, tier for the deployments in `where`: the score from the policy's
    weights (the system and model joined for the sensitivity), the tier from its cut-offs,
    or the override in force (`overrides`, a short IN list per tier)."""
    score, sensitivity = _score_expression(policy)
    by_tier: dict[int, list[int]] = {}
    for deployment_id, tier in overrides.items():
        by_tier.setdefault(tier, []).append(deployment_id)
    tier = _tier_expression(policy)
    if by_tier:
        tier = Case(
            *(
                When(Q(pk__in=sorted(ids)), then=Value(t))
                for t, ids in sorted(by_tier.items())
            ),
            default=tier,
            output_field=IntegerField(),
        )
    rows = (
        m.Deployment.objects.filter(where)
        .order_by()
        .annotate(_tier_sensitivity=sensitivity)
        .annotate(_tier_score=score)
        .annotate(_tier_tier=tier, _tier_id=F("pk"))
        .values("_tier_id", "_tier_score", "_tier_tier")
    )
    return rows.query.sql_with_params()


def _no_jit(cursor: Any, *, hash_joins: bool = False) -> None:
    # PostgreSQL's JIT compiles a 50,000-row UPDATE for ~2 s and saves nothing here. A
    # whole id range joins to every model and system: hash joins read each row once,
    # where a nested loop driven by a table it believes tiny (no statistics yet) read
    # each model's deployments again for every chunk (0.5 s a chunk, bench size).
    if connection.vendor == "postgresql":
        cursor.execute("SET LOCAL jit = off")
        if hash_joins:
            cursor.execute("SET LOCAL enable_nestloop = off")


def _where_sql(model: type[Any], where: Q) -> tuple[str, Sequence[Any]]:
    """`where` as SQL on the model's own table (the UPDATE's target), so the planner
    reads only the chunk's rows of it (an index range), not the whole table."""
    query = model.objects.filter(where).query
    sql, params = query.get_compiler(connection=connection).compile(query.where)
    return sql, params


def _update_deployments(
    policy: TierPolicy, overrides: dict[int, int], where: Q, *, whole_range: bool
) -> int:
    select, params = _computed_rows(policy, overrides, where)
    target, target_params = _where_sql(m.Deployment, where)
    table = connection.ops.quote_name(m.Deployment._meta.db_table)
    sql = (
        f"UPDATE {table} SET risk_score = c._tier_score, risk_tier = c._tier_tier "  # noqa: S608 - names from the models, values as parameters
        f"FROM ({select}) AS c "
        f"WHERE {table}.id = c._tier_id AND {target} "
        f"AND ({table}.risk_score <> c._tier_score OR {table}.risk_tier <> c._tier_tier)"
    )
    with connection.cursor() as cursor:
        _no_jit(cursor, hash_joins=whole_range)
        cursor.execute(sql, [*params, *target_params])
        return max(cursor.rowcount, 0)


def _riskiest(deployments: QuerySet[m.Deployment]) -> dict[int, int]:
    """{model id: the lowest tier of these deployments}: one grouped read."""
    return dict(
        deployments.order_by()
        .values("model_id")
        .annotate(t=Min("risk_tier"))
        .values_list("model_id", "t")
    )


def _update_models(where: Q, riskiest: dict[int, int] | None = None) -> int:
    """AIModel.risk_tier = the lowest (riskiest) tier of its deployments, NULL with none,
    for the models in `where`; only the rows it changes are written.

    One grouped read of their deployments (a hash aggregate), one read of the models'
    stored tiers, then one UPDATE per new tier value for the rows that differ: its cost
    is the rows read, whatever the planner believes of the tables (a join to the grouped
    rows was rescanned per model on a table without statistics).
    """
    models = m.AIModel.objects.filter(where).order_by()
    if riskiest is None:
        riskiest = _riskiest(m.Deployment.objects.filter(model__in=models.values("pk")))
    moves: dict[int | None, list[int]] = {}
    for pk, stored in models.values_list("pk", "risk_tier"):
        new = riskiest.get(pk)
        if new != stored:
            moves.setdefault(new, []).append(pk)
    tier_of = {pk: tier for tier, pks in moves.items() for pk in pks}
    field = m.AIModel._meta.get_field("risk_tier")
    # One UPDATE per chunk of moving rows, whatever their new tiers: two recomputes at
    # once (change consumers) updating them one tier after another, in other orders,
    # deadlocked; one statement each locks its rows in the same (index) order.
    for chunk in _chunks(sorted(tier_of)):
        by_tier: dict[int | None, list[int]] = {}
        for pk in chunk:
            by_tier.setdefault(tier_of[pk], []).append(pk)
        m.AIModel.objects.filter(pk__in=chunk).update(
            # Cast: a CASE whose every branch is NULL (no deployment left) is text.
            risk_tier=Cast(
                Case(
                    *(
                        When(pk__in=pks, then=Value(tier, output_field=field))
                        for tier, pks in by_tier.items()
                    ),
                    output_field=field,
                ),
                output_field=field,
            )
        )
    return sum(len(pks) for pks in moves.values())


def _id_ranges(model: type[Any]) -> Iterable[Q]:
    bounds = model.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    if bounds["lo"] is None:
        return
    lo = bounds["lo"]
    while lo <= bounds["hi"]:
        yield Q(pk__gte=lo, pk__lt=lo + CHUNK)
        lo += CHUNK


def _chunks(ids: Sequence[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def recompute(
    *,
    deployment_ids: Iterable[int] | None = None,
    policy: TierPolicy | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Store the tier and score of these deployments (None: all), overrides in force
    included, then the tier of the models they belong to; return how many deployments
    changed. Rows that would not change are not written. Idempotent.

    A few ids cost a few indexed lookups (the change consumer calls it per batch); all of
    them one UPDATE per CHUNK ids.
    """
    policy = policy or policy_current()
    now = now or timezone.now()
    changed = 0
    if deployment_ids is None:
        overrides = overrides_in_force(now)
        for where in _id_ranges(m.Deployment):
            with transaction.atomic():
                changed += _update_deployments(
                    policy, overrides, where, whole_range=True
                )
        # Every model's riskiest tier in one pass (a few bytes a model), then per range.
        riskiest = _riskiest(m.Deployment.objects.all())
        for where in _id_ranges(m.AIModel):
            with transaction.atomic():
                _update_models(where, riskiest)
        return changed
    ids = sorted({int(pk) for pk in deployment_ids})
    for chunk in _chunks(ids):
        where = Q(pk__in=chunk)
        with transaction.atomic():
            changed += _update_deployments(
                policy, overrides_in_force(now, where), where, whole_range=False
            )
            # Their models by id, then those models' deployments through the model_id
            # index (a semi-join here was planned as a scan of every deployment).
            model_ids = sorted(
                set(
                    m.Deployment.objects.filter(where).values_list(
                        "model_id", flat=True
                    )
                )
            )
            _update_models(
                Q(pk__in=model_ids),
                _riskiest(m.Deployment.objects.filter(model_id__in=model_ids)),
            )
    return changed


def recompute_for(
    *,
    deployment_ids: Iterable[int] = (),
    system_ids: Iterable[int] = (),
    model_ids: Iterable[int] = (),
) -> int:
    """Recompute what a change touched: these deployments, and every deployment of these
    systems and models (a system's or model's sensitivity is a fact of each of its
    deployments). For the change consumer: it hands over the ids a batch changed."""
    ids = set(deployment_ids)
    systems, models = list(system_ids), list(model_ids)
    if systems or models:
        ids.update(
            m.Deployment.objects.filter(
                Q(system_id__in=systems) | Q(model_id__in=models)
            ).values_list("pk", flat=True)
        )
    return recompute(deployment_ids=ids) if ids else 0


def recompute_everything() -> int:
    """The nightly run: every deployment and model (expired overrides stop applying)."""
    return recompute()


# ---------------------------------------------------------------------------
# Writes by people (audited)
# ---------------------------------------------------------------------------
def _policy_values(policy: TierPolicy) -> dict[str, int]:
    return {name: getattr(policy, name) for name in POLICY_FIELDS}


def tier_policy_update(*, actor: Any, **values: int) -> tuple[TierPolicy, int | None]:
    """An administrator changes the weights or cut-offs; audited with before and after.
    Returns the policy and how many deployments changed tier (None: a task recomputes,
    there are too many to do it in the request)."""
    permissions.require_admin(actor)
    unknown = set(values) - set(POLICY_FIELDS)
    if unknown:
        raise ValidationError(
            POLICY_UNKNOWN_FIELD.format(names=", ".join(sorted(unknown)))
        )
    with transaction.atomic():
        policy, _ = TierPolicy.objects.select_for_update().get_or_create(
            pk=TierPolicy.SINGLETON_ID
        )
        before = snapshot(policy)
        old = _policy_values(policy)
        for name, value in values.items():
            setattr(policy, name, value)
        if not (
            policy.tier1_min_score > policy.tier2_min_score > policy.tier3_min_score
        ):
            raise ValidationError(CUTOFFS_MUST_DESCEND)
        policy.full_clean()
        if _policy_values(policy) == old:
            return policy, 0
        policy.updated_by = actor
        policy.save()
        change_record(
            actor=actor,
            action="tier_policy.update",
            target=policy,
            before=before,
            after=snapshot(policy),
        )
        if m.Deployment.objects.count() <= INLINE_MAX:
            return policy, recompute(policy=policy)
    from governance.tasks_tiers import recompute_tiers

    transaction.on_commit(recompute_tiers.delay)
    return policy, None


def _override_state(override: TierOverride | None) -> dict[str, Any] | None:
    if override is None:
        return None
    return {
        "override_id": override.pk,
        "tier": override.tier,
        "reason": override.reason,
        "expires_at": override.expires_at.isoformat(),
        "created_by_id": override.created_by_id,
        "ended_at": override.ended_at.isoformat() if override.ended_at else None,
    }


def _require_override_role(actor: Any) -> None:
    if not can_override(actor):
        raise PermissionDenied(OVERRIDE_ROLE_ONLY)


def tier_override_set(
    *,
    actor: Any,
    deployment: m.Deployment,
    tier: int,
    reason: str,
    expires_at: dt.datetime,
) -> TierOverride:
    """The committee sets the deployment's tier until `expires_at`, with a reason; an
    override already in force is ended by it. Audited on the deployment; its tier (and
    its model's) is recomputed in the same transaction."""
    _require_override_role(actor)
    now = timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(OVERRIDE_REASON_REQUIRED)
    if len(reason) > OVERRIDE_REASON_MAX:
        raise ValidationError(OVERRIDE_REASON_TOO_LONG.format(max=OVERRIDE_REASON_MAX))
    if isinstance(tier, bool) or tier not in TIERS:
        raise ValidationError(OVERRIDE_TIER_INVALID)
    if expires_at <= now:
        raise ValidationError(OVERRIDE_EXPIRY_PAST)
    days = override_max_days()
    if expires_at > now + dt.timedelta(days=days):
        raise ValidationError(OVERRIDE_EXPIRY_TOO_FAR.format(days=days))
    with transaction.atomic():
        # Writers on one deployment queue here, so two overrides cannot both be in force.
        locked = m.Deployment.objects.select_for_update().get(pk=deployment.pk)
        previous = override_in_force(locked.pk, now)
        if previous is not None:
            previous.ended_at = now
            previous.save(update_fields=["ended_at"])
        override = TierOverride(
            deployment=locked,
            tier=tier,
            reason=reason,
            expires_at=expires_at,
            created_by=actor,
            created_at=now,
        )
        override.full_clean()
        override.save()
        recompute(deployment_ids=[locked.pk], now=now)
        locked.refresh_from_db(fields=["risk_tier", "risk_score"])
        change_record(
            actor=actor,
            action="tier.override",
            target=locked,
            before={
                "risk_tier": deployment.risk_tier,
                "override": _override_state(previous),
            },
            after={
                "risk_tier": locked.risk_tier,
                "override": _override_state(override),
            },
        )
    deployment.risk_tier, deployment.risk_score = locked.risk_tier, locked.risk_score
    return override


def tier_override_end(*, actor: Any, deployment: m.Deployment) -> TierOverride:
    """The committee ends the override in force before its expiry; audited; the computed
    tier applies again at once."""
    _require_override_role(actor)
    now = timezone.now()
    with transaction.atomic():
        locked = m.Deployment.objects.select_for_update().get(pk=deployment.pk)
        override = override_in_force(locked.pk, now)
        if override is None:
            raise ValidationError(OVERRIDE_NONE_IN_FORCE)
        before = _override_state(override)
        override.ended_at = now
        override.save(update_fields=["ended_at"])
        recompute(deployment_ids=[locked.pk], now=now)
        locked.refresh_from_db(fields=["risk_tier", "risk_score"])
        change_record(
            actor=actor,
            action="tier.override_end",
            target=locked,
            before={"risk_tier": deployment.risk_tier, "override": before},
            after={
                "risk_tier": locked.risk_tier,
                "override": _override_state(override),
            },
        )
    deployment.risk_tier, deployment.risk_score = locked.risk_tier, locked.risk_score
    return override
