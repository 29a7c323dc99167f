"""Detectors whose subject is a deployment."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Max, Q, QuerySet, Sum
from django.db.models.functions import Trim

from audit.models import AuditEvent
from governance.detection import Condition, severity_for
from governance.models import Finding
from inventory import change_window, selectors
from inventory import models as im
from inventory.querysets import BASELINE, deployment_unregistered_q
from sources import models as sm

Kind = Finding.Kind
DEPLOYMENT = Finding.Subject.DEPLOYMENT
MODEL = Finding.Subject.MODEL


def deployments_in(
    ids: Collection[int] | None, id_range: tuple[int, int] | None
) -> QuerySet[im.Deployment]:
    """The deployments a scan looks at: a change scope's ids or a chunk of a full run."""
    qs = im.Deployment.objects.all()
    if ids is not None:
        return qs.filter(pk__in=list(ids))
    if id_range is not None:
        return qs.filter(pk__gte=id_range[0], pk__lt=id_range[1])
    return qs


def condition(
    kind: str, d: im.Deployment, title: str, facts: dict, **extra
) -> Condition:
    """A condition on deployment `d` (its model, team, owner and tier filled in)."""
    return Condition(
        kind=kind,
        subject_type=DEPLOYMENT,
        subject_id=d.pk,
        title=title,
        facts=facts,
        deployment_id=d.pk,
        model_id=d.model_id,
        team_id=d.team_id,
        owner_id=d.owner_id,
        tier=d.risk_tier,
        source=d.source,
        **extra,
    )


class MissingOwner:
    """An active deployment with no accountable person."""

    kind = Kind.MISSING_OWNER
    subject_type = DEPLOYMENT

    def scan(
        self,
        *,
        now: datetime,
        ids: Collection[int] | None,
        id_range: tuple[int, int] | None,
    ) -> Iterator[Condition]:
        rows = (
            deployments_in(ids, id_range)
            .filter(status=im.Deployment.Status.ACTIVE, owner__isnull=True)
            .only(
                "pk",
                "name",
                "model_id",
                "team_id",
                "owner_id",
                "risk_tier",
                "source",
                "first_seen_at",
            )
        )
        for d in rows:
            yield condition(
                self.kind,
                d,
                f"{d.name} has no accountable owner",
                {"owner": None, "team_id": d.team_id},
                records=[
                    {
                        "source": d.source,
                        "what": "first seen",
                        "at": d.first_seen_at.isoformat(),
                    }
                ],
            )


# ---------------------------------------------------------------------------
# Shared reads: a few queries per chunk, whatever its size
# ---------------------------------------------------------------------------
ROW_FIELDS = ("id", "name", "model_id", "team_id", "owner_id", "risk_tier", "source")
DEPLOYMENT_LABEL = im.Deployment._meta.label_lower
MODEL_LABEL = im.AIModel._meta.label_lower
ACTIVE = im.Deployment.Status.ACTIVE
WITHDRAWN = im.Deployment.Status.WITHDRAWN
PRODUCTION = im.Deployment.Environment.PRODUCTION
Lifecycle = im.AIModel.Lifecycle
# Kinds of source that are registries: a model they bring in is registered. A model
# typed in by hand is registered in Runproof itself. Every other kind (a runtime, traces,
# CI/CD events) only observes models it finds answering.
REGISTRY_KINDS = frozenset({sm.DataSource.Kind.MLFLOW.value})
# Pull kinds that list deployments: one they still list (not gone) was reported by their
# last successful sync, even when the row was not rewritten.
RUNTIME_PULL_KINDS = frozenset({sm.DataSource.Kind.KUBERNETES.value})
# Versions the runtime reported, as the history names them (one row holds both columns).
VERSION_FIELDS = ("observed_version", "observed_version_label")
MAX_LISTED = 20


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def source_kind(label: str) -> str:
    """The kind of source a `source` label names ("mlflow:3" -> "mlflow")."""
    return label.split(":", 1)[0] if ":" in label else label


