"""A refused request is logged as one line, without a traceback (config/logging.py)."""

from __future__ import annotations

import io
import logging

import pytest
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.urls import reverse

from config.logging import OneLineClientErrors
from inventory import permissions


@pytest.mark.django_db
def test_a_403_is_one_line_naming_the_path_and_the_reason(
    client, owner, team_a, caplog
):
    client.force_login(owner)
    url = reverse("inventory:team_edit", args=[team_a.pk])
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get(url)
    assert response.status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 1
    record = records[0]
    assert record.levelname == "WARNING"
    assert record.exc_info is None and record.exc_text is None
    assert record.getMessage().startswith(f"Forbidden (Permission denied): {url}")
    text = logging.Formatter("%(levelname)s %(name)s %(message)s").format(record)
    assert "\n" not in text and "Traceback" not in text


@pytest.mark.django_db
def test_a_403_with_a_reason_keeps_the_reason(client, auditor, team_a, caplog):
    from tests.factories import AIModelFactory, IdentityFactory  # noqa: PLC0415

    identity = IdentityFactory(team=team_a)
    deployment_model = AIModelFactory(team=team_a)
    client.force_login(auditor)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.post(
            reverse("inventory:identity_bind", args=[identity.pk]),
            {"deployment": deployment_model.pk},
        )
    assert response.status_code == 403
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info is None
    assert "\n" not in record.getMessage()


def _through_the_console_handler(record: logging.LogRecord) -> str:
    """Format a record as the configured console handler does (filters included)."""
    handler = next(
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, OneLineClientErrors) for f in h.filters)
    )
    stream = io.StringIO()
    copy = logging.StreamHandler(stream)
    copy.setFormatter(handler.formatter)
    for f in handler.filters:
        copy.addFilter(f)
    copy.handle(record)
    return stream.getvalue()


def _record(name, status, exc, msg="%s", args=("x",)):
    try:
        raise exc
    except type(exc):
        import sys  # noqa: PLC0415

        info = sys.exc_info()
    record = logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, info)
    if status is not None:
        record.status_code = status
    return record


def test_the_console_handler_prints_a_security_refusal_as_one_line():
    record = _record(
        "django.security.SuspiciousOperation",
        400,
        SuspiciousOperation("Invalid HTTP_HOST header"),
        msg="Invalid HTTP_HOST header",
        args=(),
    )
    out = _through_the_console_handler(record)
    assert out.count("\n") == 1 and "Traceback" not in out
    assert "django.security.SuspiciousOperation Invalid HTTP_HOST header" in out


def test_a_server_error_keeps_its_traceback():
    record = _record("django.request", 500, RuntimeError("boom"))
    out = _through_the_console_handler(record)
    assert "Traceback" in out and "RuntimeError: boom" in out


def test_the_reason_is_added_once_and_bounded():
    reason = permissions.NOT_YOURS
    record = _record(
        "django.request",
        403,
        PermissionDenied(reason),
        msg="Forbidden (Permission denied): %s",
        args=("/p/",),
    )
    OneLineClientErrors().filter(record)
    assert record.getMessage() == f"Forbidden (Permission denied): /p/ ({reason})"
    long = _record("django.request", 403, PermissionDenied("x\n" * 500))
    OneLineClientErrors().filter(long)
    assert "\n" not in long.getMessage() and len(long.getMessage()) < 260
