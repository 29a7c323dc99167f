"""The CI/CD release gate: may this model version go to this environment now?

`POST /api/v1/gate` (governance.api_gate) hands a validated `GateRequest` to
`gate_decide`, which resolves the target (`resolve`: the model, its version, the target
deployment), decides (`evaluate`: a plain function of the rows it is given, every reason
that holds) and records the decision and its audit event in one transaction.

A deny carries every reason, each with a stable code a pipeline can match on:

- ``version_unknown``: no such version of the model is registered.
- ``version_not_approved``: the version is pending approval or rejected.
- ``version_deprecated``, ``version_retired``: the committee deprecated or retired it.
- ``model_retired``: the model itself is retired.
- ``critical_finding``: an unresolved finding of severity critical (open or acknowledged)
  on the target: the deployment, or, when none is named, the model's deployments in that
  environment, and the model itself. A risk the committee accepted (until its expiry) and
  a false positive do not stop a release: that is what accepting a risk means.
- ``accepted_risk_expired``: a finding whose risk was accepted until a time now past (the
  detection engine reopens it on its next run; the gate does not wait for that).
- ``outside_change_window``: the target deployment's machine-readable change window
  (inventory.change_window) is closed now.
- ``no_change_window``: the target deployment is in production and has no
  machine-readable change window, so no one can say a change is allowed now. Outside
  production a missing window is no reason: staging and development change at will.
- ``deployment_withdrawn``, ``deployment_quarantined``: the target deployment was taken
  out of service.

With no deployment named and no existing deployment at the endpoint, the release is a new
deployment: it has no status or change window yet, so only the model, version and finding
reasons apply.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone

import audit
from governance.models import Finding, GateDecision
from inventory import change_window, permissions
from inventory import models as m
from inventory.roles import Role

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    User = AbstractBaseUser | AnonymousUser

ALLOW = "allow"
DENY = "deny"
ACTION_ALLOW = "gatedecision.allow"
ACTION_DENY = "gatedecision.deny"
# Findings named one by one in a decision; more than that are counted in one last reason.
MAX_FINDING_REASONS = 20

# Input errors (400): the request names something that is not there.
MODEL_UNKNOWN = "No model {model!r} is registered (give its name or id)."
DEPLOYMENT_UNKNOWN = "No deployment {deployment!r} of model {model!r} in {environment}."
DEPLOYMENT_OTHER_MODEL = "Deployment #{id} is not a deployment of model {model!r}."
DEPLOYMENT_OTHER_ENVIRONMENT = (
    "Deployment #{id} runs in {actual}, not in {environment}."
)
DECISIONS_NOT_ALLOWED = "Your role cannot read release gate decisions."

# Reason messages.
VERSION_UNKNOWN = "Version {version!r} of model {model!r} is not registered."
VERSION_NOT_APPROVED = (
    "Version {version!r} of model {model!r} is {state}, not approved."
)
VERSION_DEPRECATED = "Version {version!r} of model {model!r} is deprecated."
VERSION_RETIRED = "Version {version!r} of model {model!r} is retired."
MODEL_RETIRED = "Model {model!r} is retired."
CRITICAL_FINDING = "Open critical finding #{id} on {subject}: {title}"
ACCEPTED_RISK_EXPIRED = (
    "Finding #{id} on {subject}: the accepted risk expired at {until}: {title}"
)
MORE_FINDINGS = (
    "More than {n} findings stop this release; the findings page lists them."
)
OUTSIDE_CHANGE_WINDOW = (
    "Outside the change window of deployment {deployment!r} ({window}); "
    "it next opens at {next}."
)
OUTSIDE_CHANGE_WINDOW_NEVER = (
    "Outside the change window of deployment {deployment!r} ({window}), which does not "
    "open within a week."
)
NO_CHANGE_WINDOW = (
    "Production deployment {deployment!r} has no machine-readable change window "
    '(e.g. "Tue 02:00-04:00 UTC"), so no change can be shown to be allowed now.'
)
DEPLOYMENT_WITHDRAWN = "Deployment {deployment!r} is withdrawn."
DEPLOYMENT_QUARANTINED = "Deployment {deployment!r} is quarantined."

# The columns a decision reads: a few, so each lookup is cheap to build and to read.
MODEL_FIELDS = ("id", "name", "lifecycle", "team_id")
VERSION_FIELDS = ("id", "approval", "model_id")
DEPLOYMENT_FIELDS = (
    "id",
    "name",
    "model_id",
    "environment",
    "status",
    "change_window",
    "team_id",
)

Approval = m.ModelVersion.Approval
DeploymentStatus = m.Deployment.Status
HELD = (Finding.Status.OPEN, Finding.Status.ACKNOWLEDGED)


@dataclass(frozen=True)
class GateRequest:
    """What a pipeline asks, as the API validated it."""

    model: int | str
    version: str
    environment: str
    deployment: int | str | None = None
    endpoint: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: v for k, v in data.items() if v not in (None, "")}


@dataclass(frozen=True)
class Reason:
    code: str
    message: str
    finding_id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.finding_id is not None:
            data["finding_id"] = self.finding_id
        return data


@dataclass(frozen=True)
class Target:
    """The rows a decision reads: resolved once, then judged by `evaluate`."""

    model: m.AIModel
    version: m.ModelVersion | None
    environment: str
    deployment: m.Deployment | None
    findings: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------
# Resolve: the request's names to rows (one indexed read for the model, its version and
# the target deployment; one for the findings)
# ---------------------------------------------------------------------------
def _instance(cls: type, values: dict[str, Any]) -> Any:
    """A row read by hand as the model instance `.only(*values)` would give."""
    names = [f.attname for f in cls._meta.concrete_fields if f.attname in values]
    return cls.from_db("default", names, [values[n] for n in names])


def _columns(cls: type, names: tuple[str, ...], alias: str) -> list[str]:
    fields = {f.attname: f.column for f in cls._meta.concrete_fields}
    quote = connection.ops.quote_name
    return [f"{alias}.{quote(fields[n])}" for n in names]


def _lookup_sql(request: GateRequest, *, by_id: bool) -> tuple[str, list[Any]]:
    """The model (by id or by name: the registry's row first, as deployment events
    choose), its version of that label, and the deployment the request names: by id
    (judged against the model and environment after the read), by name or by endpoint
    within the model and environment (the live row first)."""
    ref = request.deployment
    quote = connection.ops.quote_name
    model_t = quote(m.AIModel._meta.db_table)
    version_t = quote(m.ModelVersion._meta.db_table)
    deployment_t = quote(m.Deployment._meta.db_table)
    select = _columns(m.AIModel, MODEL_FIELDS, "am") + _columns(
        m.ModelVersion, VERSION_FIELDS, "mv"
    )
    joins = [
        f"LEFT JOIN {version_t} mv ON mv.model_id = am.id AND mv.version = %s",
    ]
    params: list[Any] = [request.version]
    order = [] if by_id else ["am.gone_at ASC NULLS FIRST", "am.id DESC"]
    if isinstance(ref, int):
        joins.append(f"LEFT JOIN {deployment_t} d ON d.id = %s")
        params.append(ref)
    elif (isinstance(ref, str) and ref) or request.endpoint:
        column, value = ("name", ref) if ref else ("endpoint", request.endpoint)
        joins.append(
            f"LEFT JOIN {deployment_t} d ON d.model_id = am.id "
            f"AND d.environment = %s AND d.{quote(column)} = %s"
        )
        params += [request.environment, value]
        order += ["d.gone_at ASC NULLS FIRST", "d.id DESC"]
    has_deployment = len(joins) > 1
    if has_deployment:
        select += _columns(m.Deployment, DEPLOYMENT_FIELDS, "d")
    where = "am.id = %s" if by_id else "am.name = %s"
    # By id: an int, or a name of digits that named no model.
    params.append(int(request.model) if by_id else request.model)
    sql = (
        f"SELECT {', '.join(select)} FROM {model_t} am {' '.join(joins)} "  # noqa: S608 - names from the models, values as parameters
        f"WHERE {where}"
        + (f" ORDER BY {', '.join(order)}" if order else "")
        + " LIMIT 1"
    )
    return sql, params


def _read(request: GateRequest) -> tuple[m.AIModel, m.ModelVersion | None, Any]:
    """The model, its version and the deployment row (or None), in one query (two when
    a model named by digits is not a name but an id)."""
    ref = request.model
    tries = [isinstance(ref, int)]
    if isinstance(ref, str) and ref.isdigit() and len(ref) < 19:
        tries.append(True)
    row = None
    with connection.cursor() as cursor:
        for by_id in tries:
            sql, params = _lookup_sql(request, by_id=by_id)
            cursor.execute(sql, params)
            row = cursor.fetchone()
            if row is not None:
                break
    if row is None:
        raise ValidationError({"model": [MODEL_UNKNOWN.format(model=ref)]})
    n_model, n_version = len(MODEL_FIELDS), len(VERSION_FIELDS)
    model = _instance(m.AIModel, dict(zip(MODEL_FIELDS, row[:n_model], strict=True)))
    version_values = row[n_model : n_model + n_version]
    version = (
        _instance(
            m.ModelVersion, dict(zip(VERSION_FIELDS, version_values, strict=True))
        )
        if version_values[0] is not None
        else None
    )
    deployment_values = row[n_model + n_version :]
    deployment = (
        _instance(
            m.Deployment, dict(zip(DEPLOYMENT_FIELDS, deployment_values, strict=True))
        )
        if deployment_values and deployment_values[0] is not None
        else None
    )
    return model, version, deployment


def _check_deployment(
    request: GateRequest, model: m.AIModel, found: m.Deployment | None
) -> m.Deployment | None:
    """The deployment the request names, or a ValidationError (a 400) when it names one
    that is not there or not the model's in that environment."""
    ref = request.deployment
    unknown = ValidationError(
        {
            "deployment": [
                DEPLOYMENT_UNKNOWN.format(
                    deployment=ref, model=model.name, environment=request.environment
                )
            ]
        }
    )
    if isinstance(ref, int):
        if found is None:
            raise unknown
        if found.model_id != model.pk:
            raise ValidationError(
                {
                    "deployment": [
                        DEPLOYMENT_OTHER_MODEL.format(id=ref, model=model.name)
                    ]
                }
            )
        if found.environment != request.environment:
            raise ValidationError(
                {
                    "deployment": [
                        DEPLOYMENT_OTHER_ENVIRONMENT.format(
                            id=ref,
                            actual=found.environment,
                            environment=request.environment,
                        )
                    ]
                }
            )
        return found
    if isinstance(ref, str) and ref:
        if found is None:
            raise unknown
        return found
    # An endpoint nothing answers at yet is a new deployment: no target row.
    return found if request.endpoint else None


