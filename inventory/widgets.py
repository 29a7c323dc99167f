"""Form widgets that stay small however big the inventory grows."""

from __future__ import annotations

from typing import Any

from django import forms
from django.urls import reverse


class LookupInput(forms.TextInput):
    """Choose one object by id, with suggestions fetched as you type.

    A <select> of every deployment is megabytes of HTML at 50,000 rows; this renders one
    input and a <datalist> that htmx fills from /inventory/lookup/<kind>/ (20 matches,
    already narrowed to what the user may see). Without JavaScript, typing the id works.
    """

    template_name = "inventory/widgets/lookup.html"

    def __init__(self, kind: str, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(
            attrs={
                "autocomplete": "off",
                "placeholder": "Type a name, pick from the list",
                **(attrs or {}),
            }
        )
        self.kind = kind
        self.current_label = ""

    def get_context(
        self, name: str, value: Any, attrs: dict[str, Any] | None
    ) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        widget = context["widget"]
        widget["lookup_url"] = reverse("inventory:lookup", args=[self.kind])
        widget["datalist_id"] = f"{widget['attrs'].get('id', name)}-options"
        widget["current_label"] = self.current_label
        return context


def describe_choice(field: forms.Field, value: Any) -> str:
    """The label of the object a LookupInput currently holds, for display beside it."""
    if value in (None, ""):
        return ""
    try:
        obj = field.queryset.filter(pk=value).first()
    except (ValueError, TypeError):
        return ""
    return str(obj) if obj is not None else ""