def registry_q(prefix: str = "") -> Q:
    """Rows brought in by a registry or typed in by hand (`source` at `prefix`)."""
    q = Q(**{f"{prefix}source": im.MANUAL_SOURCE})
    for kind in sorted(REGISTRY_KINDS):
        q |= Q(**{f"{prefix}source__startswith": f"{kind}:"})
    return q


def row_condition(
    kind: str, row: dict[str, Any], title: str, facts: dict, **extra: Any
) -> Condition:
    """A condition on the deployment of a `values()` row (ROW_FIELDS)."""
    return Condition(
        kind=kind,
        subject_type=DEPLOYMENT,
        subject_id=row["id"],
        title=title,
        facts=facts,
        deployment_id=row["id"],
        model_id=row["model_id"],
        team_id=row["team_id"],
        owner_id=row["owner_id"],
        tier=row["risk_tier"],
        source=row["source"],
        **extra,
    )


def latest_changes(
    object_type: str, ids: Collection[int], fields: Collection[str]
) -> dict[tuple[int, str], dict[str, Any]]:
    """The latest history row of each (object, field) among `ids` (two queries, on the
    (object, field, -id) index)."""
    if not ids:
        return {}
    last_ids = (
        im.FieldChange.objects.filter(
            object_type=object_type, object_id__in=list(ids), field__in=list(fields)
        )
        .values("object_id", "field")
        .annotate(last=Max("id"))
        .values_list("last", flat=True)
    )
    rows = im.FieldChange.objects.filter(pk__in=list(last_ids)).values(
        "id", "object_id", "field", "after", "changed_at", "source", "actor_label"
    )
    return {(r["object_id"], r["field"]): r for r in rows}


def change_record(change: dict[str, Any], what: str) -> dict[str, Any]:
    return {
        "source": change["source"] or change["actor_label"] or "by hand",
        "what": what,
        "at": _iso(change["changed_at"]),
        "change_id": change["id"],
    }


def observed_record(
    row: dict[str, Any], changes: dict[tuple[int, str], dict[str, Any]]
) -> dict[str, Any]:
    """When the runtime reported the version it runs: the history, else first seen."""
    found = [
        changes[(row["id"], f)] for f in VERSION_FIELDS if (row["id"], f) in changes
    ]
    if found:
        latest = max(found, key=lambda c: c["id"])
        return change_record(latest, "reported the running version")
    return {
        "source": row["source"],
        "what": "first seen running it",
        "at": _iso(row["first_seen_at"]),
    }


def _ids_q(
    field: str, ids: Collection[int] | None, id_range: tuple[int, int] | None
) -> Q:
    if ids is not None:
        return Q(**{f"{field}__in": list(ids)})
    if id_range is not None:
        return Q(**{f"{field}__gte": id_range[0], f"{field}__lt": id_range[1]})
    return Q()


# ---------------------------------------------------------------------------
# What runs against what was approved
# ---------------------------------------------------------------------------
class UnapprovedVersion:
    """An active deployment runs a version that is not approved now (pending, rejected,
    deprecated, retired), or one the registry does not have at all."""

    kind = Kind.UNAPPROVED_VERSION
    subject_type = DEPLOYMENT

    def scan(self, *, now, ids, id_range) -> Iterator[Condition]:
        Approval = im.ModelVersion.Approval
        rows = list(
            deployments_in(ids, id_range)
            .filter(status=ACTIVE)
            .filter(
                (
                    Q(observed_version__isnull=False)
                    & ~Q(observed_version__approval=Approval.APPROVED)
                )
                | deployment_unregistered_q()
            )
            .values(
                *ROW_FIELDS,
                "first_seen_at",
                "observed_version_id",
                "observed_version_label",
                "observed_version__version",
                "observed_version__approval",
                "observed_version__source",
                "observed_version__updated_at",
            )
        )
        changes = latest_changes(
            DEPLOYMENT_LABEL, [r["id"] for r in rows], VERSION_FIELDS
        )
        for r in rows:
            version = r["observed_version__version"] or r["observed_version_label"]
            approval = r["observed_version__approval"] or "unregistered"
            records = [observed_record(r, changes)]
            if r["observed_version_id"]:
                records.append(
                    {
                        "source": r["observed_version__source"],
                        "what": f"version {version} is {approval}",
                        "at": _iso(r["observed_version__updated_at"]),
                    }
                )
            yield row_condition(
                self.kind,
                r,
                f"{r['name']} runs version {version}, which is {approval}",
                {
                    "observed_version_id": r["observed_version_id"],
                    "version": version,
                    "approval": approval,
                },
                records=records,
            )


