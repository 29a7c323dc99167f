"""The dashboard's counts, kept by the writers instead of counted on every page.

Shape. `SummaryCount` holds, for every (team, accountable person) pair that owns something,
each headline count the dashboard shows (models by lifecycle; active deployments by
environment and exposure, drifting, unregistered, without owner; identities by status,
without owner, bound to a retired model, of unknown age), and one row with team and person
-1 holding the sum over every pair (what a reader of everything sees: a few thousand rows
instead of 300,000). A model owner's dashboard sums the pairs of their teams plus the pairs
they are the person of: exactly `permissions.scope` (team in theirs, or owner = them), and
each object belongs to one pair, so nothing is counted twice.

Rules stay in `querysets`. A team's rows are recomputed from the base tables with one
grouped conditional count per table, the filters being the rule `Q`s themselves
(`_compute`); nothing here re-states a rule.

Time rules (unused, unrotated, expired, silent, and the identity-age histogram) move with
the clock, not with writes, so they are kept as day buckets: the number of objects the
rule could ever catch (the rule evaluated at a cutoff in the far future), per UTC day of
the rule's timestamp (last use else issue; the later of issue and rotation; expiry; last
seen; issue). For a cutoff `c` taken from the `Policy` row now, the count is exact:
every bucket of a day before `c`'s day, plus the objects of `c`'s own day that the rule
catches, counted by one small query on indexed timestamps (`figures`, `_boundary`).

Freshness. Every writer marks the teams it touched dirty (`mark_dirty`), in its own
transaction: ORM saves and deletes through the signal receivers below, bulk paths (the
sync engine, OTLP, cascades, token use) through one `mark_*` call each. Changing a model's
lifecycle or baseline also marks the teams of its deployments and bound identities. The
marks commit or roll back with the change. `refresh_dirty` recounts the marked teams and
removes the marks it read (a mark written meanwhile stays for the next refresh); it runs
after the writer commits when it marked few teams, every 30 s from beat, and first of
all on every dashboard read, so what the page shows includes every committed write. A
team's recount reads only that team's rows; the all-teams row is moved by the difference
(`n = n + delta`, row-locked), so concurrent recounts of different teams add up; recounts
of one team are serialised by an advisory lock on PostgreSQL (SQLite has one writer).
`rebuild` (nightly, `manage.py rebuild_summary`) recounts everything and reports any row
that differed.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    F,
    Model,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, TruncDate
from django.db.models.signals import m2m_changed, post_save, pre_delete, pre_save

from inventory import models as m
from inventory import permissions, querysets
from inventory.roles import Role

log = logging.getLogger(__name__)


NO_DAY = date(1, 1, 1)  # the day of counts that do not move with time
ALL = -1  # team_key and owner_key of the sum over every pair
NONE = 0  # no team, no person
FAR = datetime(9000, 1, 1, tzinfo=UTC)  # a cutoff later than any timestamp
CHUNK = 100  # teams recounted per set of queries
# A writer that marked at most this many teams recounts them right after its commit;
# more (a large sync) is left to the beat task and the next dashboard read.
INLINE_TEAMS = getattr(settings, "RUNPROOF_SUMMARY_INLINE_TEAMS", 20)
LOCK_CLASS = 72_011  # pg_advisory_xact_lock(LOCK_CLASS, team) per team being recounted
LOCK_ALL = 72_010  # shared by recounts, exclusive for `rebuild`

D, NHI = m.Deployment, m.NonHumanIdentity
ACTIVE_DEPLOYMENT = Q(status=D.Status.ACTIVE)
AGE_DAYS = (
    30,
    90,
    180,
    365,
)  # the identity-age histogram's cutoffs (governance.selectors)

# Day-bucket metrics: name -> the rule's timestamp.
UNUSED_AT = Coalesce(F("last_used_at"), F("issued_at"))
UNROTATED_AT = Case(
    When(
        Q(rotated_at__isnull=True) | Q(rotated_at__lt=F("issued_at")),
        then=F("issued_at"),
    ),
    default=F("rotated_at"),
)


def _ever() -> m.Policy:
    """A policy whose cutoffs, at FAR, catch every object a rule could ever catch."""
    return m.Policy(unused_after_days=0, unrotated_after_days=0, silent_after_hours=0)


def _day(expression: Any) -> TruncDate:
    return TruncDate(expression, tzinfo=UTC)


def _key(field: str) -> Coalesce:
    return Coalesce(F(field), Value(NONE), output_field=BigIntegerField())


# ---------------------------------------------------------------------------
# Marking
# ---------------------------------------------------------------------------
def _keys(team_ids: Iterable[int | None]) -> set[int]:
    return {NONE if t is None else int(t) for t in team_ids}


def mark_dirty(team_ids: Iterable[int | None], *, inline: bool = True) -> None:
    """Mark these teams' counts out of date, in the caller's transaction (None: no team).

    With `inline`, a few teams are recounted right after the commit; frequent small
    writers (telemetry pushes, token use) pass False and leave it to beat and the reader.
    """
    keys = _keys(team_ids)
    if not keys:
        return
    m.SummaryDirty.objects.bulk_create([m.SummaryDirty(team_key=k) for k in keys])
    if inline and len(keys) <= INLINE_TEAMS:
        transaction.on_commit(lambda: _refresh_after_commit(keys))


def _refresh_after_commit(keys: set[int]) -> None:
    try:
        # A transaction that saved several rows of one team queued one callback per save:
        # the first recounts, the others find no mark left.
        still = set(
            m.SummaryDirty.objects.filter(team_key__in=keys).values_list(
                "team_key", flat=True
            )
        )
        if still:
            refresh(still)
    except Exception:  # the marks stay; the beat task and the next read recount
        log.exception("summary: recount after commit failed; left for the next refresh")


def teams_of(model: type[Model], pks: Iterable[int]) -> set[int]:
    """The teams whose counts change when these rows change: their own, and for a model
    (lifecycle, baseline) or a deployment (its model) those of what depends on them."""
    pks = [pk for pk in pks if pk is not None]
    if not pks:
        return set()
    teams: set[int | None] = set()
    for start in range(0, len(pks), 5000):
        chunk = pks[start : start + 5000]
        if model is m.AIModel:
            teams |= _teams(m.AIModel.objects.filter(pk__in=chunk))
            teams |= _teams(D.objects.filter(model_id__in=chunk))
            teams |= _teams(
                NHI.objects.filter(
                    Q(model_id__in=chunk)
                    | Q(pk__in=_bound(deployment__model_id__in=chunk))
                )
            )
        elif model is D:
            teams |= _teams(D.objects.filter(pk__in=chunk))
            # A deployment created with a new model (OTLP) counts in that model's team.
            teams |= _teams(m.AIModel.objects.filter(deployments__pk__in=chunk))
            teams |= _teams(NHI.objects.filter(pk__in=_bound(deployment_id__in=chunk)))
        elif model is NHI:
            teams |= _teams(NHI.objects.filter(pk__in=chunk))
        elif model is m.ModelVersion:
            # Deleting a version empties the deployments' observed or pinned version.
            teams |= _teams(
                D.objects.filter(
                    Q(observed_version_id__in=chunk)
                    | Q(approved_version_id__in=chunk)
                    | Q(model__baseline_version_id__in=chunk)
                )
            )
    return _keys(teams)


def _bound(**lookup: Any) -> QuerySet:
    return NHI.deployments.through.objects.filter(**lookup).values(
        "nonhumanidentity_id"
    )


def _teams(queryset: QuerySet) -> set[int | None]:
    return set(queryset.order_by().values_list("team_id", flat=True).distinct())


def mark_objects(
    model: type[Model], pks: Iterable[int], *, inline: bool = True
) -> None:
    """Mark the teams of rows written in bulk (call after the write, in its transaction).
    A sync passes inline=False: its batches commit one after another, and recounting
    their teams after each would cost more than the batch; beat or the dashboard does."""
    mark_dirty(teams_of(model, list(pks)), inline=inline)


def mark_later(model: type[Model], pks: Iterable[int]) -> None:
    """Mark rows whose team the write did not change, with no lookup now: one INSERT; the
    refresh finds their teams (`teams_of`). For hot paths: telemetry, token use."""
    kind = model._meta.label_lower
    m.SummaryDirty.objects.bulk_create(
        [m.SummaryDirty(object_kind=kind, object_id=pk) for pk in pks], batch_size=2000
    )


KINDS = {model._meta.label_lower: model for model in (m.AIModel, D, NHI)}


def mark_rows(
    model: type[Model], objs: Iterable[Model], *, inline: bool = True
) -> None:
    """Mark the teams of rows about to be written in bulk: the team each will have (from
    the object) and the one it has now (from the database; call before the write)."""
    objs = list(objs)
    if model not in (m.AIModel, D, NHI) or not objs:
        return
    teams = _keys(getattr(o, "team_id", None) for o in objs)
    mark_dirty(teams | teams_of(model, [o.pk for o in objs]), inline=inline)


# ---------------------------------------------------------------------------
# Counting one set of teams from the base tables, with the rules
# ---------------------------------------------------------------------------
Key = tuple[int, int, str, date]


def _in_teams(teams: list[int] | None) -> Q:
    if teams is None:
        return Q()
    condition = Q(team_id__in=[t for t in teams if t > 0])
    if NONE in teams:
        condition |= Q(team_id__isnull=True)
    return condition


def _person(queryset: QuerySet) -> Coalesce:
    """The person of a row's pair: its accountable owner; for a row of a kind that
    `permissions.INHERITED_READER` lets another person read when it has no owner (a
    deployment nobody owns: its model's owner), that person. So a reader's pairs are
    exactly `permissions.scope`; the row still counts as without owner by its rule."""
    inherited = permissions.INHERITED_READER.get(queryset.model)
    if inherited is None:
        return _key("owner_id")
    return Coalesce(
        F("owner_id"), F(inherited[1]), Value(NONE), output_field=BigIntegerField()
    )


def _grouped(queryset: QuerySet, **fields: Any) -> QuerySet:
    return (
        queryset.order_by()
        .values(tk=_key("team_id"), ok=_person(queryset), **fields)
        .annotate(n=Count("pk"))
    )


def _compute(teams: list[int] | None) -> dict[Key, int]:
    """Every summary row of these teams (all teams for None), counted with the rules."""
    where = _in_teams(teams)
    ever = _ever()
    out: Counter[Key] = Counter()

    def add(row: dict[str, Any], metric: str, n: int, day: date = NO_DAY) -> None:
        if n:
            out[(row["tk"], row["ok"], metric, day)] += n

    for row in _grouped(m.AIModel.objects.filter(where), v=F("lifecycle")):
        add(row, f"m.lifecycle.{row['v']}", row["n"])

    deployments = D.objects.filter(where, ACTIVE_DEPLOYMENT)
    for row in _grouped(deployments, env=F("environment"), exp=F("exposure")).annotate(
        drift=Count("pk", filter=querysets.deployment_drift_q()),
        unregistered=Count("pk", filter=querysets.deployment_unregistered_q()),
        ownerless=Count("pk", filter=querysets.ownerless_q()),
    ):
        add(row, "d.active", row["n"])
        add(row, f"d.active.{row['env']}.{row['exp']}", row["n"])
        for name in ("drift", "unregistered", "ownerless"):
            add(row, f"d.{name}", row[name])
    silent = D.objects.filter(where, querysets.deployment_silent_q(ever, FAR))
    # Silent counts the later of the two times a source saw it (querysets' rule).
    seen = Greatest(F("last_seen_at"), Coalesce(F("seen_at"), F("last_seen_at")))
    for row in _grouped(silent, day=_day(seen)):
        add(row, "d.silent@", row["n"], row["day"])

    identities = NHI.objects.filter(where)
    for row in _grouped(identities, s=F("status")).annotate(
        issued_null=Count("pk", filter=Q(issued_at__isnull=True)),
        ownerless=Count(
            "pk", filter=querysets.ACTIVE_IDENTITY & querysets.ownerless_q()
        ),
        retired=Count("pk", filter=querysets.identity_bound_to_retired_model_q()),
    ):
        add(row, f"i.status.{row['s']}", row["n"])
        add(row, f"i.issued_null.{row['s']}", row["issued_null"])
        add(row, "i.ownerless", row["ownerless"])
        add(row, "i.retired", row["retired"])
    for row in _grouped(
        identities.filter(issued_at__isnull=False), s=F("status"), day=_day("issued_at")
    ):
        add(row, f"i.issued.{row['s']}@", row["n"], row["day"])
    timed = (
        ("i.unused@", querysets.identity_unused_q(ever, FAR), UNUSED_AT),
        ("i.unrotated@", querysets.identity_unrotated_q(ever, FAR), UNROTATED_AT),
        ("i.expired@", querysets.identity_expired_q(FAR), F("expires_at")),
    )
    for metric, rule, at in timed:
        for row in _grouped(identities.filter(rule), day=_day(at)):
            add(row, metric, row["n"], row["day"])
    return dict(out)


def _stored(teams: list[int]) -> dict[Key, tuple[int, int]]:
    return {
        (tk, ok, metric, day): (pk, n)
        for pk, tk, ok, metric, day, n in m.SummaryCount.objects.filter(
            team_key__in=teams
        ).values_list("pk", "team_key", "owner_key", "metric", "day", "n")
    }


def _write(new: dict[Key, int], old: dict[Key, tuple[int, int]]) -> Counter:
    """Make the stored pair rows `new`; return the change per (metric, day)."""
    delta: Counter[tuple[str, date]] = Counter()
    stale = []
    for key, (pk, n) in old.items():
        if new.get(key) != n:
            stale.append(pk)
            delta[(key[2], key[3])] -= n
    fresh = []
    for key, n in new.items():
        stored = old.get(key)
        if stored is None or stored[1] != n:
            fresh.append(
                m.SummaryCount(
                    team_key=key[0], owner_key=key[1], metric=key[2], day=key[3], n=n
                )
            )
            delta[(key[2], key[3])] += n
    for start in range(0, len(stale), 5000):
        m.SummaryCount.objects.filter(pk__in=stale[start : start + 5000]).delete()
    m.SummaryCount.objects.bulk_create(fresh, batch_size=2000)
    return Counter({k: v for k, v in delta.items() if v})


def _bump_all(delta: Counter) -> None:
    """Add the changes to the all-teams rows: `n = n + delta`, in key order (so two
    recounts lock rows in the same order), then drop the rows that fell to zero."""
    if not delta:
        return
    opts = m.SummaryCount._meta
    qn = connection.ops.quote_name
    table = qn(opts.db_table)
    cols = [
        qn(opts.get_field(f).column)
        for f in ("team_key", "owner_key", "metric", "day", "n")
    ]
    n_col = cols[-1]
    adapt = connection.ops.adapt_datefield_value
    rows = [
        (ALL, ALL, metric, adapt(day), d) for (metric, day), d in sorted(delta.items())
    ]
    sql = (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES (%s, %s, %s, %s, %s) "  # noqa: S608 - names from the model's meta
        f"ON CONFLICT ({', '.join(cols[:4])}) DO UPDATE SET {n_col} = {table}.{n_col} + excluded.{n_col}"
    )
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)
    m.SummaryCount.objects.filter(team_key=ALL, n=0).delete()


def _lock(teams: Iterable[int], *, everything: bool = False) -> None:
    if connection.vendor != "postgresql":
        return  # SQLite: one writer at a time already
    with connection.cursor() as cursor:
        if everything:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [LOCK_ALL])
            return
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, 0)", [LOCK_ALL])
        # A team's recount reads a few hundred identities; with the default work_mem the
        # planner evaluates the retired-model rule's EXISTS as a hash of all 30,000
        # bindings to retired models (about 300 ms at full scale, whatever the team's
        # size). Too little memory for that hash makes it probe the bindings' index per
        # identity instead (measured 478 -> 189 ms for the largest team, same rule).
        cursor.execute("SET LOCAL work_mem = '256kB'")
        for team in sorted(teams):
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS, team])


# ---------------------------------------------------------------------------
# Recounting
# ---------------------------------------------------------------------------
def refresh(teams: Iterable[int], *, object_marks: Iterable[int] = ()) -> int:
    """Recount these teams; remove the marks that were there when it began, and then the
    `object_marks` (ids of marks naming objects of these teams). Returns how many teams
    it recounted."""
    teams = sorted(set(teams))
    for start in range(0, len(teams), CHUNK):
        chunk = teams[start : start + CHUNK]
        with transaction.atomic():
            _lock(chunk)
            marks = list(
                m.SummaryDirty.objects.filter(team_key__in=chunk).values_list(
                    "pk", flat=True
                )
            )
            _bump_all(_write(_compute(chunk), _stored(chunk)))
            m.SummaryDirty.objects.filter(pk__in=marks).delete()
    object_marks = list(object_marks)
    for start in range(0, len(object_marks), 5000):
        m.SummaryDirty.objects.filter(
            pk__in=object_marks[start : start + 5000]
        ).delete()
    return len(teams)


def refresh_dirty() -> int:
    """Recount every team marked dirty (nothing to do costs one query)."""
    teams: set[int] = set()
    by_kind: dict[str, set[int]] = defaultdict(set)
    object_marks = []
    for pk, team, kind, object_id in m.SummaryDirty.objects.order_by().values_list(
        "pk", "team_key", "object_kind", "object_id"
    ):
        if team is not None:
            teams.add(team)
        else:
            object_marks.append(pk)
            by_kind[kind].add(object_id)
    for kind, ids in by_kind.items():
        if kind in KINDS:
            teams |= teams_of(KINDS[kind], ids)
    if not teams and not object_marks:
        return 0
    return refresh(teams, object_marks=object_marks)


def rebuild(*, fix: bool = True) -> list[str]:
    """Recount every team from the rules and compare with what is stored; return each
    difference (teams marked dirty, i.e. with a write not yet recounted, excepted), and
    store the recount when `fix`. The nightly task logs what it returns: it must be empty.
    """
    mismatches: list[str] = []
    with transaction.atomic():
        _lock((), everything=True)
        marks = list(m.SummaryDirty.objects.values_list("pk", "team_key"))
        pending = _pending()
        teams = sorted(
            {NONE}
            | set(m.Team.objects.values_list("pk", flat=True))
            | set(
                m.SummaryCount.objects.exclude(team_key=ALL)
                .values_list("team_key", flat=True)
                .distinct()
            )
        )
        expected_all: Counter[tuple[str, date]] = Counter()
        stored_sum: Counter[tuple[str, date]] = Counter()
        for start in range(0, len(teams), CHUNK):
            chunk = teams[start : start + CHUNK]
            new, old = _compute(chunk), _stored(chunk)
            for key, n in new.items():
                expected_all[(key[2], key[3])] += n
            for key, (_, n) in old.items():
                stored_sum[(key[2], key[3])] += n
            for key in sorted(set(new) | set(old), key=str):
                want, have = new.get(key, 0), old.get(key, (0, 0))[1]
                if want != have and key[0] not in pending:
                    mismatches.append(
                        f"team {key[0]} person {key[1]} {key[2]} {key[3]}: stored {have}, counted {want}"
                    )
            if fix:
                _write(new, old)
        stored_all = {
            (metric, day): n
            for metric, day, n in m.SummaryCount.objects.filter(
                team_key=ALL
            ).values_list("metric", "day", "n")
        }
        if not pending:
            for key in sorted(set(stored_all) | set(expected_all), key=str):
                if stored_all.get(key, 0) != expected_all.get(key, 0):
                    mismatches.append(
                        f"all teams {key[0]} {key[1]}: stored {stored_all.get(key, 0)}, counted {expected_all.get(key, 0)}"
                    )
        if fix:
            m.SummaryCount.objects.filter(team_key=ALL).delete()
            m.SummaryCount.objects.bulk_create(
                [
                    m.SummaryCount(
                        team_key=ALL, owner_key=ALL, metric=metric, day=day, n=n
                    )
                    for (metric, day), n in expected_all.items()
                    if n
                ],
                batch_size=2000,
            )
            m.SummaryDirty.objects.filter(pk__in=[pk for pk, _ in marks]).delete()
        # Marks written while this ran excuse their teams too.
        late = _pending()
    return [line for line in mismatches if not _excused(line, late)]


def _pending() -> set[int]:
    """The teams marked dirty now (object marks resolved to their teams)."""
    teams: set[int] = set()
    by_kind: dict[str, set[int]] = defaultdict(set)
    for team, kind, object_id in m.SummaryDirty.objects.values_list(
        "team_key", "object_kind", "object_id"
    ):
        if team is not None:
            teams.add(team)
        else:
            by_kind[kind].add(object_id)
    for kind, ids in by_kind.items():
        if kind in KINDS:
            teams |= teams_of(KINDS[kind], ids)
    return teams


def _excused(line: str, late: set[int]) -> bool:
    if line.startswith("all teams"):
        return bool(late)
    return int(line.split()[1]) in late


# ---------------------------------------------------------------------------
# Reading: the dashboard's figures for one user
# ---------------------------------------------------------------------------
def _scope(user: Any) -> tuple[QuerySet, QuerySet]:
    """(the rows to sum, the per-pair rows for the by-team chart) the user may see."""
    rows = m.SummaryCount.objects.all()
    if user.is_authenticated and permissions.reads_all(user):
        return rows.filter(team_key=ALL, owner_key=ALL), rows.exclude(team_key=ALL)
    if not user.is_authenticated or not permissions.has_role(user, Role.OWNER):
        return rows.none(), rows.none()
    mine = rows.filter(
        Q(team_key__in=sorted(permissions.team_ids(user))) | Q(owner_key=user.pk)
    ).exclude(team_key=ALL)
    return mine, mine


def _day_start(moment: datetime) -> tuple[date, datetime]:
    day = moment.astimezone(UTC).date()
    return day, datetime(day.year, day.month, day.day, tzinfo=UTC)


def figures(
    *,
    user: Any,
    policy: m.Policy,
    now: datetime,
    deployments: QuerySet,
    identities: QuerySet,
) -> dict[str, Any]:
    """Exact counts for the user, from the summary: recount dirty teams, then sum.

    `deployments` and `identities` are the user's scoped lists (for the boundary days).
    Returns {"fixed": {metric: n}, "timed": {name: n}, "by_team": [...]}.
    """
    refresh_dirty()
    rows, pairs = _scope(user)
    fixed = dict(
        rows.filter(day=NO_DAY)
        .order_by()
        .values("metric")
        .annotate(total=Sum("n"))
        .values_list("metric", "total")
    )
    cutoffs = {
        "unused": ("i.unused@", now - timedelta(days=policy.unused_after_days)),
        "unrotated": (
            "i.unrotated@",
            now - timedelta(days=policy.unrotated_after_days),
        ),
        "expired": ("i.expired@", now),
        "silent": ("d.silent@", now - timedelta(hours=policy.silent_after_hours)),
    }
    statuses = NHI.Status.values
    for days in AGE_DAYS:
        for status in statuses:
            cutoffs[f"older{days}.{status}"] = (
                f"i.issued.{status}@",
                now - timedelta(days=days),
            )
    timed = _sum_before(rows, cutoffs)
    for name, n in _boundary(cutoffs, now, policy, deployments, identities).items():
        timed[name] += n
    by_team = _top_teams(pairs)
    return {
        "fixed": fixed,
        "timed": timed,
        "by_team": by_team,
    }


def _top_teams(pairs: QuerySet) -> list[dict[str, Any]]:
    """The teams with most active deployments, ties by name as the database orders them
    (no team: NULL, last on PostgreSQL, first on SQLite): the pairs' totals grouped by
    team, then the names of the few teams that can make the top."""
    totals = sorted(
        pairs.filter(day=NO_DAY, metric="d.active")
        .order_by()
        .values("team_key")
        .annotate(n=Sum("n"))
        .values_list("n", "team_key"),
        reverse=True,
    )
    if not totals:
        return []
    floor = totals[min(BY_TEAM_LIMIT, len(totals)) - 1][0]
    candidates = [(n, team) for n, team in totals if n >= floor]
    named = list(
        m.Team.objects.filter(pk__in=[t for _, t in candidates if t > 0])
        .order_by("name")  # the database's collation, as the list's sort
        .values_list("pk", "name")
    )
    names = dict(named)
    rank = {pk: i for i, (pk, _) in enumerate(named)}
    unnamed = (
        len(named) if connection.vendor == "postgresql" else -1
    )  # NULLS LAST/FIRST

    def order(item: tuple[int, int]) -> tuple[int, int]:
        return (-item[0], rank.get(item[1], unnamed))

    return [
        {"team_id": team or None, "team__name": names.get(team), "n": n}
        for n, team in sorted(candidates, key=order)[:BY_TEAM_LIMIT]
    ]


BY_TEAM_LIMIT = 10


def _sum_before(
    rows: QuerySet, cutoffs: dict[str, tuple[str, datetime]]
) -> dict[str, int]:
    """For each name, the sum of its metric's buckets of days before its cutoff's day.

    One pass: rows are grouped by metric and by band (band k: the day lies before the
    k-th cutoff day and not before the one before), then each sum adds its bands (a
    FILTER per sum cost 13 ms over the 10,000 all-teams rows; this costs a few).
    """
    days = sorted({_day_start(cut)[0] for _, cut in cutoffs.values()})
    band = Case(
        *[When(day__lt=day, then=Value(k)) for k, day in enumerate(days)],
        default=Value(len(days)),
    )
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * (len(days) + 1))
    for metric, k, total in (
        rows.filter(day__gt=NO_DAY, day__lt=days[-1])
        .order_by()
        .values("metric", band=band)
        .annotate(total=Sum("n"))
        .values_list("metric", "band", "total")
    ):
        totals[metric][k] += total
    return {
        name: sum(totals[metric][: days.index(_day_start(cut)[0]) + 1])
        for name, (metric, cut) in cutoffs.items()
    }


def _boundary(
    cutoffs: dict[str, tuple[str, datetime]],
    now: datetime,
    policy: m.Policy,
    deployments: QuerySet,
    identities: QuerySet,
) -> dict[str, int]:
    """What each time rule catches on its cutoff's own day (the buckets hold whole days):
    one query per table over indexed timestamp windows of at most a day, each counted with
    the rule itself."""
    windows: dict[str, tuple[datetime, datetime]] = {
        name: (_day_start(cut)[1], cut) for name, (_, cut) in cutoffs.items()
    }

    def within(field: str, name: str, *, inclusive: bool = False) -> Q:
        start, end = windows[name]
        upper = "lte" if inclusive else "lt"
        return Q(**{f"{field}__gte": start, f"{field}__{upper}": end})

    counts: dict[str, Any] = {
        "unused": Count(
            "pk",
            filter=querysets.identity_unused_q(policy, now)
            & (
                within("last_used_at", "unused")
                | (Q(last_used_at__isnull=True) & within("issued_at", "unused"))
            ),
        ),
        "unrotated": Count(
            "pk",
            filter=querysets.identity_unrotated_q(policy, now)
            & (within("issued_at", "unrotated") | within("rotated_at", "unrotated")),
        ),
        "expired": Count(
            "pk",
            filter=querysets.identity_expired_q(now) & within("expires_at", "expired"),
        ),
    }
    anywhere = (
        within("last_used_at", "unused")
        | within("issued_at", "unused")
        | within("issued_at", "unrotated")
        | within("rotated_at", "unrotated")
        | within("expires_at", "expired")
    )
    for days in AGE_DAYS:
        # The histogram's "older than" is issued_at <= cutoff; one count per cutoff,
        # split by status by the GROUP BY (the cutoffs are the same for every status).
        window = within("issued_at", f"older{days}.{NHI.Status.ACTIVE}", inclusive=True)
        counts[f"older{days}"] = Count("pk", filter=window)
        anywhere |= window
    found: dict[str, int] = defaultdict(int)
    for row in (
        identities.filter(anywhere).order_by().values("status").annotate(**counts)
    ):
        for name in ("unused", "unrotated", "expired"):
            found[name] += row[name]
        for days in AGE_DAYS:
            found[f"older{days}.{row['status']}"] += row[f"older{days}"]
    found["silent"] = (
        deployments.filter(
            within("last_seen_at", "silent") | within("seen_at", "silent")
        )
        .order_by()
        .aggregate(n=Count("pk", filter=querysets.deployment_silent_q(policy, now)))[
            "n"
        ]
    )
    return {name: found.get(name, 0) or 0 for name in cutoffs}


# ---------------------------------------------------------------------------
# Signal receivers: every ORM save and delete of a counted object marks its teams
# ---------------------------------------------------------------------------
COUNTED = (m.AIModel, D, NHI)
# Saving these fields of a model changes counts in other teams (drift, retired).
# Its owner too: the inherited reader of its deployments nobody owns (_person).
MODEL_REACH = {
    "lifecycle",
    "baseline_version",
    "baseline_version_id",
    "owner",
    "owner_id",
}


def _before_save(
    sender: type[Model], instance: Model, update_fields=None, **_: Any
) -> None:
    if instance.pk is None or instance._state.adding:
        return
    fields = None if update_fields is None else set(update_fields)
    if fields is not None and not fields & (
        MODEL_REACH | {"team", "team_id", "model", "model_id"}
    ):
        return  # the row stays in its team; post_save marks it
    if sender is m.AIModel and (fields is None or MODEL_REACH & fields):
        mark_dirty(teams_of(m.AIModel, [instance.pk]))
    elif sender is D and (fields is None or {"model", "model_id"} & fields):
        mark_dirty(teams_of(D, [instance.pk]))
    else:  # only the row's own team can change
        mark_dirty(_teams(sender.objects.filter(pk=instance.pk)))


def _after_save(sender: type[Model], instance: Model, **_: Any) -> None:
    mark_dirty([instance.team_id])


# Set by `delete_in_bulk`: the per-object delete receivers do nothing, it marks for all.
_MUTED = threading.local()


def _before_delete(sender: type[Model], instance: Model, **_: Any) -> None:
    if getattr(_MUTED, "on", False):
        return
    mark_dirty(teams_of(sender, [instance.pk]))


@transaction.atomic
def delete_in_bulk(queryset: QuerySet) -> int:
    """Delete many rows of a counted kind, marking their teams once and set-based.

    `QuerySet.delete()` sends pre_delete for each row, and each would look up its teams (a
    few queries a row: 150,000 for 50,000 deployments). This looks the teams up for all
    rows first (`teams_of`, a few queries a 5,000), deletes with the per-row receivers
    muted, and marks them for beat or the dashboard's next read to recount."""
    pks = list(queryset.order_by().values_list("pk", flat=True))
    teams = teams_of(queryset.model, pks)
    _MUTED.on = True
    try:
        deleted, _ = queryset.model._default_manager.filter(pk__in=pks).delete()
    finally:
        _MUTED.on = False
    mark_dirty(teams, inline=False)
    return deleted


def _bindings_changed(
    sender: Any, instance: Model, action: str, reverse: bool, pk_set: Any, **_: Any
) -> None:
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if not reverse:  # identity.deployments.…
        mark_dirty([instance.team_id])
    elif pk_set:  # deployment.identities.…
        mark_dirty(teams_of(NHI, pk_set))
    else:
        mark_dirty(_teams(NHI.objects.filter(deployments=instance)))


def _before_user_delete(sender: Any, instance: Model, **_: Any) -> None:
    """Deleting a person empties the owner of what they owned (SET NULL, no signal)."""
    teams: set[int | None] = set()
    for model in COUNTED:
        teams |= _teams(model.objects.filter(owner_id=instance.pk))
    # Their models' deployments nobody owns were theirs to read (_person).
    owned = m.AIModel.objects.filter(owner_id=instance.pk).values_list("pk", flat=True)
    mark_dirty(teams | teams_of(m.AIModel, list(owned)))


def _before_team_delete(sender: Any, instance: Model, **_: Any) -> None:
    mark_dirty([instance.pk])


def connect() -> None:
    """Called from `InventoryConfig.ready`."""
    uid = "inventory.summary"
    for model in COUNTED:
        pre_save.connect(
            _before_save, sender=model, dispatch_uid=f"{uid}.pre_save.{model.__name__}"
        )
        post_save.connect(
            _after_save, sender=model, dispatch_uid=f"{uid}.post_save.{model.__name__}"
        )
        pre_delete.connect(
            _before_delete,
            sender=model,
            dispatch_uid=f"{uid}.pre_delete.{model.__name__}",
        )
    pre_delete.connect(
        _before_delete, sender=m.ModelVersion, dispatch_uid=f"{uid}.pre_delete.version"
    )
    m2m_changed.connect(
        _bindings_changed,
        sender=NHI.deployments.through,
        dispatch_uid=f"{uid}.bindings",
    )
    pre_delete.connect(
        _before_user_delete, sender=get_user_model(), dispatch_uid=f"{uid}.user"
    )
    pre_delete.connect(_before_team_delete, sender=m.Team, dispatch_uid=f"{uid}.team")
