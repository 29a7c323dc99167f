"""Detectors of what a deployment does at runtime: behaviour outside its version's
approved bounds, and third parties that can invoke or were seen calling a tier 1 or 2
deployment.

Both read usage (`UsageHour`: one row per deployment, hour and caller) through SQL
aggregates grouped by deployment and hour (or caller), never a Python loop over the usage
rows; a chunk of deployments costs a fixed handful of queries.

Approved bounds (`ModelVersion.approved_bounds`, a JSON object; the bounds of the version
the deployment runs, its `observed_version`). Every key is optional; a key missing, or
whose value is not of its type, sets no bound:

- `max_error_rate`: errors / calls in an hour (a fraction, 0.02 = 2 %);
- `max_mean_latency_ms`: duration_ms_total / calls in an hour;
- `max_latency_ms`: the slowest call in an hour (duration_ms_max);
- `max_calls_per_hour`: calls in an hour, summed over callers;
- `allowed_callers`: a list of `caller_service` names; a call from any other caller
  (including one that named no service) is outside the bounds.

A latency percentile (`max_p95_latency_ms`) is not offered: usage rows keep a total and a
maximum, not a histogram, and adding one is allowed only if the OTLP receiver stays within
10 % of its measured speed. Such a key is ignored.
"""

from __future__ import annotations

import math
import operator
from collections import defaultdict
from collections.abc import Collection, Iterator
from datetime import datetime, timedelta
from functools import reduce
from typing import Any

from django.conf import settings
from django.db.models import F, Max, Min, Q, Sum

from governance.detection import Condition
from governance.detectors.deployments import (
    ROW_FIELDS,
    condition,
    deployments_in,
    row_condition,
)
from governance.models import Finding
from inventory import models as im

Kind = Finding.Kind
DEPLOYMENT = Finding.Subject.DEPLOYMENT

MAX_ERROR_RATE = "max_error_rate"
MAX_MEAN_LATENCY_MS = "max_mean_latency_ms"
MAX_LATENCY_MS = "max_latency_ms"
MAX_CALLS_PER_HOUR = "max_calls_per_hour"
ALLOWED_CALLERS = "allowed_callers"
NUMERIC_BOUNDS = (
    MAX_ERROR_RATE,
    MAX_MEAN_LATENCY_MS,
    MAX_LATENCY_MS,
    MAX_CALLS_PER_HOUR,
)
BOUND_KEYS = (*NUMERIC_BOUNDS, ALLOWED_CALLERS)

# The most breaching hours a finding's records list (the worst first), and the most
# callers its facts name.
WORST_HOURS = 10
FACT_CALLERS = 50
UNKNOWN_CALLER = "(no service name)"
# A usage row's `hour` is the start of its hour: it is in a window while any of the hour
# is (it ends after the window starts).
HOUR = timedelta(hours=1)


def bounds_window_hours() -> int:
    return max(1, int(getattr(settings, "FINDINGS_BOUNDS_WINDOW_HOURS", 24)))


def parse_bounds(raw: Any) -> dict[str, Any]:
    """The bounds a version's `approved_bounds` sets: numbers for the numeric keys
    (finite, not negative, not a boolean), a sorted list of names for the allow-list.
    Anything else sets no bound."""
    if not isinstance(raw, dict):
        return {}
    bounds: dict[str, Any] = {}
    for key in NUMERIC_BOUNDS:
        value = raw.get(key)
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and value >= 0
        ):
            bounds[key] = value
    callers = raw.get(ALLOWED_CALLERS)
    if isinstance(callers, list) and all(isinstance(c, str) for c in callers):
        bounds[ALLOWED_CALLERS] = sorted(set(callers))
    return bounds


def _round(value: float) -> float:
    return round(value, 4)


def hour_breaches(
    bounds: dict[str, Any], hour: dict[str, Any], disallowed: dict[str, int]
) -> list[dict[str, Any]]:
    """The bounds one hour of usage (`calls`, `errors`, `total`, `peak`) breaks, each
    with the value observed and the bound; `disallowed` maps each caller not on the
    allow-list to its calls that hour."""
    calls = hour["calls"] or 0
    out = []

    def over(key: str, value: float) -> None:
        limit = bounds.get(key)
        if limit is not None and value > limit:
            out.append({"bound": key, "value": _round(value), "limit": limit})

    if calls:
        over(MAX_ERROR_RATE, (hour["errors"] or 0) / calls)
        over(MAX_MEAN_LATENCY_MS, (hour["total"] or 0.0) / calls)
    over(MAX_LATENCY_MS, hour["peak"] or 0.0)
    over(MAX_CALLS_PER_HOUR, calls)
    if disallowed:
        out.append(
            {
                "bound": ALLOWED_CALLERS,
                "value": sorted(disallowed),
                "limit": bounds[ALLOWED_CALLERS],
                "calls": sum(disallowed.values()),
            }
        )
    return out


