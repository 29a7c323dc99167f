"""New identity findings opened in one statement (PostgreSQL): the first run over a chunk.

When a chunk of identities has no finding of a rule's kind at all (none unresolved, none
resolved: nothing to update, resolve or reopen), every identity holding the rule gets a
new finding, and the engine (`detection._run_chunk`) lets PostgreSQL write them with
their opened events in one INSERT … SELECT instead of building a condition, its facts,
title and records in Python for each of them and copying the rows: at the bench's full
scale a first run opens some 300,000 such findings, and building them took about half of
its Python time.

What the statement writes is what the Python path writes, column for column: the rule is
its `matching` Q compiled by the ORM; the title, the facts (as the same JSON text, so the
evidence key, its SHA-256, is the same and the next run finds them unchanged), the tier
(the riskiest bound deployment's, 4 when none), the severity (`detection.severity_for`),
the queue and assignee (`detection._assignment`) and the records are SQL written to match
`identities` (`tests/governance/test_detect_identity_sql.py` compares the two paths row by
row). A rule opts in by giving `title_sql` and `facts_sql`.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connection

from governance import detection
from governance.models import Finding, FindingEvent
from inventory import models as im

if TYPE_CHECKING:
    from governance.detectors.identities import IdentityRule

BINDING = im.NonHumanIdentity.deployments.through


def iso(column: str) -> str:
    """SQL for `column.isoformat()` of an aware datetime in UTC (the session's zone), as
    Python writes it: microseconds only when there are any, six digits, `+00:00`."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"CASE WHEN {column} IS NULL THEN NULL "
        f"WHEN date_trunc('second', {column}) = {column} "
        f"THEN to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || '+00:00' "
        f"ELSE to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '+00:00' END"
    )


def json_bool(condition: str) -> str:
    return f"CASE WHEN {condition} THEN 'true' ELSE 'false' END"


def records_sql(*, created: bool) -> str:
    """SQL for the records `identities.credential_records` lists (with the created
    record first if `created`), as jsonb: one array element per time the identity has,
    concatenated (no subquery per row)."""
    times = [
        ("'issued'", "r.issued_at"),
        ("'rotated'", "r.rotated_at"),
        ("'last used'", "r.last_used_at"),
        ("'expires'", "r.expires_at"),
    ]

    def element(what: str, at: str) -> str:
        return (
            f"jsonb_build_array(jsonb_build_object('source', r.source, 'what', {what}, "
            f"'at', {iso(at)}))"
        )

    parts = [
        f"CASE WHEN {at} IS NULL THEN '[]'::jsonb ELSE {element(what, at)} END"
        for what, at in times
    ]
    if created:
        parts.insert(0, element("'created'", "r.created_at"))
    return "(" + " || ".join(parts) + ")"


