"""The pipelines pages: the dependency graph around a deployment or through a system
(thin: governance.pipelines reads, this renders)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from governance import pipelines


def _render(
    request: HttpRequest, pipeline: pipelines.Pipeline, kind: str
) -> HttpResponse:
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
