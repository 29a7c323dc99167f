"""Webhooks that sources push: the HTTP side. What a delivery means is the receiver's
(`sources.receivers.webhooks.MlflowWebhookReceiver`: decode -> aggregate -> apply).
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from sources import models as sm
from sources.receivers.base import ReceiverError
from sources.receivers.webhooks import MlflowWebhookReceiver

MAX_BODY_BYTES = 1024 * 1024

NO_SOURCE = "No MLflow source with this id."
TOO_LARGE = f"The body is larger than {MAX_BODY_BYTES} bytes."
BAD_LENGTH = "The Content-Length header is not a number."


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _read_body(request: HttpRequest) -> bytes | JsonResponse:
    length = request.META.get("CONTENT_LENGTH") or "0"
    try:
        declared = int(length)
    except ValueError:
        return _error(BAD_LENGTH, 400)
    if declared > MAX_BODY_BYTES:
        return _error(TOO_LARGE, 413)
    body = request.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _error(TOO_LARGE, 413)
    return body


@csrf_exempt
@login_not_required
@never_cache
@require_POST
def mlflow_webhook(request: HttpRequest, source_id: int) -> JsonResponse:
    source = sm.DataSource.objects.filter(
        pk=source_id, kind=sm.DataSource.Kind.MLFLOW
    ).first()
    if source is None:
        return _error(NO_SOURCE, 404)
    body = _read_body(request)
    if isinstance(body, JsonResponse):
        return body
    try:
        result = MlflowWebhookReceiver(source=source).receive(body, request.headers)
    except ReceiverError as exc:
        return _error(exc.message, exc.status)
    if result.run is None:
        return JsonResponse({"ignored": result.ignored}, status=200)
    return JsonResponse({"run": result.run.pk, "created": result.created}, status=202)
