"""The pipelines pages: the dependency graph around a deployment or through a system
(thin: governance.pipelines reads, this renders)."""

from __future__ import annotations

from dataclasses import asdict

from django.contrib.auth.decorators import login_required
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.views.decorators.http import require_GET

from governance import pipelines
from inventory.csv_export import csv_stream

FORMAT_UNKNOWN = "format must be html, csv or json."
NODE_COLUMNS = [
    "id",
    "name",
    "model",
    "version",
    "approval",
    "tier",
    "open_findings",
    "status",
    "environment",
    "system",
    "in_scope",
    "state",
    "reasons",
]
EDGE_COLUMNS = [
    "upstream",
    "upstream_name",
    "downstream",
    "downstream_name",
    "kind",
    "state",
]


def _render(
    request: HttpRequest, pipeline: pipelines.Pipeline, kind: str
) -> HttpResponse:
    wanted = request.GET.get("format") or "html"
    if wanted == "json":
        return JsonResponse(
            {
                "title": pipeline.title,
                "truncated": pipeline.truncated,
                "depth_reached": pipeline.depth_reached,
                "nodes": [asdict(n) for n in pipeline.nodes],
                "edges": [asdict(e) for e in pipeline.edges],
            }
        )
    if wanted == "csv":
        edges = request.GET.get("table") == "edges"
        columns = EDGE_COLUMNS if edges else NODE_COLUMNS
        rows = pipeline.edges if edges else pipeline.nodes
        response = StreamingHttpResponse(
            csv_stream(columns, ([getattr(r, c) for c in columns] for r in rows)),
            content_type="text/csv; charset=utf-8",
        )
        name = f"{kind}-{pipeline.root.pk}-{'edges' if edges else 'nodes'}"
        response["Content-Disposition"] = (
            f'attachment; filename="runproof-pipeline-{name}.csv"'
        )
        return response
    if wanted != "html":
        return HttpResponseBadRequest(FORMAT_UNKNOWN)
    return render(
        request,
        "governance/pipeline.html",
        {
            "pipeline": pipeline,
            "kind": kind,
            "graph": pipeline.graph(),
            "max_nodes": pipelines.MAX_NODES,
            "max_depth": pipelines.MAX_DEPTH,
        },
    )


@require_GET
@login_required
def pipeline_deployment(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = pipelines.pipeline_for_deployment(user=request.user, pk=pk)
    return _render(request, pipeline, "deployment")


@require_GET
@login_required
def pipeline_system(request: HttpRequest, pk: int) -> HttpResponse:
    pipeline = pipelines.pipeline_for_system(user=request.user, pk=pk)
    return _render(request, pipeline, "system")
