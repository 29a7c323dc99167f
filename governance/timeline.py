"""The incident timeline: what happened to a deployment, a model or an identity, on one
time axis (registry events, runtime observations, calls, credential events, findings and
governance actions), read in a constant number of queries whatever the data.

Each source is one query bounded by the time range and by `ROW_CAP`; related objects (a
model's deployments and versions, a deployment's identities, an identity's deployments)
are subqueries narrowed to what the user may read, never id lists fetched first. Usage is
aggregated per hour, per caller and per caller-day in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import CharField, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Cast, TruncDay
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from governance.models import FindingEvent
from inventory import history, permissions
from inventory import models as m

ROW_CAP = 2_000
CALLER_CAP = 50
CHART_CALLERS = 5  # the busiest callers get a bar series each; the rest share one
DEFAULT_DAYS = 30
MAX_DAYS = 366

REGISTRY = "registry"
RUNTIME = "runtime"
CALLS = "calls"
CREDENTIAL = "credential"
FINDING = "finding"
GOVERNANCE = "governance"
KINDS: dict[str, str] = {
    REGISTRY: "Registry",
    RUNTIME: "Runtime",
    CALLS: "Calls",
    CREDENTIAL: "Credential",
    FINDING: "Finding",
    GOVERNANCE: "Governance",
}

DEPLOYMENT = "deployment"
MODEL = "model"
IDENTITY = "identity"
SUBJECTS: dict[str, type] = {
    DEPLOYMENT: m.Deployment,
    MODEL: m.AIModel,
    IDENTITY: m.NonHumanIdentity,
}

MODEL_LABEL = m.AIModel._meta.label_lower
FINDING_LABEL = "governance.finding"
# Audit actions that are registry facts with no history row of their own (a model's
# lifecycle is not a tracked field): shown as registry events, not governance actions.
LIFECYCLE_ACTIONS = {
    "aimodel.activate",
    "aimodel.deprecate",
    "aimodel.retire",
    "aimodel.develop",
}
RUNTIME_FIELDS = ("observed_version", "endpoint", "status", "exposure")
CREDENTIAL_FIELDS = ("status", "rotated_at", "expires_at")


@dataclass
class Event:
    at: datetime
    kind: str
    what: str
    source: str = ""
    link: str = ""
    subject: str = ""
    # Set on observed-version changes: "who called it since" is the page from here.
    since_link: bool = False
    since_url: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def kind_label(self) -> str:
        return KINDS[self.kind]

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "what": self.what,
            "source": self.source,
            "subject": self.subject,
            "link": self.link,
        }


@dataclass
class Related:
    """The subject and what its timeline also reads, as lazy querysets of ids."""

    subject: Any
    kind: str
    deployments: QuerySet
    versions: QuerySet
    identities: QuerySet
    models: QuerySet
    # Usage: of these deployments, or (for an identity) the calls this identity made.
    usage: QuerySet


@dataclass
class Timeline:
    related: Related
    since: datetime
    until: datetime
    kinds: list[str]
    caller: str
    events: list[Event]
    capped: bool
    hours: list[dict[str, Any]]
    callers: list[dict[str, Any]]
    callers_capped: bool
    # Calls per hour of each of the busiest callers, aligned with `hours`.
    caller_series: list[dict[str, Any]] = field(default_factory=list)

    @property
    def calls_total(self) -> int:
        return sum(h["calls"] for h in self.hours)

    @property
    def errors_total(self) -> int:
        return sum(h["errors"] for h in self.hours)


def _ids(queryset: QuerySet) -> QuerySet:
    return queryset.values("id")


def _str_ids(queryset: QuerySet) -> QuerySet:
    # AuditEvent.object_id is text: compare with the ids cast, in the same subquery.
    return queryset.annotate(sid=Cast("id", output_field=CharField())).values("sid")


def subject_get(*, user: Any, subject: str, pk: Any) -> Related:
    """The subject the user may read, with what its timeline includes, or 404."""
    from django.http import Http404

    if subject not in SUBJECTS:
        raise Http404
    scope = permissions.scope
    if subject == DEPLOYMENT:
        obj = permissions.get_for_user(
            m.Deployment.objects.select_related("model"), user, pk
        )
        deployments = m.Deployment.objects.filter(pk=obj.pk)
        return Related(
            subject=obj,
            kind=subject,
            deployments=deployments,
            versions=scope(m.ModelVersion.objects.filter(model_id=obj.model_id), user),
            identities=scope(
                m.NonHumanIdentity.objects.filter(deployments=obj.pk), user
            ),
            models=scope(m.AIModel.objects.filter(pk=obj.model_id), user),
            usage=m.UsageHour.objects.filter(deployment_id=obj.pk),
        )
    if subject == MODEL:
        obj = permissions.get_for_user(m.AIModel.objects.all(), user, pk)
        deployments = scope(m.Deployment.objects.filter(model_id=obj.pk), user)
        return Related(
            subject=obj,
            kind=subject,
            deployments=deployments,
            versions=m.ModelVersion.objects.filter(model_id=obj.pk),
            identities=m.NonHumanIdentity.objects.none(),
            models=m.AIModel.objects.filter(pk=obj.pk),
            usage=m.UsageHour.objects.filter(deployment_id__in=_ids(deployments)),
        )
    obj = permissions.get_for_user(m.NonHumanIdentity.objects.all(), user, pk)
    deployments = scope(m.Deployment.objects.filter(identities=obj.pk), user)
    return Related(
        subject=obj,
        kind=subject,
        deployments=deployments,
        versions=m.ModelVersion.objects.none(),
        identities=m.NonHumanIdentity.objects.filter(pk=obj.pk),
        models=m.AIModel.objects.none(),
        usage=m.UsageHour.objects.filter(identity_id=obj.pk),
    )


def default_range(now: datetime | None = None) -> tuple[datetime, datetime]:
    now = now or timezone.now()
    return now - timedelta(days=DEFAULT_DAYS), now


# ---------------------------------------------------------------------------
# Words
# ---------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    if value in (None, ""):
        return "—"
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-":
        return value[:16].replace("T", " ")
    return str(value)


def _version_text(value: Any, names: dict[int, str]) -> str:
    if not isinstance(value, dict):
        return _fmt(value)
    vid = value.get("observed_version_id")
    label = value.get("observed_version_label") or ""
    if vid is not None and vid in names:
        return names[vid]
    return label or "—"


def _change_source(row: m.FieldChange) -> str:
    return row.source or row.actor_label or row.actor_kind or ""


# ---------------------------------------------------------------------------
# The sources, one query each
# ---------------------------------------------------------------------------
def _field_changes(
    related: Related, since: datetime, until: datetime, kinds: set[str]
) -> tuple[list[m.FieldChange], bool]:
    q = Q()
    if RUNTIME in kinds:
        q |= Q(
            object_type=history.DEPLOYMENT,
            object_id__in=_ids(related.deployments),
            field__in=RUNTIME_FIELDS,
        )
    if REGISTRY in kinds:
        q |= Q(
            object_type=history.VERSION,
            object_id__in=_ids(related.versions),
            field="approval",
        )
    if CREDENTIAL in kinds:
        q |= Q(
            object_type=history.IDENTITY,
            object_id__in=_ids(related.identities),
            field__in=CREDENTIAL_FIELDS,
        )
    if not q:
        return [], False
    rows = list(
        m.FieldChange.objects.filter(
            q, changed_at__gte=since, changed_at__lt=until
        ).order_by("-changed_at", "-id")[: ROW_CAP + 1]
    )
    return rows[:ROW_CAP], len(rows) > ROW_CAP


def _names(
    changes: list[m.FieldChange],
) -> tuple[dict[int, str], dict[int, str], dict[int, str]]:
    """Version, deployment and identity names the history rows point at: a query for
    each kind the rows name, three at most."""
    version_ids: set[int] = set()
    wanted: dict[str, set[int]] = {
        history.DEPLOYMENT: set(),
        history.VERSION: set(),
        history.IDENTITY: set(),
    }
    for row in changes:
        wanted[row.object_type].add(row.object_id)
        if row.field == "observed_version":
            for value in (row.before, row.after):
                if isinstance(value, dict) and value.get("observed_version_id"):
                    version_ids.add(value["observed_version_id"])
    version_ids |= wanted[history.VERSION]
    versions: dict[int, str] = {}
    deployments: dict[int, str] = {}
    identities: dict[int, str] = {}
    for ids, model, column, target in (
        (version_ids, m.ModelVersion, "version", versions),
        (wanted[history.DEPLOYMENT], m.Deployment, "name", deployments),
        (wanted[history.IDENTITY], m.NonHumanIdentity, "name", identities),
    ):
        if ids:
            target.update(
                model.objects.filter(id__in=ids).order_by().values_list("id", column)
            )
    return versions, deployments, identities


def _change_events(
    changes: list[m.FieldChange],
    versions: dict[int, str],
    deployments: dict[int, str],
    identities: dict[int, str],
) -> list[Event]:
    events = []
    for row in changes:
        source = _change_source(row)
        if row.object_type == history.DEPLOYMENT:
            name = deployments.get(row.object_id, f"deployment {row.object_id}")
            link = reverse("inventory:deployment_history", args=[row.object_id])
            if row.field == "observed_version":
                what = (
                    f"{name} now runs {_version_text(row.after, versions)} "
                    f"(was {_version_text(row.before, versions)})"
                )
                events.append(
                    Event(row.changed_at, RUNTIME, what, source, link, name, True)
                )
                continue
            label = history.FIELD_LABELS.get(row.field, row.field)
            what = f"{name} {label}: {_fmt(row.before)} → {_fmt(row.after)}"
            events.append(Event(row.changed_at, RUNTIME, what, source, link, name))
        elif row.object_type == history.VERSION:
            name = versions.get(row.object_id, f"version {row.object_id}")
            what = f"Version {name} {_fmt(row.before)} → {_fmt(row.after)}"
            link = reverse("inventory:modelversion_detail", args=[row.object_id])
            events.append(Event(row.changed_at, REGISTRY, what, source, link, name))
        else:
            name = identities.get(row.object_id, f"identity {row.object_id}")
            link = reverse("inventory:identity_detail", args=[row.object_id])
            if row.field == "rotated_at":
                what = f"{name} rotated"
            elif row.field == "status":
                what = f"{name} {_fmt(row.before)} → {_fmt(row.after)}"
            else:
                what = f"{name} expiry {_fmt(row.before)} → {_fmt(row.after)}"
            events.append(Event(row.changed_at, CREDENTIAL, what, source, link, name))
    return events


def _registered(
    related: Related, since: datetime, until: datetime
) -> tuple[list[Event], bool]:
    rows = list(
        related.versions.filter(created_at__gte=since, created_at__lt=until)
        .order_by("-created_at", "-id")
        .values("id", "version", "created_at", "source")[: ROW_CAP + 1]
    )
    events = [
        Event(
            r["created_at"],
            REGISTRY,
            f"Version {r['version']} registered",
            r["source"],
            reverse("inventory:modelversion_detail", args=[r["id"]]),
            r["version"],
        )
        for r in rows[:ROW_CAP]
    ]
    return events, len(rows) > ROW_CAP


def _credential_facts(
    related: Related, since: datetime, until: datetime
) -> tuple[list[Event], bool]:
    """Issued, recorded, last used and expiry: the identity's own time fields."""
    in_range = Q()
    for name in ("issued_at", "created_at", "last_used_at", "expires_at"):
        in_range |= Q(**{f"{name}__gte": since, f"{name}__lt": until})
    rows = list(
        related.identities.filter(in_range)
        .order_by("-id")
        .values(
            "id",
            "name",
            "source",
            "issued_at",
            "created_at",
            "last_used_at",
            "expires_at",
            "status",
        )[: ROW_CAP + 1]
    )
    now = timezone.now()
    events = []
    for r in rows[:ROW_CAP]:
        link = reverse("inventory:identity_detail", args=[r["id"]])

        def add(at: Any, what: str, r=r, link=link) -> None:
            if at is not None and since <= at < until:
                events.append(Event(at, CREDENTIAL, what, r["source"], link, r["name"]))

        add(r["issued_at"], f"{r['name']} issued")
        add(r["created_at"], f"{r['name']} first recorded in Runproof")
        add(r["last_used_at"], f"{r['name']} last used")
        if r["expires_at"] is not None:
            verb = "expired" if r["expires_at"] <= now else "expires"
            add(r["expires_at"], f"{r['name']} {verb} ({r['status']})")
    return events, len(rows) > ROW_CAP


