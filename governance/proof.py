"""The proof card: for one deployment or one model, what is running, who can invoke it and
how quickly it can be withdrawn, each answer with its sources and timestamps.

`deployment_proof()` and `model_proof()` return one JSON-safe dict (datetimes as ISO 8601
text, in UTC) that the page, the JSON download, the PDF and the API all render: nothing
is computed twice, so the four cannot disagree. They cost a fixed number of queries
whatever the data (the deployment card seven, the model card five): one aggregate per
section, prefetched or grouped, never a query per row.

Definitions (also in the README, "The proof card"):

- A caller is one (calling service, end user, identity) of the usage rows of the last
  `CALLER_DAYS` days. A caller is *bound* when its usage row names an identity bound to
  the deployment; any other (no identity, or one not bound to it) is *not bound to any
  known identity*.
- A bound identity can be revoked *by a connector* when its `source` names a data source
  whose kind's connector can revoke identities (`revocable` holds `NonHumanIdentity`:
  AWS IAM, Vault today); otherwise a person must revoke it: its owner. Only active
  identities need withdrawing; the others are listed as nothing to do.
- The readiness verdict:
  - *not ready*: the deployment has no accountable owner, or an active bound identity
    that no connector can revoke has no owner either (nobody can revoke it);
  - *needs people*: otherwise, when some active bound identity must be revoked by hand,
    or the change window is missing or not machine-readable;
  - *ready*: every active bound identity is revocable by its connector, the deployment
    has an owner and a readable change window.
- The measured time to withdraw: from the last recorded change of the status to
  withdrawn (the history, `FieldChange`, by a person or a source) to the end of the last
  usage hour with calls at or after that change's hour. Usage is hourly, so it is an
  upper bound to the hour; no calls after the change measure 0 (it stopped within the
  hour). A deployment never withdrawn says "never withdrawn".
- `complete()`: the three answers are complete when the running version is known (the
  registry's version or the runtime's own label), at least one identity is bound and
  every caller of the last `CALLER_DAYS` days is bound, and the verdict is not "not
  ready". `completeness_share()` is the same rule in SQL, for the dashboard. A model's
  card is complete when it has deployments and every one's card is.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from functools import cache
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import (
    CharField,
    Count,
    Exists,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Cast, Coalesce, Concat
from django.urls import reverse

from governance.findings import finding_scope
from governance.models import Finding
from inventory import change_window, history, permissions
from inventory import models as m
from inventory.roles import Role
from inventory.snapshots import json_safe
from sources import models as sm

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    User = AbstractBaseUser

CALLER_DAYS = 30
CALLER_LIMIT = 500
DOWNSTREAM_MAX_DEPTH = 5
DOWNSTREAM_MAX_NODES = 200
MODEL_DEPLOYMENT_LIMIT = 200

READY, NEEDS_PEOPLE, NOT_READY = "ready", "needs_people", "not_ready"
VERDICT_LABELS = {
    READY: "Ready",
    NEEDS_PEOPLE: "Needs people",
    NOT_READY: "Not ready",
}
NEVER_WITHDRAWN = "never withdrawn"

NO_OWNER = "No accountable owner: nobody answers for withdrawing it."
NOBODY_CAN_REVOKE = (
    "{identity}: no connector can revoke it and it has no owner, so nobody can."
)
MANUAL_REVOKE = "{identity}: a person must revoke it ({who})."
NO_CHANGE_WINDOW = "No change window: when it may be changed is not agreed."
UNREADABLE_CHANGE_WINDOW = "The change window is not machine-readable: {error}."
ALL_REVOCABLE = "Every active bound identity can be revoked by its connector."
NO_ACTIVE_IDENTITY = "No active identity is bound to it: nothing to revoke."
HAS_OWNER = "Owner: {owner}."
HAS_CHANGE_WINDOW = "Change window: {window}."

# Fields of the running answer, and whether the history tracks them (inventory.history).
RUNNING_FIELDS = (
    ("observed_version", "Observed version"),
    ("endpoint", "Endpoint"),
    ("status", "Status"),
    ("exposure", "Exposure"),
    ("environment", "Environment"),
    ("platform", "Platform"),
    ("platform_locator", "Platform locator"),
)
TRACKED_FIELDS = tuple(history.TRACKED[m.Deployment])

# What stopping it takes on each platform (a person's action: no connector scales).
QUARANTINE_METHODS = {
    "kubernetes": "Scale it to zero replicas on the cluster "
    "(kubectl scale --replicas=0 for the object at its locator), or delete the "
    "InferenceService / SeldonDeployment.",
    "sagemaker": "Delete the SageMaker endpoint, or update it to zero instances.",
    "vertex": "Undeploy the model from the Vertex AI endpoint.",
    "azureml": "Delete the online deployment, or set its traffic to 0%.",
    "bedrock": "Revoke the IAM permissions that invoke the model.",
    "openai": "Vendor-hosted: revoke the API keys bound to it.",
    "anthropic": "Vendor-hosted: revoke the API keys bound to it.",
}
QUARANTINE_UNKNOWN = (
    "Platform not known: a person must stop it where it runs (see the locator)."
)
RUNPROOF_QUARANTINE = (
    "Runproof sets its status to quarantined or withdrawn (a committee decision, "
    "audited); the release gate then refuses it. Runproof does not stop it on the "
    "platform itself: that is the platform action above."
)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------
def _iso(value: dt.datetime | None) -> str | None:
    return (
        value.astimezone(dt.UTC).replace(microsecond=0).isoformat() if value else None
    )


def _person(user: Any) -> dict[str, Any] | None:
    if user is None:
        return None
    full = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return {"id": user.pk, "username": user.get_username(), "name": full or ""}


def _person_label(person: dict[str, Any] | None) -> str:
    if not person:
        return ""
    return person["name"] or person["username"]


def _team(team: Any) -> dict[str, Any] | None:
    return {"id": team.pk, "name": team.name} if team is not None else None


@cache
def revocable_kinds() -> frozenset[str]:
    """The data-source kinds whose connector can revoke an identity (the registry's own
    `revocable` declarations, read once per process)."""
    from sources.connectors import CONNECTORS
    from sources.sync import runner

    kinds = set()
    for kind in CONNECTORS:
        if m.NonHumanIdentity in runner.connector_class(kind).revocable:
            kinds.add(kind)
    return frozenset(kinds)


def _sources() -> dict[str, dict[str, Any]]:
    """Every data source by its label ("<kind>:<id>"): one small query (sources are few)."""
    return {
        f"{kind}:{pk}": {"id": pk, "kind": kind, "name": name, "label": f"{kind}:{pk}"}
        for pk, kind, name in sm.DataSource.objects.values_list("pk", "kind", "name")
    }


def _source(label: str, sources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What a `source` column names: a data source, a hand entry, or a source now gone."""
    if not label or label == m.MANUAL_SOURCE:
        return {"label": m.MANUAL_SOURCE, "name": "Entered by hand", "kind": "manual"}
    known = sources.get(label)
    if known:
        return {**known, "url": reverse("sources:source_detail", args=[known["id"]])}
    kind = label.partition(":")[0]
    return {"label": label, "name": f"{label} (no longer configured)", "kind": kind}