def open_in_sql(
    rule: IdentityRule, *, policy: im.Policy, now: datetime, id_range: tuple[int, int]
) -> list[tuple[int, int, int | None]]:
    """Open a finding of `rule` for every identity in `id_range` holding it (the chunk
    has none of its kind), with their opened events; (id, severity, assignee) of each."""
    # The rule's identities with the columns the Python path reads (IDENTITY_FIELDS).
    from governance.detectors.identities import IDENTITY_FIELDS, identities_in

    qn = connection.ops.quote_name
    kind = rule.kind
    matching = (
        identities_in(None, id_range)
        .filter(rule.matching(policy, now))
        .order_by()
        .values(*("id" if f == "pk" else f for f in IDENTITY_FIELDS))
    )
    match_sql, match_params = matching.query.sql_with_params()
    title_sql, title_params = rule.title_sql(policy)
    facts_sql, facts_params = rule.facts_sql(policy)
    severities = " ".join(
        f"WHEN {tier} THEN {detection.severity_for(kind, tier)}" for tier in (1, 2, 3)
    )
    severity_sql = (
        f"CASE r.tier {severities} ELSE {detection.severity_for(kind, 4)} END"
    )
    Q = Finding.Queue
    queue_sql = (
        f"CASE WHEN r.owner_id IS NOT NULL THEN '{Q.OWNER.value}' "
        f"WHEN r.team_id IS NOT NULL THEN '{Q.TEAM.value}' "
        f"ELSE '{Q.COMMITTEE.value}' END"
    )
    # The columns set here, then every other one with its default (as `_create` does).
    set_columns = {
        "kind": "%s",
        "subject_type": "%s",
        "subject_id": "r.id",
        "title": "left(r.title, 300)",
        "severity": severity_sql,
        "tier": "r.tier",
        "deployment_id": "NULL",
        "identity_id": "r.id",
        "model_id": "r.model_id",
        "team_id": "r.team_id",
        "owner_id": "r.owner_id",
        "source": "left(r.source, 100)",
        "status": "%s",
        "queue": queue_sql,
        "assignee_id": "r.owner_id",
        "evidence": (
            "jsonb_build_object('facts', r.facts::jsonb, 'records', "
            f"{records_sql(created=rule.records_created)})"
        ),
        "evidence_key": "encode(sha256(convert_to(r.facts, 'UTF8')), 'hex')",
        "opened_at": "%s",
        "first_opened_at": "%s",
        "last_seen_at": "%s",
        "updated_at": "%s",
    }
    set_params = [
        kind,
        Finding.Subject.IDENTITY.value,
        Finding.Status.OPEN.value,
        now,
        now,
        now,
        now,
    ]
    defaults = detection._defaults(Finding)
    rest = [c for c in detection.FINDING_COLUMNS if c not in set_columns and c != "id"]
    finding_columns = [*set_columns, *rest]
    finding_values = [*set_columns.values(), *(["%s"] * len(rest))]
    # Events: every column but its id; the chunk's kind, action and time set here.
    event_defaults = detection._defaults(FindingEvent)
    event_rest = [
        c
        for c in detection.EVENT_COLUMNS
        if c not in {"finding_id", "kind", "action", "at"}
    ]
    binding = BINDING._meta
    lo, hi = id_range
    # Only quoted names from the models' meta and SQL written here are formatted in;
    # every value is a parameter (the rule's compiled query brings its own).
    sql = f"""
        WITH matched AS ({match_sql}),
        tiers AS (
            SELECT b.{qn("nonhumanidentity_id")} AS id, min(d.{qn("risk_tier")}) AS tier
            FROM {qn(binding.db_table)} b
            JOIN {qn(im.Deployment._meta.db_table)} d ON d.id = b.{qn("deployment_id")}
            WHERE b.{qn("nonhumanidentity_id")} >= %s
              AND b.{qn("nonhumanidentity_id")} < %s
            GROUP BY 1
        ),
        r AS (
            SELECT m.*,
                   CASE WHEN t.tier IS NULL OR t.tier = 0 THEN 4 ELSE t.tier END AS tier,
                   {title_sql} AS title,
                   {facts_sql} AS facts
            FROM matched m LEFT JOIN tiers t ON t.id = m.id
        ),
        opened AS (
            INSERT INTO {qn(Finding._meta.db_table)}
                ({", ".join(qn(c) for c in finding_columns)})
            SELECT {", ".join(finding_values)} FROM r
            RETURNING id, severity, assignee_id
        ),
        events AS (
            INSERT INTO {qn(FindingEvent._meta.db_table)}
                ({", ".join(qn(c) for c in ["finding_id", "kind", "action", "at", *event_rest])})
            SELECT opened.id, %s, %s, %s{"".join(", %s" for _ in event_rest)} FROM opened
        )
        SELECT id, severity, assignee_id FROM opened ORDER BY id
    """  # noqa: S608
    params: list[Any] = [
        *match_params,
        lo,
        hi,
        *title_params,
        *facts_params,
        *set_params,
        *(defaults.get(c) for c in rest),
        kind,
        FindingEvent.Action.OPENED.value,
        now,
        *(event_defaults.get(c) for c in event_rest),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]
