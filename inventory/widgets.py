"""Form widgets that stay small however big the inventory grows."""

from __future__ import annotations

from typing import Any

from django import forms
from django.forms.utils import flatatt
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe


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


class FastSelect(forms.Select):
    """A <select> whose options are written in Python.

    Django's Select renders a template per <option>; with 400 teams that was a fifth of an
    administrator's list page (bench). The markup is the same.
    """

    def render(
        self,
        name: str,
        value: Any,
        attrs: dict[str, Any] | None = None,
        renderer: Any = None,
    ) -> str:
        widget = self.get_context(name, value, attrs)["widget"]
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            (
                (
                    option["value"],
                    mark_safe(" selected") if option["selected"] else "",
                    option["label"],
                )  # noqa: S308
                for _, group, _ in widget["optgroups"]
                for option in group
            ),
        )
        return format_html(
            '<select name="{}"{}>{}</select>',
            widget["name"],
            flatatt(widget["attrs"]),
            options,
        )


def use_fast_select(field: forms.Field) -> None:
    """Swap a field's plain Select for a FastSelect, keeping its attributes and choices."""
    if type(field.widget) is forms.Select:
        widget = FastSelect(attrs=field.widget.attrs)
        widget.choices = field.widget.choices
        widget.is_required = field.widget.is_required
        field.widget = widget