class VersionDrift:
    """An active deployment runs another version than its baseline (the committee's pin,
    else its model's baseline: `Deployment.objects.drifting()`)."""

    kind = Kind.VERSION_DRIFT
    subject_type = DEPLOYMENT

    def scan(self, *, now, ids, id_range) -> Iterator[Condition]:
        rows = list(
            deployments_in(ids, id_range)
            .filter(status=ACTIVE)
            .drifting()
            .annotate(baseline_id=BASELINE)
            .values(
                *ROW_FIELDS,
                "first_seen_at",
                "approved_version_id",
                "baseline_id",
                "observed_version_id",
                "observed_version_label",
                "observed_version__version",
            )
        )
        if not rows:
            return
        baselines = dict(
            im.ModelVersion.objects.filter(
                pk__in={r["baseline_id"] for r in rows}
            ).values_list("pk", "version")
        )
        changes = latest_changes(
            DEPLOYMENT_LABEL, [r["id"] for r in rows], VERSION_FIELDS
        )
        for r in rows:
            running = (
                r["observed_version__version"] or r["observed_version_label"] or None
            )
            baseline = baselines.get(r["baseline_id"], "")
            yield row_condition(
                self.kind,
                r,
                f"{r['name']} runs {running or 'no known version'}, its baseline is "
                f"{baseline}",
                {
                    "baseline_version_id": r["baseline_id"],
                    "baseline_version": baseline,
                    "baseline_kind": "pin" if r["approved_version_id"] else "model",
                    "observed_version_id": r["observed_version_id"],
                    "observed_version": running,
                },
                records=[observed_record(r, changes)],
            )


# ---------------------------------------------------------------------------
# Retired, withdrawn and deprecated things still answering
# ---------------------------------------------------------------------------
def _audit_times(
    object_type: str, ids: Collection[int], action: str
) -> dict[int, datetime]:
    """The latest time of `action` on each object (the audit trail, one query)."""
    if not ids:
        return {}
    rows = (
        AuditEvent.objects.filter(
            object_type=object_type,
            object_id__in=[str(pk) for pk in ids],
            action=action,
        )
        .values("object_id")
        .annotate(at=Max("occurred_at"))
        .values_list("object_id", "at")
    )
    return {int(pk): at for pk, at in rows}


def _source_successes(labels: Collection[str]) -> dict[str, datetime]:
    """The last successful sync of each pull runtime source named by `labels`."""
    pks = {}
    for label in labels:
        kind, _, pk = label.partition(":")
        if kind in RUNTIME_PULL_KINDS and pk.isdigit():
            pks[int(pk)] = label
    if not pks:
        return {}
    return {
        pks[pk]: at
        for pk, at in sm.DataSource.objects.filter(
            pk__in=list(pks), last_success_at__isnull=False
        ).values_list("pk", "last_success_at")
    }


def _calls_since(since: dict[int, datetime]) -> dict[int, tuple[int, datetime | None]]:
    """Calls in the usage hours from each deployment's time on (from the hour that holds
    it), and the latest such hour: one aggregate query. On PostgreSQL each deployment's
    time goes with it (two array parameters), so only a total per deployment comes back:
    reading every (deployment, hour) sum to add them up in Python cost about 5 s of a
    full run at 5,000 deployments with 30 days of usage."""
    if not since:
        return {}
    if connection.vendor == "postgresql":
        return _calls_since_sql(since)
    earliest = min(since.values()).replace(minute=0, second=0, microsecond=0)
    out: dict[int, list] = {}
    for dep, hour, calls in (
        im.UsageHour.objects.filter(deployment_id__in=list(since), hour__gte=earliest)
        .values("deployment_id", "hour")
        .annotate(n=Sum("calls"))
        .values_list("deployment_id", "hour", "n")
    ):
        if hour < since[dep].replace(minute=0, second=0, microsecond=0):
            continue
        total, last = out.setdefault(dep, [0, None])
        out[dep] = [total + (calls or 0), hour if last is None or hour > last else last]
    return {dep: (v[0], v[1]) for dep, v in out.items()}