def _revoker(identity: m.NonHumanIdentity, sources: dict[str, dict[str, Any]]) -> str:
    """ "connector" when the identity's data source can revoke it, else "person"."""
    known = sources.get(identity.source or "")
    if known and known["kind"] in revocable_kinds():
        return "connector"
    return "person"


def _third_party(kind: str, vendor: str) -> bool:
    return bool(vendor) or kind == m.NonHumanIdentity.Kind.OAUTH_APP


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds <= 0:
        return "0 (no calls after it)"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = []
    if days:
        parts.append(f"{days} d")
    if hours:
        parts.append(f"{hours} h")
    if minutes or not parts:
        parts.append(f"{minutes} min")
    return " ".join(parts)


def _change_window(text: str, now: dt.datetime) -> dict[str, Any]:
    if not (text or "").strip():
        return {"text": "", "set": False, "readable": False, "error": "", "next": None}
    try:
        schedule = change_window.parse(text)
    except change_window.ChangeWindowError as exc:
        return {
            "text": text,
            "set": True,
            "readable": False,
            "error": str(exc),
            "next": None,
        }
    opening = schedule.next_opening(now)
    return {
        "text": text,
        "set": True,
        "readable": True,
        "error": "",
        "describe": schedule.describe(),
        "note": schedule.note,
        "open_now": schedule.contains(now),
        "next": _iso(opening),
    }


# ---------------------------------------------------------------------------
# Shared SQL: the rules the dashboard counts (and the model card summarises) in SQL
# ---------------------------------------------------------------------------
def _bound(deployment_ref: Any) -> QuerySet:
    return m.NonHumanIdentity.deployments.through.objects.filter(
        deployment_id=deployment_ref
    )


def _revocable_source_q() -> Exists:
    """The identity (OuterRef) comes from a data source whose connector can revoke it."""
    labelled = sm.DataSource.objects.annotate(
        label=Concat("kind", Value(":"), Cast("id", output_field=CharField()))
    )
    return Exists(
        labelled.filter(
            label=OuterRef("nonhumanidentity__source"), kind__in=revocable_kinds()
        )
    )


def _manual_identities(deployment_ref: Any) -> QuerySet:
    """Active identities bound to the deployment that no connector can revoke."""
    return (
        _bound(deployment_ref)
        .filter(nonhumanidentity__status=m.NonHumanIdentity.Status.ACTIVE)
        .exclude(_revocable_source_q())
    )