def _finding_events(
    related: Related, since: datetime, until: datetime
) -> tuple[list[Event], bool]:
    of_subject = (
        Q(finding__deployment_id__in=_ids(related.deployments))
        | Q(finding__identity_id__in=_ids(related.identities))
        | Q(finding__model_id__in=_ids(related.models))
    )
    rows = list(
        FindingEvent.objects.filter(of_subject, at__gte=since, at__lt=until)
        .select_related("finding")
        .order_by("-at", "-id")[: ROW_CAP + 1]
    )
    events = [
        Event(
            e.at,
            FINDING,
            f"{e.get_action_display()}: {e.finding.title}",
            e.actor_label or "detection",
            reverse("governance:finding_detail", args=[e.finding_id]),
            e.finding.get_kind_display(),
        )
        for e in rows[:ROW_CAP]
    ]
    return events, len(rows) > ROW_CAP


def _audit_events(
    related: Related, since: datetime, until: datetime, kinds: set[str]
) -> tuple[list[Event], bool]:
    objects = (
        Q(object_type=history.DEPLOYMENT, object_id__in=_str_ids(related.deployments))
        | Q(object_type=history.VERSION, object_id__in=_str_ids(related.versions))
        | Q(object_type=history.IDENTITY, object_id__in=_str_ids(related.identities))
        | Q(object_type=MODEL_LABEL, object_id__in=_str_ids(related.models))
    )
    if GOVERNANCE not in kinds:  # only the lifecycle moves, shown as registry events
        objects &= Q(action__in=LIFECYCLE_ACTIONS)
    elif REGISTRY not in kinds:
        objects &= ~Q(action__in=LIFECYCLE_ACTIONS)
    rows = list(
        AuditEvent.objects.filter(
            objects, occurred_at__gte=since, occurred_at__lt=until
        )
        .order_by("-occurred_at", "-seq")
        .only("seq", "occurred_at", "actor_label", "action", "object_repr", "after")[
            : ROW_CAP + 1
        ]
    )
    events = []
    for e in rows[:ROW_CAP]:
        kind = REGISTRY if e.action in LIFECYCLE_ACTIONS else GOVERNANCE
        what = f"{e.action} {e.object_repr}"
        note = ""
        if isinstance(e.after, dict):
            note = next(
                (str(v) for k, v in e.after.items() if k.endswith("_note") and v), ""
            )
        if note:
            what += f": {note}"
        events.append(
            Event(
                e.occurred_at,
                kind,
                what,
                e.actor_label,
                reverse("governance:audit_detail", args=[e.seq]),
                e.object_repr,
            )
        )
    return events, len(rows) > ROW_CAP