# Slack on the database's pre-filter, so that float rounding there never drops an hour
# the exact check in Python would count.
SLACK = 1 - 1e-9


def _could_breach(bounds: dict[int, dict[str, Any]]) -> Q:
    """A HAVING condition on the hourly groups that keeps every hour that may break a
    bound: over the loosest-but-present bound of each key among the chunk's deployments
    (the least of them), or of a deployment with an allow-list (checked per caller). The
    exact check per deployment is `hour_breaches`; this only spares it the quiet hours."""
    least: dict[str, float] = {}
    for b in bounds.values():
        for key in NUMERIC_BOUNDS:
            if key in b:
                least[key] = min(least.get(key, b[key]), b[key])
    # Only the grouped columns and the aggregates: any other column would join the
    # GROUP BY.
    terms = []
    if MAX_ERROR_RATE in least:
        terms.append(Q(errors__gt=F("calls") * (least[MAX_ERROR_RATE] * SLACK)))
    if MAX_MEAN_LATENCY_MS in least:
        terms.append(Q(total__gt=F("calls") * (least[MAX_MEAN_LATENCY_MS] * SLACK)))
    if MAX_LATENCY_MS in least:
        terms.append(Q(peak__gt=least[MAX_LATENCY_MS] * SLACK))
    if MAX_CALLS_PER_HOUR in least:
        terms.append(Q(calls__gt=least[MAX_CALLS_PER_HOUR] * SLACK))
    listed = [pk for pk, b in bounds.items() if ALLOWED_CALLERS in b]
    if listed:
        terms.append(Q(deployment_id__in=listed))
    return reduce(operator.or_, terms)


def _badness(breaches: list[dict[str, Any]], calls: int) -> tuple[int, float]:
    """How far an hour is out of bounds, to pick the worst: the number of bounds broken,
    then the largest ratio of value to bound."""
    ratio = 0.0
    for b in breaches:
        if b["bound"] == ALLOWED_CALLERS:
            r = 1.0 + b["calls"] / max(calls, 1)
        elif b["limit"]:
            r = b["value"] / b["limit"]
        else:
            r = math.inf
        ratio = max(ratio, r)
    return len(breaches), ratio


class OutOfBounds:
    """Observed behaviour outside the approved bounds of the version a deployment runs,
    judged hour by hour over the last `FINDINGS_BOUNDS_WINDOW_HOURS`. It resolves once
    the breaching hours leave the window."""

    kind = Kind.OUT_OF_BOUNDS
    subject_type = DEPLOYMENT

    def scan(
        self,
        *,
        now: datetime,
        ids: Collection[int] | None,
        id_range: tuple[int, int] | None,
    ) -> Iterator[Condition]:
        window = bounds_window_hours()
        since = now - timedelta(hours=window)
        # Plain rows (34,000 at full scale): a model instance and its version's cost
        # several times more to build.
        deployments = {
            r["id"]: r
            for r in deployments_in(ids, id_range)
            .filter(
                observed_version__isnull=False,
                observed_version__approved_bounds__has_any_keys=list(BOUND_KEYS),
            )
            .values(
                *ROW_FIELDS,
                "observed_version_id",
                "observed_version__version",
                "observed_version__approved_bounds",
            )
        }
        bounds = {
            pk: b
            for pk, d in deployments.items()
            if (b := parse_bounds(d["observed_version__approved_bounds"]))
        }
        if not bounds:
            return
        usage = im.UsageHour.objects.filter(
            deployment_id__in=list(bounds), hour__gt=since - HOUR, hour__lte=now
        ).order_by()
        hours = (
            usage.values("deployment_id", "hour")
            .annotate(
                calls=Sum("calls"),
                errors=Sum("errors"),
                total=Sum("duration_ms_total"),
                peak=Max("duration_ms_max"),
            )
            .filter(_could_breach(bounds))
            .order_by("deployment_id", "hour")
        )
        # Callers off the allow-list, per deployment and hour (only for deployments that
        # have one): grouped in SQL, the allow-list checked on the groups.
        disallowed: dict[tuple[int, datetime], dict[str, int]] = defaultdict(dict)
        listed = [pk for pk, b in bounds.items() if ALLOWED_CALLERS in b]
        if listed:
            for row in (
                usage.filter(deployment_id__in=listed, calls__gt=0)
                .values("deployment_id", "hour", "caller_service")
                .annotate(n=Sum("calls"))
            ):
                caller = row["caller_service"]
                if caller not in bounds[row["deployment_id"]][ALLOWED_CALLERS]:
                    name = caller or UNKNOWN_CALLER
                    disallowed[(row["deployment_id"], row["hour"])][name] = row["n"]

        breaching: dict[int, list[tuple[dict[str, Any], list[dict[str, Any]]]]] = (
            defaultdict(list)
        )
        for hour in hours:
            pk = hour["deployment_id"]
            found = hour_breaches(
                bounds[pk], hour, disallowed.get((pk, hour["hour"]), {})
            )
            if found:
                breaching[pk].append((hour, found))

        for pk, bad in breaching.items():
            d = deployments[pk]
            version = d["observed_version__version"]
            broken = sorted({b["bound"] for _, found in bad for b in found})
            callers = sorted(
                {
                    name
                    for _, found in bad
                    for b in found
                    if b["bound"] == ALLOWED_CALLERS
                    for name in b["value"]
                }
            )
            worst = sorted(
                bad,
                key=lambda item: (_badness(item[1], item[0]["calls"]), item[0]["hour"]),
                reverse=True,
            )[:WORST_HOURS]
            records = [
                {
                    "source": "usage",
                    "what": f"{len(bad)} of the last {window} hours outside the "
                    f"approved bounds of version {version}",
                    "at": max(h["hour"] for h, _ in bad).isoformat(),
                }
            ]
            records += [
                {
                    "source": "usage",
                    "what": "hour outside the approved bounds",
                    "at": h["hour"].isoformat(),
                    "calls": h["calls"],
                    "errors": h["errors"],
                    "breaches": found,
                }
                for h, found in worst
            ]
            yield row_condition(
                self.kind,
                d,
                f"{d['name']} outside the approved bounds of version {version}: "
                + ", ".join(broken),
                {
                    "version_id": d["observed_version_id"],
                    "version": version,
                    "bounds": bounds[pk],
                    "breached": broken,
                    "callers_not_allowed": callers[:FACT_CALLERS],
                },
                records=records,
            )