def _unbound_usage(deployment_ref: Any, since: dt.datetime) -> QuerySet:
    """Usage rows since `since` whose caller is not a bound identity."""
    bound_here = m.NonHumanIdentity.deployments.through.objects.filter(
        deployment_id=OuterRef("deployment_id"),
        nonhumanidentity_id=OuterRef("identity_id"),
    )
    return m.UsageHour.objects.filter(
        deployment_id=deployment_ref, hour__gte=since
    ).filter(Q(identity__isnull=True) | ~Exists(bound_here))


def proof_annotations(now: dt.datetime, *, calls: bool = True) -> dict[str, Any]:
    """The facts of completeness and of the verdict, as annotations on deployments (with
    `calls`, the calls of the last CALLER_DAYS days too)."""
    since = now - dt.timedelta(days=CALLER_DAYS)
    pk = OuterRef("pk")
    facts = {
        "proof_has_identity": Exists(_bound(pk)),
        "proof_unbound_callers": Exists(_unbound_usage(pk, since)),
        "proof_unrevocable": Exists(
            _manual_identities(pk).filter(nonhumanidentity__owner__isnull=True)
        ),
    }
    if calls:
        facts["proof_calls"] = Coalesce(
            Subquery(
                m.UsageHour.objects.filter(deployment_id=pk, hour__gte=since)
                .order_by()
                .values("deployment_id")
                .annotate(n=Sum("calls"))
                .values("n")[:1]
            ),
            0,
        )
    return facts


def complete_q() -> Q:
    """`complete()` in SQL, on a queryset annotated with `proof_annotations()`."""
    running = Q(observed_version__isnull=False) | ~Q(observed_version_label="")
    return (
        running
        & Q(proof_has_identity=True, proof_unbound_callers=False)
        & Q(owner__isnull=False, proof_unrevocable=False)
    )