def _calls_since_sql(
    since: dict[int, datetime],
) -> dict[int, tuple[int, datetime | None]]:
    """`_calls_since` on PostgreSQL: each deployment's hours from the hour that holds its
    time, summed in SQL."""
    opts = im.UsageHour._meta
    qn = connection.ops.quote_name
    dep_col = opts.get_field("deployment").column
    hour_col = opts.get_field("hour").column
    calls_col = opts.get_field("calls").column
    dep_type = opts.get_field("deployment").target_field.db_type(connection)
    # Only quoted names and types from the model's meta are formatted in; the
    # deployments and their times are array parameters.
    sql = (
        f"SELECT u.{qn(dep_col)}, COALESCE(SUM(u.{qn(calls_col)}), 0), "  # noqa: S608
        f"MAX(u.{qn(hour_col)}) FROM {qn(opts.db_table)} u "
        f"JOIN unnest(%s::{dep_type}[], %s::timestamptz[]) AS s(dep, since) "
        f"ON u.{qn(dep_col)} = s.dep "
        f"AND u.{qn(hour_col)} >= s.since "
        f"GROUP BY u.{qn(dep_col)}"
    )
    deps = list(since)
    starts = [since[d].replace(minute=0, second=0, microsecond=0) for d in deps]
    with connection.cursor() as cursor:
        cursor.execute(sql, [deps, starts])
        return {dep: (int(total), last) for dep, total, last in cursor.fetchall()}