# ---------------------------------------------------------------------------
# Third-party exposure
# ---------------------------------------------------------------------------
EXPOSED_TIERS = 2  # tier 1 and 2 deployments


def seen_days() -> int:
    return max(1, int(getattr(settings, "FINDINGS_THIRD_PARTY_SEEN_DAYS", 30)))


def external_providers() -> list[str]:
    names = getattr(settings, "FINDINGS_EXTERNAL_PROVIDERS", ["external"])
    # Providers are compared as connectors write them: lower case.
    return sorted({n.strip().lower() for n in names if n.strip()})


def third_party_q(prefix: str = "") -> Q:
    """A third-party identity: a vendor is named (a third party issued or uses it), or it
    is an OAuth app (a third party's application granted access), or its provider is a
    third party itself (`FINDINGS_EXTERNAL_PROVIDERS`, e.g. an OpenAI key). `prefix`
    reaches the identity through a relation (`"identity__"`)."""
    return (
        ~Q(**{f"{prefix}vendor": ""})
        | Q(**{f"{prefix}kind": im.NonHumanIdentity.Kind.OAUTH_APP})
        | Q(**{f"{prefix}provider__in": external_providers()})
    )


def _why_third_party(identity: dict[str, Any], providers: set[str]) -> list[str]:
    why = []
    if identity["vendor"]:
        why.append("vendor")
    if identity["kind"] == im.NonHumanIdentity.Kind.OAUTH_APP:
        why.append("oauth_app")
    if identity["provider"] in providers:
        why.append("external_provider")
    return why