def _caller_key(row: dict[str, Any]) -> str:
    return row.get("identity__name") or row.get("caller_service") or "(unknown caller)"


def _usage(
    related: Related, since: datetime, until: datetime, caller: str
) -> tuple[QuerySet, list[dict], list[dict], bool, list[Event], bool]:
    usage = related.usage.filter(hour__gte=since, hour__lt=until)
    if caller:
        usage = usage.filter(Q(caller_service=caller) | Q(identity__name=caller))
    hours = [
        {"hour": r["hour"], "calls": r["calls"] or 0, "errors": r["errors"] or 0}
        for r in usage.values("hour")
        .annotate(calls=Sum("calls"), errors=Sum("errors"))
        .order_by("hour")
    ]
    caller_rows = list(
        usage.values("caller_service", "identity_id", "identity__name")
        .annotate(
            calls=Sum("calls"),
            errors=Sum("errors"),
            first=Min("hour"),
            last=Max("hour"),
        )
        .order_by("-calls", "caller_service", "identity_id")[: CALLER_CAP + 1]
    )
    callers = [
        {
            "caller": _caller_key(r),
            "service": r["caller_service"],
            "identity_id": r["identity_id"],
            "identity": r["identity__name"] or "",
            "calls": r["calls"] or 0,
            "errors": r["errors"] or 0,
            "first": r["first"],
            "last": r["last"] + timedelta(hours=1) if r["last"] else None,
        }
        for r in caller_rows[:CALLER_CAP]
    ]
    daily = list(
        usage.annotate(day=TruncDay("hour"))
        .values("day", "caller_service", "identity_id", "identity__name")
        .annotate(calls=Sum("calls"), errors=Sum("errors"))
        .order_by("-day", "caller_service", "identity_id")[: ROW_CAP + 1]
    )
    events = []
    for r in daily[:ROW_CAP]:
        who = _caller_key(r)
        link = (
            reverse("inventory:identity_detail", args=[r["identity_id"]])
            if r["identity_id"]
            else ""
        )
        events.append(
            Event(
                r["day"],
                CALLS,
                f"{who}: {r['calls']:,} calls, {r['errors']:,} errors that day",
                "telemetry",
                link,
                who,
                data={"calls": r["calls"], "errors": r["errors"], "caller": who},
            )
        )
    return (
        usage,
        hours,
        callers,
        len(caller_rows) > CALLER_CAP,
        events,
        len(daily) > ROW_CAP,
    )


