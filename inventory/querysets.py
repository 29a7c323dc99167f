"""The inventory's rules, written once: what counts as drift, unregistered, ownerless,
silent, unrotated, unused (alias stale), expired, bound to a retired model and orphaned;
and the free-text search every list's `q` runs (`search_q`).

Every list filter, dashboard count, API filter and CSV uses these, so a headline always
equals the list it links to. Each rule is a `Q` (for conditional counts, as the dashboard
aggregates) and a queryset method of the same name (for lists). Rules that depend on a
policy number take the `Policy` row (`selectors.policy_current()`), never a constant.

This module imports no models (models.py imports it for the managers): related models are
reached through lookups.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db.models import F, Model, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.db.models.lookups import IContains, IsNull, Lookup
from django.utils import timezone

if TYPE_CHECKING:
    from inventory.models import Policy

ACTIVE = "active"
RETIRED = "retired"
MANUAL = "manual"  # models.MANUAL_SOURCE (models.py imports this module)
# Policy.silent_after_hours' default, for a database with no policy row yet.
DEFAULT_SILENT_AFTER_HOURS = 72


def _silent_cutoff(hours: int, now: Any = None) -> Any:
    return (now or timezone.now()) - timedelta(hours=hours)


def silent_hours_annotation() -> Coalesce:
    """The policy's silent hours as a column of every row: a scalar subquery the database
    evaluates once per query, so a page learns who is silent without a query of its own."""
    from inventory.models import Policy  # models.py imports this module

    return Coalesce(
        Subquery(
            Policy.objects.filter(pk=Policy.SINGLETON_ID).values("silent_after_hours")[
                :1
            ]
        ),
        DEFAULT_SILENT_AFTER_HOURS,
    )


def _row_hours(obj: Any, policy: Policy | None) -> int:
    if policy is not None:
        return policy.silent_after_hours
    hours = getattr(obj, "policy_silent_hours", None)
    if hours is None:
        from inventory.selectors import policy_current  # one query: rows not annotated

        hours = policy_current().silent_after_hours
    return hours


# ---------------------------------------------------------------------------
# Deployments
# ---------------------------------------------------------------------------
# A deployment's baseline: the committee's pin on it if there is one, else its model's
# baseline version (the registry's approved alias, or the approved version the committee
# marked). One expression, so a list filters drift in the same query.
BASELINE = Coalesce(F("approved_version"), F("model__baseline_version"))
HAS_BASELINE = Q(approved_version__isnull=False) | Q(
    model__baseline_version__isnull=False
)


def deployment_drift_q() -> Q:
    """Observed ≠ baseline (running nothing the registry knows counts as drift)."""
    return HAS_BASELINE & (
        Q(observed_version__isnull=True) | ~Q(observed_version=BASELINE)
    )


def deployment_unregistered_q() -> Q:
    """The runtime names a version the registry does not have."""
    return Q(observed_version__isnull=True) & ~Q(observed_version_label="")


def ownerless_q() -> Q:
    """No accountable person: the same meaning for models, deployments and identities.
    A team without a named owner is nobody's to answer for."""
    return Q(owner__isnull=True)


def deployment_silent_q(policy: Policy, now: Any = None) -> Q:
    """Active, and no source has seen it for the policy's hours: neither a runtime or
    trace (`last_seen_at`) nor a sync that reported it unchanged (`seen_at`)."""
    cutoff = _silent_cutoff(policy.silent_after_hours, now)
    return Q(status=ACTIVE, last_seen_at__lt=cutoff) & (
        Q(seen_at__isnull=True) | Q(seen_at__lt=cutoff)
    )


def deployment_is_silent(
    deployment: Any, policy: Policy | None = None, now: Any = None
) -> bool:
    """The row form of `deployment_silent_q`. Reads the policy's hours from the row's
    `policy_silent_hours` annotation (`with_silent_hours()`) unless given the policy."""
    if deployment.status != ACTIVE:
        return False
    cutoff = _silent_cutoff(_row_hours(deployment, policy), now)
    seen = deployment.last_seen_at
    if deployment.seen_at is not None and deployment.seen_at > seen:
        seen = deployment.seen_at
    return seen < cutoff