class ShadowDeployment:
    """A retired model's deployment, or a withdrawn deployment, still answers calls after
    its retirement or withdrawal, or a runtime source still reports it since then.

    The time is the latest retirement of the model (its `aimodel.retire` audit event)
    and the latest withdrawal of the deployment (the status history, else its
    `deployment.withdraw` event), else when the row last changed; the earlier of the two
    counts when both hold."""

    kind = Kind.SHADOW_DEPLOYMENT
    subject_type = DEPLOYMENT

    def scan(self, *, now, ids, id_range) -> Iterator[Condition]:
        rows = list(
            deployments_in(ids, id_range)
            .filter(Q(model__lifecycle=Lifecycle.RETIRED) | Q(status=WITHDRAWN))
            .values(
                *ROW_FIELDS,
                "status",
                "updated_at",
                "last_call_at",
                "last_seen_at",
                "seen_at",
                "gone_at",
                "model__lifecycle",
                "model__updated_at",
                "model__name",
            )
        )
        if not rows:
            return
        retired = {
            r["model_id"] for r in rows if r["model__lifecycle"] == Lifecycle.RETIRED
        }
        withdrawn = [r["id"] for r in rows if r["status"] == WITHDRAWN]
        retired_at = _audit_times(MODEL_LABEL, retired, "aimodel.retire")
        status_changes = latest_changes(DEPLOYMENT_LABEL, withdrawn, ("status",))
        withdraw_events = _audit_times(
            DEPLOYMENT_LABEL, withdrawn, "deployment.withdraw"
        )
        successes = _source_successes({r["source"] for r in rows})

        ended: dict[int, list[dict[str, Any]]] = {}
        since: dict[int, datetime] = {}
        for r in rows:
            ends = []
            if r["model__lifecycle"] == Lifecycle.RETIRED:
                at = retired_at.get(r["model_id"]) or r["model__updated_at"]
                ends.append(
                    {
                        "why": "model_retired",
                        "at": at,
                        "source": "audit" if r["model_id"] in retired_at else "model",
                    }
                )
            if r["status"] == WITHDRAWN:
                change = status_changes.get((r["id"], "status"))
                if change is not None and change["after"] == WITHDRAWN:
                    at, src = (
                        change["changed_at"],
                        change["source"] or change["actor_label"] or "by hand",
                    )
                elif r["id"] in withdraw_events:
                    at, src = withdraw_events[r["id"]], "audit"
                else:
                    at, src = r["updated_at"], "deployment"
                ends.append({"why": "deployment_withdrawn", "at": at, "source": src})
            ended[r["id"]] = ends
            since[r["id"]] = min(e["at"] for e in ends)

        answering = {
            r["id"]: since[r["id"]]
            for r in rows
            if r["last_call_at"] and r["last_call_at"] > since[r["id"]]
        }
        calls = _calls_since(answering)
        for r in rows:
            t = since[r["id"]]
            reported: list[dict[str, Any]] = []
            if r["gone_at"] is None and r["source"] != im.MANUAL_SOURCE:
                seen = max(
                    (x for x in (r["seen_at"], r["last_seen_at"]) if x), default=None
                )
                listed = successes.get(r["source"])
                if seen and seen > t:
                    reported.append(
                        {"source": r["source"], "what": "reported it", "at": _iso(seen)}
                    )
                elif listed and listed > t:
                    reported.append(
                        {
                            "source": r["source"],
                            "what": "still lists it (last sync)",
                            "at": _iso(listed),
                        }
                    )
            is_answering = r["id"] in answering
            if not (is_answering or reported):
                continue
            records = [
                {
                    "source": e["source"],
                    "what": e["why"].replace("_", " "),
                    "at": _iso(e["at"]),
                }
                for e in ended[r["id"]]
            ]
            if is_answering:
                n, last_hour = calls.get(r["id"], (0, None))
                records.append(
                    {
                        "source": "usage",
                        "what": f"{n} calls since then",
                        "calls": n,
                        "at": _iso(r["last_call_at"]),
                        "last_hour": _iso(last_hour),
                    }
                )
            records.extend(reported)
            why = sorted(e["why"] for e in ended[r["id"]])
            what = "retired model" if "model_retired" in why else "withdrawn deployment"
            yield row_condition(
                self.kind,
                r,
                f"{r['name']} ({what}) still "
                + ("answers calls" if is_answering else "is reported by a runtime"),
                {
                    "why": why,
                    "answering": is_answering,
                    "reported_by": sorted({x["source"] for x in reported}),
                },
                records=records,
            )


class DeprecatedInUse:
    """An active deployment of a deprecated model answered calls in the last hours
    (RUNPROOF_DETECTION_DEPRECATED_HOURS, 24): normal during a migration, a problem when
    it lasts. Low severity; one step higher once the model has been deprecated longer
    than RUNPROOF_DETECTION_DEPRECATED_GRACE_DAYS (14) (its `aimodel.deprecate` audit
    event, else when the model last changed)."""

    kind = Kind.DEPRECATED_IN_USE
    subject_type = DEPLOYMENT

    def scan(self, *, now, ids, id_range) -> Iterator[Condition]:
        window = timedelta(hours=settings.DETECTION_DEPRECATED_HOURS)
        rows = list(
            deployments_in(ids, id_range)
            .filter(
                status=ACTIVE,
                model__lifecycle=Lifecycle.DEPRECATED,
                last_call_at__gte=now - window,
            )
            .values(*ROW_FIELDS, "last_call_at", "model__name", "model__updated_at")
        )
        calls = _calls_since({r["id"]: now - window for r in rows})
        deprecated_at = _audit_times(
            MODEL_LABEL, {r["model_id"] for r in rows}, "aimodel.deprecate"
        )
        grace = timedelta(days=settings.DETECTION_DEPRECATED_GRACE_DAYS)
        callers: dict[int, set[str]] = {}
        if rows:
            for dep, caller in (
                im.UsageHour.objects.filter(
                    deployment_id__in=[r["id"] for r in rows],
                    hour__gte=(now - window).replace(minute=0, second=0, microsecond=0),
                )
                .values_list("deployment_id", "caller_service")
                .distinct()
            ):
                callers.setdefault(dep, set()).add(caller or "unknown")
        for r in rows:
            n, _ = calls.get(r["id"], (0, None))
            since = deprecated_at.get(r["model_id"]) or r["model__updated_at"]
            lasting = now - since > grace
            base = severity_for(self.kind, r["risk_tier"])
            yield row_condition(
                self.kind,
                r,
                f"{r['name']} still answers for the deprecated model {r['model__name']}",
                {
                    "model_id": r["model_id"],
                    "lifecycle": Lifecycle.DEPRECATED.value,
                    "callers": sorted(callers.get(r["id"], ())),
                    "beyond_grace": lasting,
                },
                records=[
                    {
                        "source": "audit"
                        if r["model_id"] in deprecated_at
                        else "model",
                        "what": "model deprecated",
                        "at": _iso(since),
                    },
                    {
                        "source": "usage",
                        "what": f"{n} calls in the last {settings.DETECTION_DEPRECATED_HOURS} h",
                        "calls": n,
                        "at": _iso(r["last_call_at"]),
                    },
                ],
                severity=min(Finding.Severity.CRITICAL, base + 1) if lasting else None,
            )