def _caller_series(
    related: Related,
    since: datetime,
    until: datetime,
    caller: str,
    hours: list[dict],
    callers: list[dict],
) -> list[dict[str, Any]]:
    """Calls per hour of the CHART_CALLERS busiest callers (one query), and "other
    callers" for the rest of each hour's total."""
    top = callers[:CHART_CALLERS]
    if not top or not hours:
        return []
    usage = related.usage.filter(hour__gte=since, hour__lt=until)
    if caller:
        usage = usage.filter(Q(caller_service=caller) | Q(identity__name=caller))
    which = Q()
    for c in top:
        which |= Q(caller_service=c["service"], identity_id=c["identity_id"])
    index = {h["hour"]: i for i, h in enumerate(hours)}
    keys = {(c["service"], c["identity_id"]): n for n, c in enumerate(top)}
    series = [{"name": c["caller"], "calls": [0] * len(hours)} for c in top]
    rows = (
        usage.filter(which)
        .values("hour", "caller_service", "identity_id")
        .annotate(calls=Sum("calls"))
        .order_by()
    )
    for r in rows:
        n = keys.get((r["caller_service"], r["identity_id"]))
        if n is not None and r["hour"] in index:
            series[n]["calls"][index[r["hour"]]] += r["calls"] or 0
    other = [
        h["calls"] - sum(s["calls"][i] for s in series) for i, h in enumerate(hours)
    ]
    if any(other):
        series.append({"name": "other callers", "calls": other})
    return series


