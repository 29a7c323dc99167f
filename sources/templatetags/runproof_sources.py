"""Template helpers for sources: badges, where a row came from, and the revoke link."""

from __future__ import annotations

from typing import Any

from django import template
from django.core.exceptions import ValidationError
from django.db.models import Model
from django.urls import reverse

from inventory import models as m
from inventory import permissions
from sources import models as sm
from sources.tables import health_badge as _health_badge
from sources.tables import kind_label, run_status_badge

register = template.Library()

REVOCABLE_KEYS = {m.NonHumanIdentity: "identity", m.ModelVersion: "modelversion"}


@register.simple_tag
def health_badge(source: sm.DataSource) -> str:
    return _health_badge(source)


@register.simple_tag
def run_badge(status: str) -> str:
    return run_status_badge(status)


@register.simple_tag
def source_info(obj: Model) -> dict[str, Any] | None:
    """Which data source reported `obj` (None for rows typed in): one query, by id."""
    label = getattr(obj, "source", "") or ""
    if label == m.MANUAL_SOURCE or not label:
        return None
    kind, _, pk = label.partition(":")
    source = (
        sm.DataSource.objects.filter(pk=int(pk), kind=kind).first()
        if pk.isdigit()
        else None
    )
    seen_at, gone_at = getattr(obj, "seen_at", None), getattr(obj, "gone_at", None)
    # A sync does not rewrite a row the source reports unchanged, so `seen_at` is when it
    # was last written; a row not gone was in the source's last successful listing.
    listed_at = getattr(source, "last_success_at", None)
    if gone_at is None and listed_at and (seen_at is None or listed_at > seen_at):
        seen_at = listed_at
    return {
        "label": label,
        "source": source,
        "kind_label": kind_label(kind) if source else "",
        "seen_at": seen_at,
        "gone_at": gone_at,
    }


@register.simple_tag(takes_context=True)
def revoke_url(context: template.Context, obj: Model) -> str:
    """The "Revoke at source" page for `obj`, if the user is an administrator and the
    connector of the source that reported it can revoke it; else ""."""
    request = context.get("request")
    key = REVOCABLE_KEYS.get(type(obj))
    if request is None or key is None or not permissions.is_admin(request.user):
        return ""
    from sources.views import revocable_source

    source, _ = revocable_source(obj)
    if source is None:
        return ""
    return reverse("sources:revoke", args=[key, obj.pk])


@register.simple_tag
def counter_meaning(name: str) -> str:
    """What a run's counter counts (the same words on every page that shows it)."""
    from sources.sync.engine import COUNTER_MEANINGS

    return COUNTER_MEANINGS.get(name, "")


@register.simple_tag
def counted_kinds(source: Any) -> str:
    """The kinds of rows a source's run counters count ("deployments and non-human
    identities"), or "" for a kind that keeps none."""
    from sources.sync import services

    try:
        owns = services.connector_class(source.kind).owns
    except (ImportError, ValidationError, KeyError):  # an unknown kind: nothing to say
        return ""
    names = [str(model._meta.verbose_name_plural) for model in owns]
    if len(names) > 1:
        return f"{', '.join(names[:-1])} and {names[-1]}"
    return names[0] if names else ""
