"""Reads of sources, runs and deployment events (every signed-in user reads sources; the
views show settings to administrators only)."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404

from sources import models as sm


# ---------------------------------------------------------------------------
# Data sources and their runs (every signed-in user reads them; settings are
# shown to administrators only, by the views)
# ---------------------------------------------------------------------------
def datasource_list() -> QuerySet[sm.DataSource]:
    """Sources with their latest run's status and id (one subquery each, no N+1)."""
    latest = sm.SyncRun.objects.filter(source=OuterRef("pk")).order_by(
        "-requested_at", "-id"
    )
    return sm.DataSource.objects.select_related("team").annotate(
        last_run_status=Subquery(latest.values("status")[:1]),
        last_run_id=Subquery(latest.values("pk")[:1]),
    )


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


def syncrun_list() -> QuerySet[sm.SyncRun]:
    """Every run of every source, with what the runs list shows beside each (no N+1).

    Runs are read by everyone signed in, like the sources themselves.
    """
    return sm.SyncRun.objects.select_related("source", "requested_by")


def deploymentevent_list() -> QuerySet[sm.DeploymentEvent]:
    """Every deployment event a pipeline sent, with the rows each one points to."""
    return sm.DeploymentEvent.objects.select_related(
        "deployment", "model_version", "sent_by"
    )
