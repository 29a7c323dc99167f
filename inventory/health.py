"""/healthz: is the database answering, is the broker answering."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

BROKER_TIMEOUT_SECONDS = 2


def _database_ok() -> tuple[bool, str]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except (
        Exception
    ) as exc:  # any failure means "not answering"; the reason goes in the body
        return False, exc.__class__.__name__
    return True, connection.vendor


def _broker_ok() -> tuple[bool, str]:
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(
                max_retries=1,
                interval_start=0,
                interval_step=0,
                timeout=BROKER_TIMEOUT_SECONDS,
            )
            transport = conn.transport_cls
    except Exception as exc:  # as above
        return False, exc.__class__.__name__
    return True, str(transport)


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    db_ok, db_detail = _database_ok()
    broker_ok, broker_detail = _broker_ok()
    body = {
        "status": "ok" if db_ok and broker_ok else "fail",
        "database": {"ok": db_ok, "detail": db_detail},
        "broker": {"ok": broker_ok, "detail": broker_detail},
    }
    if not (db_ok and broker_ok):
        body["failed"] = [
            name for name, ok in (("database", db_ok), ("broker", broker_ok)) if not ok
        ]
    return JsonResponse(body, status=200 if db_ok and broker_ok else 503)