class DeploymentQuerySet(QuerySet):
    def with_baseline(self) -> DeploymentQuerySet:
        """Annotate `baseline_id`, the effective baseline version's id."""
        return self.annotate(baseline_id=BASELINE)

    def held_to(self, version: Any) -> DeploymentQuerySet:
        """Deployments whose baseline is `version` (a ModelVersion; the BASELINE rule):
        pinned to it, or not pinned and of its model when it is its model's baseline.

        The model's baseline is read from the version's model (loaded with it by the
        detail page), so each branch is answered by its own index: comparing it in SQL
        joined every unpinned deployment to its model (17,000 rows, 40 ms, for 13)."""
        held = Q(approved_version=version)
        if version.model.baseline_version_id == version.pk:
            held |= Q(approved_version__isnull=True, model_id=version.model_id)
        return self.filter(held)

    def drifting(self) -> DeploymentQuerySet:
        return self.filter(deployment_drift_q())

    def unregistered(self) -> DeploymentQuerySet:
        return self.filter(deployment_unregistered_q())

    def ownerless(self) -> DeploymentQuerySet:
        return self.filter(ownerless_q())

    def silent(self, policy: Policy) -> DeploymentQuerySet:
        return self.filter(deployment_silent_q(policy))

    def with_silent_hours(self) -> DeploymentQuerySet:
        """Annotate `policy_silent_hours` for `deployment_is_silent` (no extra query)."""
        return self.annotate(policy_silent_hours=silent_hours_annotation())


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------
class AIModelQuerySet(QuerySet):
    def ownerless(self) -> AIModelQuerySet:
        return self.filter(ownerless_q())


# ---------------------------------------------------------------------------
# Non-human identities
# ---------------------------------------------------------------------------
ACTIVE_IDENTITY = Q(status=ACTIVE)


def identity_silent_q(policy: Policy, now: Any = None) -> Q:
    """Active, brought in by a source, and not reported by it for the policy's hours
    (the same number as deployments'). One typed in by hand has no source to fall silent."""
    cutoff = _silent_cutoff(policy.silent_after_hours, now)
    return ACTIVE_IDENTITY & ~Q(source=MANUAL) & Q(seen_at__lt=cutoff)


def identity_is_silent(
    identity: Any, policy: Policy | None = None, now: Any = None
) -> bool:
    """The row form of `identity_silent_q` (see `deployment_is_silent`)."""
    if (
        identity.status != ACTIVE
        or identity.source == MANUAL
        or identity.seen_at is None
    ):
        return False
    return identity.seen_at < _silent_cutoff(_row_hours(identity, policy), now)


def identity_unused_q(policy: Policy, now: Any = None) -> Q:
    """Active, and not used for the policy's days (never used: issued that long ago)."""
    cutoff = (now or timezone.now()) - timedelta(days=policy.unused_after_days)
    return ACTIVE_IDENTITY & (
        Q(last_used_at__lt=cutoff) | Q(last_used_at__isnull=True, issued_at__lt=cutoff)
    )


# "Stale" is the older name of the same rule.
identity_stale_q = identity_unused_q


def identity_unrotated_q(policy: Policy, now: Any = None) -> Q:
    """Active, issued before the policy's days and not rotated since."""
    cutoff = (now or timezone.now()) - timedelta(days=policy.unrotated_after_days)
    return (
        ACTIVE_IDENTITY
        & Q(issued_at__lt=cutoff)
        & (Q(rotated_at__isnull=True) | Q(rotated_at__lt=cutoff))
    )


def identity_expired_q(now: Any = None) -> Q:
    """Past its expiry and still active."""
    return ACTIVE_IDENTITY & Q(expires_at__lt=now or timezone.now())


def identity_bound_to_retired_model_q() -> Q:
    """Active, and belonging to a retired model or bound to a deployment of one.

    The binding is probed per row by a scalar subquery (its first binding to a retired
    model's deployment, or NULL), not by EXISTS: inside an OR, PostgreSQL turns an EXISTS
    into a hashed subplan that first collects every identity bound to a retired model
    (30,000 at the bench's full scale, ~60 ms) before LIMIT applies. Per row, a keyset page
    walks the name index and stops at its last row: two or three index probes a row.
    """
    from inventory.models import NonHumanIdentity  # models.py imports this module

    first_binding = NonHumanIdentity.deployments.through.objects.filter(
        nonhumanidentity_id=OuterRef("pk"), deployment__model__lifecycle=RETIRED
    ).values("pk")[:1]
    # Its own model first: a row that belongs to a retired model needs no probe.
    return ACTIVE_IDENTITY & (
        Q(model__lifecycle=RETIRED) | IsNull(Subquery(first_binding), False)
    )