# ---------------------------------------------------------------------------
# Models answering that no registry knows
# ---------------------------------------------------------------------------
class UnregisteredModel:
    """A model answering at runtime (a deployment called or seen within the policy's
    silent hours) that no registry brought in: trace discovery, a runtime sync or a CI/CD
    event created it, and no registered model (a registry's, or typed in) has its name."""

    kind = Kind.UNREGISTERED_MODEL
    subject_type = MODEL

    def scan(self, *, now, ids, id_range) -> Iterator[Condition]:
        models_ = list(
            im.AIModel.objects.filter(_ids_q("pk", ids, id_range))
            .exclude(registry_q())
            .exclude(lifecycle=Lifecycle.RETIRED)
            .values(
                "id", "name", "team_id", "owner_id", "risk_tier", "source", "created_at"
            )
        )
        if not models_:
            return
        cutoff = now - timedelta(hours=selectors.policy_current().silent_after_hours)
        by_model: dict[int, list[dict[str, Any]]] = {}
        for d in (
            im.Deployment.objects.filter(model_id__in=[r["id"] for r in models_])
            .filter(
                Q(last_call_at__gte=cutoff)
                | Q(last_seen_at__gte=cutoff)
                | Q(seen_at__gte=cutoff)
            )
            .order_by("model_id", "id")
            .values(
                "id", "model_id", "source", "last_call_at", "last_seen_at", "seen_at"
            )
        ):
            by_model.setdefault(d["model_id"], []).append(d)
        registered = set(
            im.AIModel.objects.filter(
                registry_q(),
                name__in={r["name"] for r in models_ if r["id"] in by_model},
            ).values_list("name", flat=True)
        )
        for r in models_:
            deps = by_model.get(r["id"])
            if not deps or r["name"] in registered:
                continue
            records = [
                {
                    "source": r["source"],
                    "what": "model first observed",
                    "at": _iso(r["created_at"]),
                }
            ]
            for d in deps[:MAX_LISTED]:
                last = max(
                    x for x in (d["last_call_at"], d["last_seen_at"], d["seen_at"]) if x
                )
                records.append(
                    {
                        "source": d["source"],
                        "what": f"deployment {d['id']} answering",
                        "deployment_id": d["id"],
                        "at": _iso(last),
                        "last_call_at": _iso(d["last_call_at"]),
                    }
                )
            yield Condition(
                kind=self.kind,
                subject_type=MODEL,
                subject_id=r["id"],
                title=f"{r['name']} answers at runtime but no registry knows it",
                facts={
                    "model": r["name"],
                    "source": r["source"],
                    "source_kind": source_kind(r["source"]),
                    "deployments": [d["id"] for d in deps],
                },
                records=records,
                model_id=r["id"],
                team_id=r["team_id"],
                owner_id=r["owner_id"],
                tier=r["risk_tier"] or 4,
                source=r["source"],
            )


