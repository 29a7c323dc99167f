"""Reads of sources, runs and deployment events, scoped by the inventory's rules.

Sources are shared: every signed-in user reads a source's health and its runs (the views
show settings to administrators only). What a run or a push says about the inventory's
objects follows `inventory.permissions`: a model owner reads only the deployment events,
skipped records and changes about what they or their teams own; another team's are not
there for them. Roles that read everything (administrators, risk, compliance, auditors,
read-scoped tokens) read it all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.models import Model, OuterRef, Q, QuerySet, Subquery
from django.http import Http404

from inventory import models as m
from inventory import permissions
from inventory.roles import Role
from sources import models as sm

if TYPE_CHECKING:
    from inventory.permissions import User

# The inventory rows a source reports, keyed by (source label, external id); what a run's
# errors and changes name, by the verbose name the engine writes into each change.
SOURCED_MODELS: tuple[type[Model], ...] = (
    m.AIModel,
    m.ModelVersion,
    m.Deployment,
    m.NonHumanIdentity,
)


# ---------------------------------------------------------------------------
# Data sources and their runs (every signed-in user reads them; settings are
# shown to administrators only, by the views)
# ---------------------------------------------------------------------------
# The runs a source's health comes from (sources.sync.runner._finish and _fail_exhausted):
# finished, and not dry runs. "Last run" beside the health is the latest of these, so the
# two always speak of the same run (a queued retry or a dry run changes neither).
HEALTH_STATUSES = (
    sm.SyncRun.Status.SUCCEEDED,
    sm.SyncRun.Status.PARTIAL,
    sm.SyncRun.Status.FAILED,
)


def _health_runs() -> QuerySet[sm.SyncRun]:
    return sm.SyncRun.objects.filter(
        dry_run=False, status__in=HEALTH_STATUSES
    ).order_by("-finished_at", "-id")


def syncrun_last_finished(*, source: sm.DataSource) -> sm.SyncRun | None:
    """The run the source's health speaks of (the latest finished, not dry), or None."""
    return _health_runs().filter(source=source).first()


def datasource_list(*, user: User | None = None) -> QuerySet[sm.DataSource]:
    """Sources with their last finished run's status and id (one subquery each, no N+1):
    the run their health comes from.

    Sources are shared: `user` only shuts out someone not signed in.
    """
    latest = _health_runs().filter(source=OuterRef("pk"))
    sources = sm.DataSource.objects.select_related("team").annotate(
        last_run_status=Subquery(latest.values("status")[:1]),
        last_run_id=Subquery(latest.values("pk")[:1]),
    )
    if user is not None and not user.is_authenticated:
        return sources.none()
    return sources


def datasource_get(*, source_id: int) -> sm.DataSource:
    source = sm.DataSource.objects.select_related("team").filter(pk=source_id).first()
    if source is None:
        raise Http404
    return source


def syncrun_recent(*, source: sm.DataSource, limit: int) -> list[sm.SyncRun]:
    """The source's latest runs, newest first."""
    return list(
        sm.SyncRun.objects.filter(source=source)
        .select_related("requested_by")
        .order_by("-requested_at", "-id")[:limit]
    )


def syncrun_get(*, run_id: int) -> sm.SyncRun:
    run = (
        sm.SyncRun.objects.select_related("source", "requested_by")
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        raise Http404
    return run


def datasource_names() -> dict[str, str]:
    """Source label ("<kind>:<id>") -> source name, for lists that show where rows came from."""
    return {
        f"{kind}:{pk}": name
        for pk, kind, name in sm.DataSource.objects.order_by("name").values_list(
            "pk", "kind", "name"
        )
    }


def syncrun_list(*, user: User | None = None) -> QuerySet[sm.SyncRun]:
    """Every run of every source, with what the runs list shows beside each (no N+1).

    Runs are read by everyone signed in, like the sources themselves: a run's counts and
    its failure say how the source is doing, not what it said about whose objects.
    """
    runs = sm.SyncRun.objects.select_related("source", "requested_by")
    if user is not None and not user.is_authenticated:
        return runs.none()
    return runs


def deploymentevent_list(*, user: User) -> QuerySet[sm.DeploymentEvent]:
    """The deployment events `user` may read, with the rows each one points to.

    An owner reads an event about a deployment they may read or, when the event matched
    no deployment, about a model version they may read; nothing else.
    """
    events = sm.DeploymentEvent.objects.select_related(
        "deployment", "model_version", "sent_by"
    )
    if permissions.reads_all(user):
        return events
    if not user.is_authenticated or not permissions.has_role(user, Role.OWNER):
        return events.none()
    deployments = permissions.scope(m.Deployment.objects.all(), user)
    versions = permissions.scope(m.ModelVersion.objects.all(), user)
    return events.filter(
        Q(deployment__in=deployments.values("pk"))
        | Q(deployment__isnull=True, model_version__in=versions.values("pk"))
    )


def _visible_external_ids(
    *, user: User, source_label: str, wanted: dict[str, set[str]]
) -> set[tuple[str, str]]:
    """Of `wanted` (verbose name -> external ids), the (kind, id) pairs `user` may read.

    One query per kind named, whatever the number of ids.
    """
    visible: set[tuple[str, str]] = set()
    for model in SOURCED_MODELS:
        kind = str(model._meta.verbose_name)
        ids = wanted.get(kind)
        if not ids:
            continue
        rows = permissions.scope(
            model._default_manager.filter(source=source_label, external_id__in=ids),
            user,
        ).values_list("external_id", flat=True)
        visible.update((kind, ext) for ext in rows)
    return visible


def syncrun_changes_for_user(*, run: sm.SyncRun, user: User) -> list[dict[str, Any]]:
    """The run's sample of changes that `user` may read.

    An owner sees the changes to rows they may read, and the run's notes that name no
    object; a change to another team's row is left out.
    """
    changes = list(run.changes or [])
    if permissions.reads_all(user):
        return changes
    wanted: dict[str, set[str]] = {}
    for change in changes:
        if change.get("external_id"):
            wanted.setdefault(str(change.get("kind")), set()).add(
                str(change["external_id"])
            )
    visible = _visible_external_ids(
        user=user, source_label=run.source.source_label, wanted=wanted
    )
    return [
        c
        for c in changes
        if not c.get("external_id")
        or (str(c.get("kind")), str(c["external_id"])) in visible
    ]


def syncerror_list_for_user(
    *, run: sm.SyncRun, user: User, limit: int
) -> list[sm.SyncError]:
    """The run's skipped records `user` may read, first ones first.

    A skipped record names its source's external id; an owner sees one only when it is
    about a row they may read (one the source had reported before). The others' excerpts
    are the source's words about someone else's object.
    """
    errors = run.error_rows.order_by("id")
    if permissions.reads_all(user):
        return list(errors[:limit])
    ids = set(
        errors.exclude(external_id="").values_list("external_id", flat=True)[:5000]
    )
    wanted = {str(model._meta.verbose_name): ids for model in SOURCED_MODELS}
    visible = {
        ext
        for _kind, ext in _visible_external_ids(
            user=user, source_label=run.source.source_label, wanted=wanted
        )
    }
    return list(errors.filter(external_id__in=visible)[:limit])


def deploymentevent_recent_for_source(
    *, source: sm.DataSource, user: User, limit: int
) -> list[sm.DeploymentEvent]:
    """A CI/CD source's latest events that `user` may read, newest first."""
    return list(
        deploymentevent_list(user=user)
        .filter(deployment__source=source.source_label)
        .order_by("-received_at", "-id")[:limit]
    )