FINDING_COLUMNS = (
    "id",
    "kind",
    "title",
    "status",
    "severity",
    "accepted_until",
    "subject_type",
    "deployment__name",
    "model__name",
)


def _findings(
    model: m.AIModel,
    environment: str,
    deployment: m.Deployment | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The findings that stop a release of the target, in one query, at most
    MAX_FINDING_REASONS + 1 of them (the last one only says there are more): an
    unresolved critical one (open or acknowledged), or an accepted risk whose acceptance
    has expired, on the target deployment (none named: the model's deployments in that
    environment) or on the model itself. Written as SQL: compiling it was a third of the
    gate's CPU."""
    quote = connection.ops.quote_name
    finding_t = quote(Finding._meta.db_table)
    deployment_t = quote(m.Deployment._meta.db_table)
    model_t = quote(m.AIModel._meta.db_table)
    if deployment is not None:
        on_target, params = "f.deployment_id = %s", [deployment.pk]
    else:
        on_target = "(d.model_id = %s AND d.environment = %s)"
        params = [model.pk, environment]
    sql = (
        "SELECT f.id, f.kind, f.title, f.status, f.severity, f.accepted_until, "  # noqa: S608 - names from the models, values as parameters
        f"f.subject_type, d.name, am.name FROM {finding_t} f "
        f"LEFT JOIN {deployment_t} d ON d.id = f.deployment_id "
        f"LEFT JOIN {model_t} am ON am.id = f.model_id "
        f"WHERE ({on_target} OR (f.subject_type = %s AND f.model_id = %s)) "
        "AND ((f.severity = %s AND f.status IN (%s, %s)) "
        "OR (f.status = %s AND f.accepted_until < %s)) "
        "ORDER BY f.severity DESC, f.id LIMIT %s"
    )
    params += [
        Finding.Subject.MODEL.value,
        model.pk,
        Finding.Severity.CRITICAL.value,
        *(str(s) for s in HELD),
        Finding.Status.ACCEPTED.value,
        connection.ops.adapt_datetimefield_value(now),
        MAX_FINDING_REASONS + 1,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = [dict(zip(FINDING_COLUMNS, row, strict=True)) for row in cursor]
    for row in rows:
        until = row["accepted_until"]
        if isinstance(until, str):  # SQLite without a converter
            until = dt.datetime.fromisoformat(until)
        if until is not None and timezone.is_naive(until):
            until = timezone.make_aware(until, dt.UTC)  # stored in UTC
        row["accepted_until"] = until
    return rows


def resolve(request: GateRequest, *, now: dt.datetime | None = None) -> Target:
    """The rows the request names; ValidationError (a 400) when the model, or a named
    deployment, does not exist or does not fit."""
    now = now or timezone.now()
    model, version, found = _read(request)
    deployment = _check_deployment(request, model, found)
    return Target(
        model=model,
        version=version,
        environment=request.environment,
        deployment=deployment,
        findings=_findings(model, request.environment, deployment, now),
    )


# ---------------------------------------------------------------------------
# Evaluate: the decision, a plain function of the target and the time
# ---------------------------------------------------------------------------
def _finding_subject(row: dict[str, Any]) -> str:
    if row["subject_type"] == Finding.Subject.MODEL:
        return f"model {row['model__name']!r}"
    if row["deployment__name"]:
        return f"deployment {row['deployment__name']!r}"
    return row["subject_type"]


def _finding_reasons(rows: list[dict[str, Any]]) -> list[Reason]:
    reasons = []
    for row in rows[:MAX_FINDING_REASONS]:
        subject = _finding_subject(row)
        if row["status"] == Finding.Status.ACCEPTED:
            until = row["accepted_until"].astimezone(dt.UTC)
            reasons.append(
                Reason(
                    "accepted_risk_expired",
                    ACCEPTED_RISK_EXPIRED.format(
                        id=row["id"],
                        subject=subject,
                        until=until.strftime("%Y-%m-%d %H:%M UTC"),
                        title=row["title"],
                    ),
                    row["id"],
                )
            )
        else:
            reasons.append(
                Reason(
                    "critical_finding",
                    CRITICAL_FINDING.format(
                        id=row["id"], subject=subject, title=row["title"]
                    ),
                    row["id"],
                )
            )
    if len(rows) > MAX_FINDING_REASONS:
        reasons.append(
            Reason("more_findings", MORE_FINDINGS.format(n=MAX_FINDING_REASONS))
        )
    return reasons


def _version_reasons(target: Target, version_label: str) -> list[Reason]:
    names = {"model": target.model.name, "version": version_label}
    version = target.version
    if version is None:
        return [Reason("version_unknown", VERSION_UNKNOWN.format(**names))]
    if version.approval in (Approval.PENDING, Approval.REJECTED):
        state = (
            "pending approval" if version.approval == Approval.PENDING else "rejected"
        )
        return [
            Reason(
                "version_not_approved",
                VERSION_NOT_APPROVED.format(state=state, **names),
            )
        ]
    if version.approval == Approval.DEPRECATED:
        return [Reason("version_deprecated", VERSION_DEPRECATED.format(**names))]
    if version.approval == Approval.RETIRED:
        return [Reason("version_retired", VERSION_RETIRED.format(**names))]
    return []


def _window_reasons(deployment: m.Deployment, now: dt.datetime) -> list[Reason]:
    schedule = change_window.parse_or_none(deployment.change_window)
    if schedule is None:
        if deployment.environment == m.Deployment.Environment.PRODUCTION:
            return [
                Reason(
                    "no_change_window",
                    NO_CHANGE_WINDOW.format(deployment=deployment.name),
                )
            ]
        return []
    if schedule.contains(now):
        return []
    opening = schedule.next_opening(now)
    if opening is None:
        message = OUTSIDE_CHANGE_WINDOW_NEVER.format(
            deployment=deployment.name, window=schedule.describe()
        )
    else:
        message = OUTSIDE_CHANGE_WINDOW.format(
            deployment=deployment.name,
            window=schedule.describe(),
            next=opening.strftime("%Y-%m-%d %H:%M UTC"),
        )
    return [Reason("outside_change_window", message)]


def evaluate(target: Target, *, version_label: str, now: dt.datetime) -> list[Reason]:
    """Every reason the release must not go ahead; none means allow."""
    reasons = _version_reasons(target, version_label)
    if target.model.lifecycle == m.AIModel.Lifecycle.RETIRED:
        reasons.append(
            Reason("model_retired", MODEL_RETIRED.format(model=target.model.name))
        )
    deployment = target.deployment
    if deployment is not None:
        if deployment.status == DeploymentStatus.WITHDRAWN:
            reasons.append(
                Reason(
                    "deployment_withdrawn",
                    DEPLOYMENT_WITHDRAWN.format(deployment=deployment.name),
                )
            )
        elif deployment.status == DeploymentStatus.QUARANTINED:
            reasons.append(
                Reason(
                    "deployment_quarantined",
                    DEPLOYMENT_QUARANTINED.format(deployment=deployment.name),
                )
            )
        reasons.extend(_window_reasons(deployment, now))
    reasons.extend(_finding_reasons(target.findings))
    return reasons


# ---------------------------------------------------------------------------
# Decide and record (the service the API calls)
# ---------------------------------------------------------------------------
def gate_decide(
    *, request: GateRequest, token: m.APIToken, now: dt.datetime | None = None
) -> GateDecision:
    """Resolve, evaluate, and record the decision with its audit event, in one transaction.

    Raises ValidationError (nothing recorded) when the request names no such model or a
    deployment that is not the model's in that environment.
    """
    now = now or timezone.now()
    target = resolve(request, now=now)
    reasons = evaluate(target, version_label=request.version, now=now)
    allowed = not reasons
    with transaction.atomic():
        decision = GateDecision.objects.create(
            created_at=now,
            actor_label=f"token:{token.prefix}",
            inputs=request.as_dict(),
            model=target.model,
            version=request.version,
            environment=request.environment,
            deployment=target.deployment,
            allowed=allowed,
            reasons=[r.as_dict() for r in reasons],
        )
        audit.record(
            actor=token,
            action=ACTION_ALLOW if allowed else ACTION_DENY,
            target=decision,
            after={
                "decision": ALLOW if allowed else DENY,
                "inputs": decision.inputs,
                "model_id": target.model.pk,
                "version_id": target.version.pk if target.version else None,
                "deployment_id": target.deployment.pk if target.deployment else None,
                "reasons": decision.reasons,
            },
            team_id=(target.deployment.team_id if target.deployment else None)
            or target.model.team_id,
        )
    return decision


# ---------------------------------------------------------------------------
# Selectors: who reads which decisions
# ---------------------------------------------------------------------------
def decision_list(*, user: User) -> QuerySet[GateDecision]:
    """Decisions the user may read: all for the committee, compliance, auditors and
    administrators; for a model owner, the decisions about their teams' or own models and
    deployments. Anyone else is refused (403)."""
    rows = GateDecision.objects.select_related("model", "deployment")
    if permissions.reads_all(user):
        return rows
    if permissions.has_role(user, Role.OWNER):
        teams = permissions.team_ids(user)
        return rows.filter(
            Q(model__team_id__in=teams)
            | Q(model__owner_id=user.pk)
            | Q(deployment__team_id__in=teams)
            | Q(deployment__owner_id=user.pk)
        )
    raise PermissionDenied(DECISIONS_NOT_ALLOWED)


def decision_get_for_user(*, user: User, pk: int) -> GateDecision:
    """One decision, or 404 whether it is missing or outside the user's scope."""
    try:
        return decision_list(user=user).get(pk=pk)
    except GateDecision.DoesNotExist as exc:
        raise Http404 from exc