# ---------------------------------------------------------------------------
# What a production deployment must say about itself
# ---------------------------------------------------------------------------
class MissingPurpose:
    """An active production deployment with no business purpose."""

    kind = Kind.MISSING_PURPOSE
    subject_type = DEPLOYMENT

    def scan(self, *, now, ids, id_range) -> Iterator[Condition]:
        rows = (
            deployments_in(ids, id_range)
            .filter(status=ACTIVE, environment=PRODUCTION)
            .annotate(purpose=Trim("business_purpose"))
            .filter(purpose="")
            .values(*ROW_FIELDS, "first_seen_at")
        )
        for r in rows:
            yield row_condition(
                self.kind,
                r,
                f"{r['name']} runs in production with no business purpose",
                {"business_purpose": "", "environment": PRODUCTION},
                records=[
                    {
                        "source": r["source"],
                        "what": "first seen",
                        "at": _iso(r["first_seen_at"]),
                    }
                ],
            )


class MissingChangeWindow:
    """An active production deployment whose change window is empty, or not a schedule
    `inventory.change_window` can read (the facts say which, and why)."""

    kind = Kind.MISSING_CHANGE_WINDOW
    subject_type = DEPLOYMENT

    def scan(self, *, now, ids, id_range) -> Iterator[Condition]:
        rows = (
            deployments_in(ids, id_range)
            .filter(status=ACTIVE, environment=PRODUCTION)
            .values(*ROW_FIELDS, "first_seen_at", "change_window")
        )
        verdicts: dict[str, str | None] = {}
        for r in rows:
            text = r["change_window"] or ""
            if text not in verdicts:
                try:
                    change_window.parse(text)
                    verdicts[text] = None
                except change_window.ChangeWindowError as exc:
                    verdicts[text] = str(exc)
            error = verdicts[text]
            if error is None:
                continue
            empty = not text.partition(";")[0].strip()
            yield row_condition(
                self.kind,
                r,
                f"{r['name']} runs in production with "
                + (
                    "no change window"
                    if empty
                    else "a change window that is not a schedule"
                ),
                {
                    "change_window": text,
                    "state": "empty" if empty else "not_machine_readable",
                    "error": error,
                },
                records=[
                    {
                        "source": r["source"],
                        "what": "first seen",
                        "at": _iso(r["first_seen_at"]),
                    }
                ],
            )


class ChangeOutsideWindow:
    """A source recorded a new observed version or endpoint of a deployment, within the
    last RUNPROOF_DETECTION_CHANGE_DAYS (30), at a time outside its change window. It
    resolves when those changes age out. A window that cannot be read is the missing
    change window's finding, not this one."""

    kind = Kind.CHANGE_OUTSIDE_WINDOW
    subject_type = DEPLOYMENT
    fields = ("observed_version", "observed_version_label", "endpoint")

    def scan(self, *, now, ids, id_range) -> Iterator[Condition]:
        cutoff = now - timedelta(days=settings.DETECTION_CHANGE_DAYS)
        changes: dict[int, list[dict[str, Any]]] = {}
        for c in (
            im.FieldChange.objects.filter(
                _ids_q("object_id", ids, id_range),
                object_type=DEPLOYMENT_LABEL,
                field__in=self.fields,
                changed_at__gte=cutoff,
                changed_at__lte=now,
            )
            .exclude(source="")
            .order_by("object_id", "changed_at", "id")
            .values(
                "id",
                "object_id",
                "field",
                "after",
                "changed_at",
                "source",
                "actor_label",
            )
        ):
            changes.setdefault(c["object_id"], []).append(c)
        if not changes:
            return
        rows = im.Deployment.objects.filter(pk__in=list(changes)).values(
            *ROW_FIELDS, "change_window"
        )
        schedules: dict[str, change_window.Schedule | None] = {}
        for r in rows:
            text = r["change_window"] or ""
            if text not in schedules:
                schedules[text] = change_window.parse_or_none(text)
            schedule = schedules[text]
            if schedule is None:
                continue
            outside = [
                c for c in changes[r["id"]] if not schedule.contains(c["changed_at"])
            ]
            if not outside:
                continue
            outside = outside[-MAX_LISTED:]
            yield row_condition(
                self.kind,
                r,
                f"{r['name']} changed outside its change window ({schedule.describe()})",
                {
                    "change_window": schedule.describe(),
                    "changes": [
                        {"id": c["id"], "field": c["field"], "after": c["after"]}
                        for c in outside
                    ],
                },
                records=[
                    change_record(c, f"{c['field'].replace('_', ' ')} changed")
                    for c in outside
                ],
            )