WITHDRAWN = "withdrawn"


def identity_orphaned_q() -> Q:
    """Active, and nothing left to serve: it belongs to a retired model, or every
    deployment it is bound to is withdrawn or of a retired model, or it is bound to
    nothing at all (no deployment and no model). The orphaned-identity finding's rule.

    Bindings are probed per row by scalar subqueries (the first live binding, the first
    binding), not EXISTS, for the reason `identity_bound_to_retired_model_q` gives: inside
    an OR, PostgreSQL hashes the whole binding table first.
    """
    from inventory.models import NonHumanIdentity  # models.py imports this module

    bindings = NonHumanIdentity.deployments.through.objects.filter(
        nonhumanidentity_id=OuterRef("pk")
    )
    live = bindings.exclude(deployment__status=WITHDRAWN).exclude(
        deployment__model__lifecycle=RETIRED
    )
    no_live = IsNull(Subquery(live.values("pk")[:1]), True)
    bound = IsNull(Subquery(bindings.values("pk")[:1]), False)
    # Runproof's own API tokens call Runproof, not a model: bound to nothing is their
    # normal state (their staleness and use are still judged).
    return (
        ACTIVE_IDENTITY
        & ~Q(kind=NonHumanIdentity.Kind.RUNPROOF_TOKEN)
        & (Q(model__lifecycle=RETIRED) | (no_live & (bound | Q(model__isnull=True))))
    )


class IdentityQuerySet(QuerySet):
    def ownerless(self) -> IdentityQuerySet:
        return self.filter(ownerless_q())

    def unused(self, policy: Policy) -> IdentityQuerySet:
        return self.filter(identity_unused_q(policy))

    def stale(self, policy: Policy) -> IdentityQuerySet:
        """Alias of `unused`."""
        return self.unused(policy)

    def unrotated(self, policy: Policy) -> IdentityQuerySet:
        return self.filter(identity_unrotated_q(policy))

    def expired(self) -> IdentityQuerySet:
        return self.filter(identity_expired_q())

    def bound_to_retired_model(self) -> IdentityQuerySet:
        return self.filter(identity_bound_to_retired_model_q())

    def orphaned(self) -> IdentityQuerySet:
        return self.filter(identity_orphaned_q())

    def silent(self, policy: Policy) -> IdentityQuerySet:
        return self.filter(identity_silent_q(policy))

    def with_silent_hours(self) -> IdentityQuerySet:
        """Annotate `policy_silent_hours` for `identity_is_silent` (no extra query)."""
        return self.annotate(policy_silent_hours=silent_hours_annotation())


# ---------------------------------------------------------------------------
# Free-text search (every list's `q`)
# ---------------------------------------------------------------------------
# Longest term searched; the rest of a longer one is dropped.
SEARCH_MAX_LENGTH = 200
# The shortest term a trigram index can look up.
TRIGRAM = 3


# A column across a foreign key is searched in the related table first; up to this many
# matching ids are then compared as a list of constants.
SEARCH_RELATED_IDS = 500

# The case fold the search and its trigram indexes share on PostgreSQL (migration inventory
# 0021): upper(), in a PL/pgSQL function declared COST 100 and PARALLEL RESTRICTED.
SEARCH_FOLD = "runproof_fold"


class SearchContains(IContains):
    """`icontains` (the same rows, `%` and `_` literal), written on PostgreSQL as
    `runproof_fold(column) LIKE runproof_fold('%term%')`.

    Why a function of our own: PostgreSQL prices upper() and LIKE at one operator cost
    each (0.0025), so reading a whole table and testing four columns a row looked cheaper
    than the trigram indexes' bitmap scans whenever ANALYZE's sample put the match count
    high, and a count over 50,000 deployments took 250-330 ms by Seq Scan instead of ~50 ms
    by the indexes. Measured on the bench's database, upper() and LIKE on a column cost
    ~0.75 µs a row where the planner's units are ~3 µs (a plain seq scan): 0.25 units,
    i.e. COST 100. Declared so, the planner prices a scan that folds every row correctly,
    for the count, the page and any other query, with no planner setting changed (it is
    PARALLEL RESTRICTED: so priced, bounded reads like these went to parallel workers and
    ran slower; see the migration).
    It is PL/pgSQL because a LANGUAGE sql function is inlined into upper() and its COST
    dropped; planner settings (`SET LOCAL enable_seqscan`) would bend every table of the
    statement and leak past it in an enclosing transaction; and no query shape forbids a
    seq scan. SQLite (the embedded default) keeps Django's icontains and scans."""

    def as_postgresql(self, compiler, connection):
        lhs_sql, lhs_params = compiler.compile(self.lhs)
        rhs_sql, rhs_params = self.process_rhs(compiler, connection)
        # The column as text (varchar is binary-coercible): the expression the indexes hold.
        sql = f"{SEARCH_FOLD}({lhs_sql}::text) LIKE {SEARCH_FOLD}({rhs_sql})"
        return sql, (*lhs_params, *rhs_params)