class ThirdPartyExposure:
    """A tier 1 or 2 deployment that a third-party identity can invoke (an active one is
    bound to it) or was seen calling (usage within `FINDINGS_THIRD_PARTY_SEEN_DAYS`, by
    the usage row's identity or, where the row has none, by a caller service named as a
    third-party identity). Facts name the identities."""

    kind = Kind.THIRD_PARTY_EXPOSURE
    subject_type = DEPLOYMENT

    def scan(
        self,
        *,
        now: datetime,
        ids: Collection[int] | None,
        id_range: tuple[int, int] | None,
    ) -> Iterator[Condition]:
        deployments = {
            d.pk: d
            for d in deployments_in(ids, id_range)
            .filter(risk_tier__lte=EXPOSED_TIERS)
            .only(
                "pk", "name", "model_id", "team_id", "owner_id", "risk_tier", "source"
            )
        }
        if not deployments:
            return
        dep_ids = list(deployments)
        providers = set(external_providers())
        fields = ("id", "name", "kind", "vendor", "provider", "source", "created_at")

        # identity id -> its fields; deployment -> identity id -> how (bound / seen).
        identities: dict[int, dict[str, Any]] = {}
        exposure: dict[int, dict[int, dict[str, Any]]] = defaultdict(dict)

        binding = im.NonHumanIdentity.deployments.through.objects.filter(
            deployment_id__in=dep_ids,
            nonhumanidentity__status=im.NonHumanIdentity.Status.ACTIVE,
        ).filter(third_party_q("nonhumanidentity__"))
        for row in binding.values(
            "deployment_id", *(f"nonhumanidentity__{f}" for f in fields)
        ):
            identity = {f: row[f"nonhumanidentity__{f}"] for f in fields}
            identities[identity["id"]] = identity
            exposure[row["deployment_id"]][identity["id"]] = {"bound": True}

        since = now - timedelta(days=seen_days())
        # Calls grouped by deployment and caller: those of a third-party identity the row
        # names, and those of rows that name none, whose caller service is matched to
        # third-party identities by name below. The ids' subquery is hashed once per
        # query. The names are not matched in SQL: a subquery of names is too wide to
        # hash in work_mem at 250,000 identities, and PostgreSQL then rescans it for each
        # usage row (minutes at 3.6 million rows); the groups of unnamed rows are few.
        third_parties = im.NonHumanIdentity.objects.filter(third_party_q()).order_by()
        calls = (
            im.UsageHour.objects.filter(
                deployment_id__in=dep_ids,
                hour__gt=since - HOUR,
                hour__lte=now,
                calls__gt=0,
            )
            .filter(
                Q(identity_id__in=third_parties.values("pk")) | Q(identity__isnull=True)
            )
            .order_by()
            .values("deployment_id", "identity_id", "caller_service")
            .annotate(n=Sum("calls"), first=Min("hour"), last=Max("hour"))
        )
        seen = list(calls)
        if seen:
            wanted_ids = {r["identity_id"] for r in seen if r["identity_id"]}
            wanted_names = {
                r["caller_service"]
                for r in seen
                if not r["identity_id"] and r["caller_service"]
            }
            by_name: dict[str, list[int]] = defaultdict(list)
            for identity in (
                im.NonHumanIdentity.objects.filter(third_party_q())
                .filter(Q(pk__in=wanted_ids) | Q(name__in=wanted_names))
                .order_by("pk")
                .values(*fields)
            ):
                identities.setdefault(identity["id"], identity)
                if identity["name"] in wanted_names:
                    by_name[identity["name"]].append(identity["id"])
            for r in seen:
                if r["identity_id"]:
                    matched = (
                        [r["identity_id"]] if r["identity_id"] in identities else []
                    )
                else:
                    matched = by_name.get(r["caller_service"], [])
                for identity_id in matched:
                    how = exposure[r["deployment_id"]].setdefault(identity_id, {})
                    how["calls"] = how.get("calls", 0) + r["n"]
                    how["first"] = min(how.get("first", r["first"]), r["first"])
                    how["last"] = max(how.get("last", r["last"]), r["last"])

        for pk, exposed in exposure.items():
            d = deployments[pk]
            facts_identities = []
            records = []
            for identity_id in sorted(exposed):
                identity, how = identities[identity_id], exposed[identity_id]
                facts_identities.append(
                    {
                        "id": identity_id,
                        "name": identity["name"],
                        "kind": identity["kind"],
                        "provider": identity["provider"],
                        "vendor": identity["vendor"],
                        "third_party": _why_third_party(identity, providers),
                        "bound": bool(how.get("bound")),
                        "seen_calling": "calls" in how,
                    }
                )
                if how.get("bound"):
                    records.append(
                        {
                            "source": identity["source"],
                            "what": f"{identity['name']} can invoke it (bound)",
                            "at": identity["created_at"].isoformat(),
                        }
                    )
                if "calls" in how:
                    records.append(
                        {
                            "source": "usage",
                            "what": f"{identity['name']} called it: {how['calls']} "
                            f"calls since {how['first'].isoformat()}",
                            "at": how["last"].isoformat(),
                        }
                    )
            names = ", ".join(i["name"] for i in facts_identities[:3])
            more = len(facts_identities) - 3
            yield condition(
                self.kind,
                d,
                f"Third-party identity {names}{f' and {more} more' if more > 0 else ''} "
                f"can reach tier {d.risk_tier} deployment {d.name}",
                {"tier": d.risk_tier, "identities": facts_identities},
                records=records,
            )


DETECTORS = [OutOfBounds(), ThirdPartyExposure()]