def timeline_build(
    *,
    related: Related,
    since: datetime,
    until: datetime,
    kinds: list[str] | None = None,
    caller: str = "",
) -> Timeline:
    chosen = set(kinds or KINDS)
    events: list[Event] = []
    capped = False

    changes, more = _field_changes(related, since, until, chosen)
    capped |= more
    if changes:
        events += _change_events(changes, *_names(changes))
    if REGISTRY in chosen:
        found, more = _registered(related, since, until)
        events += found
        capped |= more
    if CREDENTIAL in chosen:
        found, more = _credential_facts(related, since, until)
        events += found
        capped |= more
    if FINDING in chosen:
        found, more = _finding_events(related, since, until)
        events += found
        capped |= more
    if GOVERNANCE in chosen or REGISTRY in chosen:
        found, more = _audit_events(related, since, until, chosen)
        events += found
        capped |= more
    hours: list[dict] = []
    callers: list[dict] = []
    callers_capped = False
    if CALLS in chosen:
        _, hours, callers, callers_capped, found, more = _usage(
            related, since, until, caller
        )
        events += found
        capped |= more
        caller_series = _caller_series(related, since, until, caller, hours, callers)
    else:
        caller_series = []

    events.sort(key=lambda e: e.at, reverse=True)
    if len(events) > ROW_CAP:
        capped = True
        events = events[:ROW_CAP]
    return Timeline(
        related=related,
        since=since,
        until=until,
        kinds=[k for k in KINDS if k in chosen],
        caller=caller,
        events=events,
        capped=capped,
        hours=hours,
        callers=callers,
        callers_capped=callers_capped,
        caller_series=caller_series,
    )


def chart_data(timeline: Timeline) -> dict[str, Any]:
    """What static/js/timeline.js draws: calls and errors per hour as bars, and every
    event as a marker on the same time axis, one row of markers per kind."""
    markers: dict[str, dict[str, list]] = {}
    for e in timeline.events:
        if e.kind == CALLS:
            continue
        row = markers.setdefault(e.kind, {"x": [], "text": []})
        row["x"].append(e.at.isoformat())
        row["text"].append(e.what)
    return {
        "since": timeline.since.isoformat(),
        "until": timeline.until.isoformat(),
        "hours": [h["hour"].isoformat() for h in timeline.hours],
        "calls": [h["calls"] for h in timeline.hours],
        "errors": [h["errors"] for h in timeline.hours],
        "series": timeline.caller_series,
        "markers": [
            {"kind": k, "label": KINDS[k], **markers[k]} for k in KINDS if k in markers
        ],
    }


def export_rows(timeline: Timeline) -> list[list[Any]]:
    return [
        [e.at, e.kind, e.what, e.source, e.subject, e.link] for e in timeline.events
    ]


EXPORT_HEADER = ["time", "kind", "what", "source", "subject", "link"]


def export_json(timeline: Timeline) -> dict[str, Any]:
    subject = timeline.related.subject
    return {
        "subject": {
            "kind": timeline.related.kind,
            "id": subject.pk,
            "name": str(subject),
        },
        "since": timeline.since.isoformat(),
        "until": timeline.until.isoformat(),
        "kinds": timeline.kinds,
        "caller": timeline.caller,
        "capped": timeline.capped,
        "row_cap": ROW_CAP,
        "events": [e.as_dict() for e in timeline.events],
        "usage_per_hour": [
            {"hour": h["hour"].isoformat(), "calls": h["calls"], "errors": h["errors"]}
            for h in timeline.hours
        ],
        "callers": [
            {
                **c,
                "first": c["first"].isoformat() if c["first"] else None,
                "last": c["last"].isoformat() if c["last"] else None,
            }
            for c in timeline.callers
        ],
    }
