from __future__ import annotations

import json
from typing import Any

from django import template
from django.db.models import Model
from django.utils.html import format_html

register = template.Library()

TONES = {
    "active": "success",
    "approved": "success",
    "quarantined": "warning",
    "withdrawn": "secondary",
    "pending": "info",
    "rejected": "danger",
    "deprecated": "warning",
    "retired": "secondary",
    "development": "info",
    "disabled": "secondary",
    "revoked": "secondary",
    "expired": "danger",
}


@register.filter
def object_label(obj: Model) -> str:
    """app_label.model_name, as the audit log records object types."""
    return obj._meta.label_lower


@register.simple_tag
def status_badge(value: str, display: str = "") -> str:
    return format_html(
        '<span class="badge text-bg-{}">{}</span>',
        TONES.get(value, "light"),
        display or value,
    )


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
