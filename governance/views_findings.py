"""Finding pages."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from governance import findings


@require_GET
@login_required
def finding_detail(request: HttpRequest, pk: int) -> HttpResponse:
    finding = findings.finding_get_for_user(user=request.user, pk=pk)
    events = finding.events.order_by("-at", "-id")[:200]
    return render(
        request,
        "governance/finding_detail.html",
        {"finding": finding, "events": events},
    )