# ---------------------------------------------------------------------------
# The running endpoint and dependencies against their approved state
# ---------------------------------------------------------------------------
def _approved_rows(ids, id_range) -> list[dict[str, Any]]:
    return list(
        deployments_in(ids, id_range)
        .filter(approved_state__isnull=False)
        .exclude(status=WITHDRAWN)
        .values(
            *ROW_FIELDS,
            "endpoint",
            "approved_state__endpoint",
            "approved_state__upstream_ids",
            "approved_state__downstream_ids",
            "approved_state__approved_at",
            "approved_state__approved_by__username",
        )
    )


def _approval_record(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "source": r["approved_state__approved_by__username"] or "committee",
        "what": "approved the running state",
        "at": _iso(r["approved_state__approved_at"]),
    }


class EndpointDrift:
    """A deployment answers at another endpoint than the one approved with its state."""

    kind = Kind.ENDPOINT_DRIFT
    subject_type = DEPLOYMENT

    def scan(self, *, now, ids, id_range) -> Iterator[Condition]:
        rows = [
            r
            for r in _approved_rows(ids, id_range)
            if r["endpoint"] != r["approved_state__endpoint"]
        ]
        changes = latest_changes(
            DEPLOYMENT_LABEL, [r["id"] for r in rows], ("endpoint",)
        )
        for r in rows:
            records = [_approval_record(r)]
            if (r["id"], "endpoint") in changes:
                records.append(
                    change_record(changes[(r["id"], "endpoint")], "endpoint changed")
                )
            yield row_condition(
                self.kind,
                r,
                f"{r['name']} answers at {r['endpoint'] or 'no endpoint'}, not the approved "
                f"{r['approved_state__endpoint'] or 'no endpoint'}",
                {
                    "approved_endpoint": r["approved_state__endpoint"],
                    "endpoint": r["endpoint"],
                },
                records=records,
            )


class DependencyDrift:
    """A deployment's upstream or downstream deployments differ from the approved ones."""

    kind = Kind.DEPENDENCY_DRIFT
    subject_type = DEPLOYMENT

    def scan(self, *, now, ids, id_range) -> Iterator[Condition]:
        from governance.approved_state import current_edges

        rows = _approved_rows(ids, id_range)
        edges = current_edges([r["id"] for r in rows])
        drifting = []
        for r in rows:
            ups, downs = edges[r["id"]]
            old_up = set(r["approved_state__upstream_ids"] or [])
            old_down = set(r["approved_state__downstream_ids"] or [])
            facts = {
                "upstream_added": sorted(set(ups) - old_up),
                "upstream_removed": sorted(old_up - set(ups)),
                "downstream_added": sorted(set(downs) - old_down),
                "downstream_removed": sorted(old_down - set(downs)),
            }
            if any(facts.values()):
                drifting.append((r, facts))
        changes = latest_changes(
            DEPLOYMENT_LABEL, [r["id"] for r, _ in drifting], ("dependencies",)
        )
        for r, facts in drifting:
            records = [_approval_record(r)]
            if (r["id"], "dependencies") in changes:
                records.append(
                    change_record(
                        changes[(r["id"], "dependencies")], "dependencies changed"
                    )
                )
            moved = sum(len(v) for v in facts.values())
            yield row_condition(
                self.kind,
                r,
                f"{r['name']}: {moved} dependenc{'y' if moved == 1 else 'ies'} differ from "
                "the approved state",
                facts,
                records=records,
            )


DETECTORS = [
    MissingOwner(),
    UnapprovedVersion(),
    VersionDrift(),
    ShadowDeployment(),
    DeprecatedInUse(),
    UnregisteredModel(),
    MissingPurpose(),
    MissingChangeWindow(),
    ChangeOutsideWindow(),
    EndpointDrift(),
    DependencyDrift(),
]