# ---------------------------------------------------------------------------
# What is running
# ---------------------------------------------------------------------------
def _version(version: m.ModelVersion | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {
        "id": version.pk,
        "version": version.version,
        "digest": version.digest,
        "approval": version.approval,
        "approval_label": version.get_approval_display(),
        "approved_at": _iso(version.approved_at),
        "url": version.get_absolute_url(),
    }


FINDING_FIELDS = (
    "id",
    "kind",
    "title",
    "severity",
    "status",
    "opened_at",
    "last_seen_at",
    "source",
)


def _finding(finding: Finding) -> dict[str, Any]:
    return {
        "id": finding.pk,
        "kind": finding.kind,
        "kind_label": finding.get_kind_display(),
        "title": finding.title,
        "severity": finding.severity,
        "severity_label": finding.get_severity_display(),
        "status": finding.status,
        "status_label": finding.get_status_display(),
        "opened_at": _iso(finding.opened_at),
        "last_seen_at": _iso(finding.last_seen_at),
        "source": finding.source,
        "url": reverse("governance:finding_detail", args=[finding.pk]),
    }


def _open_findings(q: Q, user: User | None = None) -> list[dict[str, Any]]:
    """Unresolved findings (open, acknowledged, accepted, false positive), the most severe
    first; with `user`, those the findings pages would show them (findings.finding_scope)."""
    queryset = Finding.objects.all()
    if user is not None:
        queryset = finding_scope(queryset, user)
    rows = (
        queryset.filter(q)
        .exclude(status=Finding.Status.RESOLVED)
        # What `_finding` reads: the evidence's JSON is the heavy rest.
        .only(*FINDING_FIELDS)
        .order_by("-severity", "-opened_at", "-id")[:100]
    )
    return [_finding(f) for f in rows]


def _changes(
    deployment: m.Deployment, sources: dict[str, dict[str, Any]]
) -> tuple[dict[str, m.FieldChange], m.FieldChange | None]:
    """The latest history row of each tracked field, and the latest change to withdrawn:
    one query."""
    rows = m.FieldChange.objects.filter(
        object_type=history.DEPLOYMENT, object_id=deployment.pk
    )
    latest = rows.order_by().values("field").annotate(last=Max("id")).values("last")
    withdrawn = (
        rows.filter(field="status", after=m.Deployment.Status.WITHDRAWN)
        .order_by("-id")
        .values("id")[:1]
    )
    by_field: dict[str, m.FieldChange] = {}
    withdrawal = None
    for row in m.FieldChange.objects.filter(
        Q(id__in=Subquery(latest)) | Q(id__in=Subquery(withdrawn))
    ).order_by("id"):
        by_field[row.field] = row
        if row.field == "status" and row.after == m.Deployment.Status.WITHDRAWN:
            withdrawal = row
    return by_field, withdrawal


def _by(change: m.FieldChange, sources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Who made a history row: its source (named) or the person, token or system."""
    if change.source:
        source = _source(change.source, sources)
        return {
            "kind": "source",
            "label": source["name"],
            "source": source,
            "run_id": change.run_id,
        }
    return {"kind": change.actor_kind or "person", "label": change.actor_label}


def _display_value(field: str, value: Any) -> str:
    if isinstance(value, dict):  # the observed version: id and label
        label = value.get("observed_version_label") or ""
        vid = value.get("observed_version_id")
        return label or (f"version #{vid}" if vid else "none")
    return "" if value is None else str(value)


def _running(
    deployment: m.Deployment,
    *,
    sources: dict[str, dict[str, Any]],
    changes: dict[str, m.FieldChange],
    findings: list[dict[str, Any]],
) -> dict[str, Any]:
    observed = deployment.observed_version if deployment.observed_version_id else None
    baseline = deployment.baseline_version
    running_version = deployment.running_version
    matches = None
    if baseline is not None and (observed is not None or running_version):
        matches = deployment.observed_version_id == baseline.pk
    fields = []
    for name, label in RUNNING_FIELDS:
        change = changes.get(name)
        if name == "observed_version":
            value = running_version
        else:
            value = getattr(deployment, name)
        fields.append(
            {
                "field": name,
                "label": label,
                "value": value,
                "tracked": name in TRACKED_FIELDS,
                "last_change": {
                    "changed_at": _iso(change.changed_at),
                    "before": _display_value(name, change.before),
                    "after": _display_value(name, change.after),
                    "by": _by(change, sources),
                }
                if change
                else None,
            }
        )
    gaps = [] if running_version else ["No source reports the version it runs."]
    return {
        "version": {
            "running": running_version,
            "registered": deployment.running_version_registered,
            "digest": observed.digest if observed else "",
            "observed": _version(observed),
        },
        "baseline": {
            "kind": deployment.baseline_kind,
            "kind_label": {"pin": "Committee's pin", "model": "Model's baseline"}.get(
                deployment.baseline_kind, "None approved"
            ),
            "version": _version(baseline),
        },
        "matches_baseline": matches,
        "endpoint": deployment.endpoint,
        "environment": deployment.environment,
        "environment_label": deployment.get_environment_display(),
        "platform": deployment.platform,
        "platform_locator": deployment.platform_locator,
        "exposure": deployment.exposure,
        "status": deployment.status,
        "status_label": deployment.get_status_display(),
        "first_seen_at": _iso(deployment.first_seen_at),
        "last_seen_at": _iso(deployment.last_seen_at),
        "last_call_at": _iso(deployment.last_call_at),
        "source": _source(deployment.source, sources),
        "fields": fields,
        "findings": findings,
        "complete": not gaps,
        "gaps": gaps,
    }


# ---------------------------------------------------------------------------
# Who can invoke it
# ---------------------------------------------------------------------------
HIDDEN_IDENTITY = "An identity of another team"
HIDDEN_OWNER = {"id": None, "username": "", "name": "", "hidden": True}


def _owner_phrase(person: dict[str, Any]) -> str:
    if person.get("hidden"):
        return "its owner, in another team"
    return f"its owner {_person_label(person)}"


def _reader(user: User | None) -> Any:
    """Whether the user may read an object with this team and owner (the identity rule of
    inventory.permissions.scope, without a query): None reads everything."""
    if user is None or permissions.reads_all(user):
        return lambda team_id, owner_id: True
    if not permissions.has_role(user, Role.OWNER):
        return lambda team_id, owner_id: False
    teams = permissions.team_ids(user)
    return lambda team_id, owner_id: (
        team_id in teams or (owner_id is not None and owner_id == user.pk)
    )


def _identity(
    identity: m.NonHumanIdentity,
    *,
    now: dt.datetime,
    sources: dict[str, dict],
    visible: bool = True,
) -> dict[str, Any]:
    """A bound identity. One the reader may not read (another team's) is counted with its
    facts, not its name, owner or team: the card still says who must revoke it."""
    owner = _person(identity.owner)
    return {
        "id": identity.pk if visible else None,
        "name": identity.name if visible else HIDDEN_IDENTITY,
        "url": identity.get_absolute_url() if visible else None,
        "hidden": not visible,
        "kind": identity.kind,
        "kind_label": identity.get_kind_display(),
        "provider": identity.provider,
        "vendor": identity.vendor,
        "third_party": _third_party(identity.kind, identity.vendor),
        "status": identity.status,
        "status_label": identity.get_status_display(),
        "owner": owner if visible or owner is None else HIDDEN_OWNER,
        "team": _team(identity.team) if visible else None,
        "issued_at": _iso(identity.issued_at),
        "age_days": (now - identity.issued_at).days if identity.issued_at else None,
        "rotated_at": _iso(identity.rotated_at),
        "last_used_at": _iso(identity.last_used_at),
        "expires_at": _iso(identity.expires_at),
        "source": _source(identity.source, sources),
        "revoker": _revoker(identity, sources),
    }


def _callers(
    deployment: m.Deployment, *, now: dt.datetime, readable: Any
) -> tuple[list, bool]:
    """Callers of the last CALLER_DAYS days, unbound first, then by calls: one query."""
    since = now - dt.timedelta(days=CALLER_DAYS)
    bound_here = m.NonHumanIdentity.deployments.through.objects.filter(
        deployment_id=deployment.pk, nonhumanidentity_id=OuterRef("identity_id")
    )
    rows = list(
        m.UsageHour.objects.filter(deployment_id=deployment.pk, hour__gte=since)
        .values(
            "caller_service",
            "caller_user",
            "identity_id",
            "identity__name",
            "identity__kind",
            "identity__vendor",
            "identity__provider",
            "identity__team_id",
            "identity__owner_id",
        )
        .annotate(
            calls=Sum("calls"),
            errors=Sum("errors"),
            last_hour=Max("hour"),
            bound=Exists(bound_here),
        )
        .order_by("bound", "-calls", "caller_service", "caller_user", "identity_id")[
            : CALLER_LIMIT + 1
        ]
    )
    truncated = len(rows) > CALLER_LIMIT
    callers = []
    for row in rows[:CALLER_LIMIT]:
        identity = None
        if row["identity_id"]:
            visible = readable(row["identity__team_id"], row["identity__owner_id"])
            identity = {
                "id": row["identity_id"] if visible else None,
                "name": row["identity__name"] if visible else HIDDEN_IDENTITY,
                "hidden": not visible,
                "kind": row["identity__kind"],
                "vendor": row["identity__vendor"],
                "provider": row["identity__provider"],
                "third_party": _third_party(
                    row["identity__kind"], row["identity__vendor"]
                ),
                "url": reverse("inventory:identity_detail", args=[row["identity_id"]])
                if visible
                else None,
            }
        callers.append(
            {
                "service": row["caller_service"],
                "user": row["caller_user"],
                "calls": row["calls"],
                "errors": row["errors"],
                "last_hour": _iso(row["last_hour"]),
                "identity": identity,
                "bound": bool(row["identity_id"] and row["bound"]),
            }
        )
    return callers, truncated


def _invoke(
    identities: list[dict[str, Any]], callers: list[dict[str, Any]], truncated: bool
) -> dict[str, Any]:
    third_party = [i for i in identities if i["third_party"]]
    seen_ids = set()
    for caller in callers:
        ident = caller["identity"]
        if ident and ident["third_party"] and not caller["bound"]:
            key = ident["id"] or (ident["name"], ident["vendor"], ident["kind"])
            if key in seen_ids:
                continue
            seen_ids.add(key)
            third_party.append({**ident, "bound": False, "seen_calling": True})
    unbound = [c for c in callers if not c["bound"]]
    gaps = []
    if not identities:
        gaps.append("No identity is bound to it: who may invoke it is not known.")
    if unbound:
        gaps.append(
            f"{len(unbound)}{'+' if truncated else ''} caller(s) of the last "
            f"{CALLER_DAYS} days are not bound to any known identity."
        )
    return {
        "window_days": CALLER_DAYS,
        "identities": identities,
        "callers": callers,
        "callers_truncated": truncated,
        "calls": sum(c["calls"] for c in callers),
        "third_party": third_party,
        "unbound_callers": unbound,
        "complete": not gaps,
        "gaps": gaps,
    }


# ---------------------------------------------------------------------------
# How quickly it can be withdrawn
# ---------------------------------------------------------------------------
def _downstream(deployment_id: int, user: User | None) -> dict[str, Any]:
    """Deployments that depend on it, transitively (a recursive query, bounded by depth
    and nodes), with their systems. For a user who may not read one, it is counted but
    not named."""
    dep = m.Deployment._meta.db_table
    edge = m.Dependency._meta.db_table
    system = m.System._meta.db_table
    model = m.AIModel._meta.db_table
    sql = f"""
        WITH RECURSIVE down(id, depth) AS (
            SELECT downstream_id, 1 FROM {edge} WHERE upstream_id = %s
            UNION
            SELECT e.downstream_id, d.depth + 1 FROM {edge} e
            JOIN down d ON e.upstream_id = d.id WHERE d.depth < %s
        )
        SELECT t.id, t.name, MIN(down.depth), t.environment, t.status, t.team_id,
               t.owner_id, am.owner_id, s.id, s.name
        FROM down JOIN {dep} t ON t.id = down.id
        JOIN {model} am ON am.id = t.model_id
        LEFT JOIN {system} s ON s.id = t.system_id
        WHERE t.id <> %s
        GROUP BY t.id, t.name, t.environment, t.status, t.team_id, t.owner_id,
                 am.owner_id, s.id, s.name
        ORDER BY MIN(down.depth), t.id
        LIMIT %s
    """  # noqa: S608 - table names from the models, values as parameters
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                deployment_id,
                DOWNSTREAM_MAX_DEPTH,
                deployment_id,
                DOWNSTREAM_MAX_NODES + 1,
            ],
        )
        rows = cursor.fetchall()
    truncated = len(rows) > DOWNSTREAM_MAX_NODES
    reads_all = user is None or permissions.reads_all(user)
    teams = frozenset() if reads_all else permissions.team_ids(user)
    deployments, systems, hidden = [], {}, 0
    statuses = dict(m.Deployment.Status.choices)
    for (
        pk,
        name,
        depth,
        env,
        status,
        team_id,
        owner_id,
        model_owner,
        sid,
        sname,
    ) in rows[:DOWNSTREAM_MAX_NODES]:
        readable = (
            reads_all
            or team_id in teams
            or (owner_id is not None and owner_id == user.pk)
            or (owner_id is None and model_owner == user.pk)
        )
        if not readable:
            hidden += 1
            continue
        deployments.append(
            {
                "id": pk,
                "name": name,
                "url": reverse("inventory:deployment_detail", args=[pk]),
                "depth": depth,
                "environment": env,
                "status": status,
                "status_label": statuses.get(status, status),
                "system": {"id": sid, "name": sname} if sid else None,
            }
        )
        if sid:
            systems[sid] = {
                "id": sid,
                "name": sname,
                "url": reverse("inventory:system_detail", args=[sid]),
            }
    return {
        "deployments": deployments,
        "systems": list(systems.values()),
        "hidden": hidden,
        "count": len(deployments) + hidden,
        "truncated": truncated,
        "max_depth": DOWNSTREAM_MAX_DEPTH,
        "max_nodes": DOWNSTREAM_MAX_NODES,
    }


def _last_withdrawal(
    deployment: m.Deployment,
    withdrawal: m.FieldChange | None,
    sources: dict[str, dict[str, Any]],
) -> dict[str, Any] | None:
    """The last change to withdrawn and how long calls went on after it (one query)."""
    if withdrawal is None:
        return None
    at = withdrawal.changed_at
    hour = at.replace(minute=0, second=0, microsecond=0)
    last = (
        m.UsageHour.objects.filter(deployment_id=deployment.pk, hour__gte=hour)
        .filter(calls__gt=0)
        .aggregate(last=Max("hour"))["last"]
    )
    end = last + dt.timedelta(hours=1) if last else None
    seconds = max(0.0, (end - at).total_seconds()) if end else 0.0
    return {
        "withdrawn_at": _iso(at),
        "by": _by(withdrawal, sources),
        "last_call_hour": _iso(last),
        "seconds": int(seconds),
        "display": _duration(seconds),
        "still_withdrawn": deployment.status == m.Deployment.Status.WITHDRAWN,
    }


def verdict(
    *,
    owner: dict[str, Any] | None,
    identities: Iterable[dict[str, Any]],
    window: dict[str, Any],
) -> tuple[str, list[str]]:
    """The readiness verdict and its reasons (rules in the module docstring)."""
    active = [i for i in identities if i["status"] == m.NonHumanIdentity.Status.ACTIVE]
    blocking, people = [], []
    if owner is None:
        blocking.append(NO_OWNER)
    for identity in active:
        if identity["revoker"] == "connector":
            continue
        if identity["owner"] is None:
            blocking.append(NOBODY_CAN_REVOKE.format(identity=identity["name"]))
        else:
            people.append(
                MANUAL_REVOKE.format(
                    identity=identity["name"],
                    who=_owner_phrase(identity["owner"]),
                )
            )
    if not window["set"]:
        people.append(NO_CHANGE_WINDOW)
    elif not window["readable"]:
        people.append(UNREADABLE_CHANGE_WINDOW.format(error=window["error"]))
    if blocking:
        return NOT_READY, blocking + people
    if people:
        return NEEDS_PEOPLE, people
    reasons = [ALL_REVOCABLE if active else NO_ACTIVE_IDENTITY]
    reasons.append(HAS_OWNER.format(owner=_person_label(owner)))
    reasons.append(HAS_CHANGE_WINDOW.format(window=window["describe"]))
    return READY, reasons


def _quarantine(deployment: m.Deployment) -> dict[str, Any]:
    platform = (deployment.platform or "").strip().lower()
    return {
        "platform": deployment.platform,
        "platform_locator": deployment.platform_locator,
        "method": QUARANTINE_METHODS.get(platform, QUARANTINE_UNKNOWN),
        "runproof": RUNPROOF_QUARANTINE,
        "status_url": reverse("governance:deployment_status", args=[deployment.pk]),
    }


def _withdraw(
    deployment: m.Deployment,
    *,
    now: dt.datetime,
    identities: list[dict[str, Any]],
    downstream: dict[str, Any] | None,
    last_withdrawal: dict[str, Any] | None,
    include_timing: bool = True,
) -> dict[str, Any]:
    owner = _person(deployment.owner)
    window = _change_window(deployment.change_window, now)
    plan = []
    for identity in identities:
        active = identity["status"] == m.NonHumanIdentity.Status.ACTIVE
        if not active:
            how = f"Nothing to do: already {identity['status_label'].lower()}."
        elif identity["revoker"] == "connector":
            how = (
                f"Runproof revokes it at its source ({identity['source']['name']}) "
                "from the identity's page (an administrator; audited)."
            )
        elif identity["owner"]:
            how = (
                f"A person must revoke it at {identity['provider'] or 'its provider'}: "
                f"{_owner_phrase(identity['owner'])}."
            )
        else:
            how = "Nobody can: no connector revokes it and it has no owner."
        plan.append(
            {
                "identity": {
                    "id": identity["id"],
                    "name": identity["name"],
                    "url": identity["url"],
                },
                "active": active,
                "revoker": identity["revoker"] if active else "none",
                "who": identity["owner"],
                "how": how,
            }
        )
    decided, reasons = verdict(owner=owner, identities=identities, window=window)
    answer: dict[str, Any] = {
        "plan": plan,
        "quarantine": _quarantine(deployment),
        "owner": owner,
        "inherited_owner": _person(deployment.inherited_owner),
        "team": _team(deployment.team),
        "change_window": window,
        "verdict": decided,
        "verdict_label": VERDICT_LABELS[decided],
        "reasons": reasons,
    }
    if include_timing:
        answer["downstream"] = downstream
        answer["last_withdrawal"] = last_withdrawal
        answer["time_to_withdraw"] = (
            last_withdrawal["display"] if last_withdrawal else NEVER_WITHDRAWN
        )
    answer["complete"] = decided != NOT_READY
    answer["gaps"] = reasons if decided == NOT_READY else []
    return answer


# ---------------------------------------------------------------------------
# The cards
# ---------------------------------------------------------------------------
def deployment_queryset() -> QuerySet[m.Deployment]:
    """Deployments with every join the card reads (one query for the row)."""
    return m.Deployment.objects.select_related(
        "model__baseline_version",
        "model__owner",
        "approved_version",
        "observed_version",
        "owner",
        "team",
        "system",
    )


def deployment_proof(
    deployment: m.Deployment, *, now: dt.datetime, user: User | None = None
) -> dict[str, Any]:
    """The deployment's proof card (seven queries, given a row of `deployment_queryset`).

    With `user`, downstream deployments they may not read are counted, not named."""
    sources = _sources()
    changes, withdrawal = _changes(deployment, sources)
    findings = _open_findings(Q(deployment_id=deployment.pk), user)
    bound = list(
        deployment.identities.select_related("owner", "team").order_by("name", "id")
    )
    readable = _reader(user)
    identities = [
        _identity(i, now=now, sources=sources, visible=readable(i.team_id, i.owner_id))
        for i in bound
    ]
    callers, truncated = _callers(deployment, now=now, readable=readable)
    running = _running(deployment, sources=sources, changes=changes, findings=findings)
    invoke = _invoke(identities, callers, truncated)
    withdraw = _withdraw(
        deployment,
        now=now,
        identities=identities,
        downstream=_downstream(deployment.pk, user),
        last_withdrawal=_last_withdrawal(deployment, withdrawal, sources),
    )
    proof = {
        "kind": "deployment",
        "generated_at": _iso(now),
        "subject": {
            "id": deployment.pk,
            "name": deployment.name,
            "url": deployment.get_absolute_url(),
            "proof_url": reverse("governance:deployment_proof", args=[deployment.pk]),
            "model": {
                "id": deployment.model_id,
                "name": deployment.model.name,
                "url": deployment.model.get_absolute_url(),
            },
            "system": {
                "id": deployment.system_id,
                "name": deployment.system.name,
                "url": deployment.system.get_absolute_url(),
            }
            if deployment.system_id
            else None,
            "team": _team(deployment.team),
            "risk_tier": deployment.risk_tier,
        },
        "running": running,
        "invoke": invoke,
        "withdraw": withdraw,
    }
    proof["complete"] = complete(proof)
    return json_safe(proof)


def complete(proof: dict[str, Any]) -> bool:
    """All three answers complete (module docstring): the running version known, an
    identity bound and every recent caller bound, a verdict other than not ready."""
    if proof.get("kind") == "model":
        return bool(proof["deployments"]) and all(
            d["complete"] for d in proof["deployments"]
        )
    return bool(
        proof["running"]["complete"]
        and proof["invoke"]["complete"]
        and proof["withdraw"]["complete"]
    )


def _summary(
    deployment: m.Deployment, *, now: dt.datetime, identities: list[dict[str, Any]]
) -> dict[str, Any]:
    """One deployment's three answers in brief, for the model card."""
    withdraw = _withdraw(
        deployment,
        now=now,
        identities=identities,
        downstream=None,
        last_withdrawal=None,
        include_timing=False,
    )
    running_version = deployment.running_version
    baseline = deployment.baseline_version
    running_ok = bool(running_version)
    invoke_ok = bool(identities) and not deployment.proof_unbound_callers
    return {
        "id": deployment.pk,
        "name": deployment.name,
        "url": deployment.get_absolute_url(),
        "proof_url": reverse("governance:deployment_proof", args=[deployment.pk]),
        "environment": deployment.environment,
        "status": deployment.status,
        "status_label": deployment.get_status_display(),
        "risk_tier": deployment.risk_tier,
        "running": {
            "version": running_version,
            "registered": deployment.running_version_registered,
            "baseline": baseline.version if baseline else "",
            "matches_baseline": (deployment.observed_version_id == baseline.pk)
            if baseline and running_version
            else None,
            "last_seen_at": _iso(deployment.last_seen_at),
            "complete": running_ok,
        },
        "invoke": {
            "identities": len(identities),
            "third_party": sum(1 for i in identities if i["third_party"]),
            "calls": deployment.proof_calls,
            "unbound_callers": bool(deployment.proof_unbound_callers),
            "complete": invoke_ok,
        },
        "withdraw": {
            "verdict": withdraw["verdict"],
            "verdict_label": withdraw["verdict_label"],
            "reasons": withdraw["reasons"],
        },
        "complete": running_ok and invoke_ok and withdraw["complete"],
    }


def model_queryset() -> QuerySet[m.AIModel]:
    return m.AIModel.objects.select_related("baseline_version", "owner", "team")


def model_proof(
    model: m.AIModel,
    *,
    now: dt.datetime,
    user: User | None = None,
) -> dict[str, Any]:
    """The model's proof card: versions and approval, each deployment's three answers in
    brief with its verdict, open findings, the tier (five queries). With `user`, only the
    deployments they may read."""
    sources = _sources()
    versions = list(
        model.versions.select_related("approved_by").order_by("-created_at", "-id")[
            :100
        ]
    )
    deployments_qs = deployment_queryset().filter(model=model)
    if user is not None:
        deployments_qs = permissions.scope(deployments_qs, user)
    deployments = list(
        deployments_qs.annotate(**proof_annotations(now)).order_by("name", "id")[
            : MODEL_DEPLOYMENT_LIMIT + 1
        ]
    )
    truncated = len(deployments) > MODEL_DEPLOYMENT_LIMIT
    deployments = deployments[:MODEL_DEPLOYMENT_LIMIT]
    bound: dict[int, list[dict[str, Any]]] = defaultdict(list)
    through = m.NonHumanIdentity.deployments.through.objects.filter(
        deployment_id__in=[d.pk for d in deployments]
    ).select_related("nonhumanidentity__owner", "nonhumanidentity__team")
    readable = _reader(user)
    for row in through.order_by("nonhumanidentity__name", "nonhumanidentity_id"):
        identity = row.nonhumanidentity
        bound[row.deployment_id].append(
            _identity(
                identity,
                now=now,
                sources=sources,
                visible=readable(identity.team_id, identity.owner_id),
            )
        )
    summaries = [
        _summary(d, now=now, identities=bound.get(d.pk, [])) for d in deployments
    ]
    findings = _open_findings(
        Q(model_id=model.pk) | Q(deployment_id__in=[d.pk for d in deployments]), user
    )
    baseline = model.baseline_version if model.baseline_version_id else None
    proof = {
        "kind": "model",
        "generated_at": _iso(now),
        "subject": {
            "id": model.pk,
            "name": model.name,
            "url": model.get_absolute_url(),
            "proof_url": reverse("governance:aimodel_proof", args=[model.pk]),
            "provider": model.provider,
            "lifecycle": model.lifecycle,
            "lifecycle_label": model.get_lifecycle_display(),
            "owner": _person(model.owner),
            "team": _team(model.team),
            "risk_tier": model.risk_tier,
            "source": _source(model.source, sources),
        },
        "baseline": _version(baseline),
        "versions": [
            {
                **_version(v),
                "approved_by": _person(v.approved_by),
                "created_at": _iso(v.created_at),
                "is_baseline": v.pk == model.baseline_version_id,
            }
            for v in versions
        ],
        "deployments": summaries,
        "deployments_truncated": truncated,
        "verdicts": {
            key: sum(1 for s in summaries if s["withdraw"]["verdict"] == key)
            for key in VERDICT_LABELS
        },
        "findings": findings,
    }
    proof["complete"] = complete(proof)
    return json_safe(proof)


def completeness_share(
    user: User, *, now: dt.datetime | None = None
) -> tuple[int, int]:
    """(complete, total) over the active production deployments the user may read: one
    query (`complete_q()`, the SQL form of `complete()`)."""
    from django.utils import timezone

    now = now or timezone.now()
    queryset = permissions.scope(
        m.Deployment.objects.filter(
            environment=m.Deployment.Environment.PRODUCTION,
            status=m.Deployment.Status.ACTIVE,
        ),
        user,
    ).annotate(**proof_annotations(now, calls=False))
    counts = queryset.aggregate(
        total=Count("id"), complete=Count("id", filter=complete_q())
    )
    return counts["complete"], counts["total"]