class AnyOf(Lookup):
    """`column IN (ids)` for a list of integer ids, written on PostgreSQL as
    `column = ANY(%s::bigint[])` with the whole list as one parameter: PostgreSQL plans
    both the same (it reads an IN list as `= ANY(ARRAY[…])`), but Django composes an IN
    list a placeholder and a parameter at a time, twice per list page (its count and its
    rows), which cost a search across a foreign key ~2 ms of CPU at 500 ids. SQLite keeps
    the IN list. Used as an expression: `Q(AnyOf(F("model_id"), ids))`."""

    lookup_name = "any_of"
    prepare_rhs = False
    can_use_none_as_rhs = False

    def __init__(self, lhs, rhs):
        super().__init__(lhs, [int(v) for v in rhs])

    def get_db_prep_lookup(self, value, connection):
        return ("%s", [value])

    def as_sql(self, compiler, connection):
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        if not self.rhs:
            return "1 = 0", ()
        placeholders = ", ".join(["%s"] * len(self.rhs))
        return f"{lhs_sql} IN ({placeholders})", (*lhs_params, *self.rhs)

    def as_postgresql(self, compiler, connection):
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs_sql} = ANY(%s::bigint[])", (*lhs_params, self.rhs)


def search_q(model: type[Model], fields: Iterable[str], text: str) -> Q:
    """Rows of `model` where any of `fields` contains `text`, ignoring case; `%` and `_`
    are literal. An empty term matches everything.

    For a term of 3 characters or more, each field is `SearchContains` (PostgreSQL:
    `runproof_fold(column) LIKE runproof_fold('%text%')`), which the trigram GIN indexes of
    migrations inventory 0021, sources 0004 and audit 0004 answer; SQLite scans. Shorter
    terms are `column__icontains` (PostgreSQL: `UPPER(column) LIKE …`), which no index
    answers: they walk the list's order, stopping when the page is full (a related column
    through the join: each walked row checks its own model's name).

    For a term of 3 characters or more, a field across a foreign key (`model__name`) is
    searched in the related table, by its own index, in a query of its own: never as an
    OR across a join, which no index answers. Up to SEARCH_RELATED_IDS matching ids become `model_id = ANY(array)` (`AnyOf`; SQLite: an IN
    list), which the
    column's b-tree index answers beside the other branches of the OR (a bitmap index scan
    each) and which PostgreSQL checks by hash when it walks the list's order instead; its
    planner also knows how many ids there are. More ids than that (a term most models
    match) stay a subquery, `model_id IN (SELECT …)`, checked by hash row by row.
    """
    text = text.strip()[:SEARCH_MAX_LENGTH]
    if not text:
        return Q()
    condition = Q()
    for path in fields:
        relation, _, rest = path.partition("__")
        if rest:
            field = model._meta.get_field(relation)
            if not (field.many_to_one or field.one_to_one) or not field.concrete:
                raise ValueError(f"search across {path!r}: only a forward foreign key")
        if len(text) < TRIGRAM:
            # A term shorter than a trigram has no index to use: the list walks its order
            # and checks each row, a related one through the join, until the page is full.
            condition |= Q(**{f"{path}__icontains": text})
            continue
        if not rest:
            # The trigram indexes' own expression (SearchContains): priced as what it costs.
            condition |= Q(SearchContains(F(path), text))
            continue
        related = field.related_model
        # The base manager: the rows a join would reach, whatever a default manager hides.
        matching = (
            related._base_manager.filter(search_q(related, [rest], text))
            .order_by()
            .values_list("pk", flat=True)
        )
        ids = list(matching[: SEARCH_RELATED_IDS + 1])
        if len(ids) > SEARCH_RELATED_IDS:
            condition |= Q(**{f"{field.attname}__in": matching})
        elif ids:
            condition |= Q(AnyOf(F(field.attname), ids))
    return condition
