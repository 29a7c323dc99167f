"""Logging helpers the LOGGING setting names.

Django logs a refused request (403 PermissionDenied, 400 SuspiciousOperation, 404) with the
exception attached, so each one printed a whole traceback: noise that buried the errors
that matter. A client error is one line: what was refused, where, and why.
"""

from __future__ import annotations

import logging

REASON_MAX = 200


class OneLineClientErrors(logging.Filter):
    """Drop the traceback from records about a 4xx answer; keep the exception's message.

    "Forbidden (Permission denied): /inventory/teams/3/edit/ (Only administrators …)".
    Server errors (5xx) and records without a status code keep their traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if not isinstance(status, int) or not 400 <= status < 500:
            return True
        if not record.exc_info:
            return True
        exc = record.exc_info[1]
        message = record.getMessage()
        reason = " ".join(str(exc).split())[:REASON_MAX] if exc is not None else ""
        if reason and reason not in message:
            message = f"{message} ({reason})"
        record.msg, record.args = message, ()
        record.exc_info, record.exc_text = None, None
        return True
