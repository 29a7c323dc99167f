"""POST: the committee approves a deployment's running endpoint and dependencies (the
state endpoint and dependency drift compare with)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from governance.approved_state import approved_state_record
from governance.views import _governed_post
from inventory import selectors as inventory_selectors


@require_POST
def deployment_approved_state(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = inventory_selectors.deployment_get_for_user(
        user=request.user, deployment_id=pk
    )
    return _governed_post(
        request,
        deployment,
        lambda: approved_state_record(actor=request.user, deployment=deployment),
        f"Deployment “{deployment}”: running endpoint and dependencies approved.",
    )
