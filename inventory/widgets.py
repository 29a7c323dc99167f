"""Form widgets that stay small however big the inventory grows."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.db.models import Model
from django.forms.utils import flatatt
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

# "fraud-scorer-prod (#30)": the text a labelled LookupInput shows and posts; the id in
# the brackets is what the form reads, so two objects of one name stay distinct.
LABELLED_ID = re.compile(r"\(#(\d{1,19})\)\s*$")


def lookup_id(text: Any) -> str:
    """The id a lookup's text names: "name (#30)" or a bare "30" give "30"; anything else
    is returned as typed (the field then answers "not a valid choice")."""
    if text is None:
        return ""
    if isinstance(text, Model):
        return str(text.pk)
    text = str(text).strip()
    match = LABELLED_ID.search(text)
    return match.group(1) if match else text


def labelled(label: str, pk: Any) -> str:
    return f"{label} (#{pk})"


class LookupInput(forms.TextInput):
    """Choose one object by id, with suggestions fetched as you type.

    A <select> of every deployment is megabytes of HTML at 50,000 rows; this renders one
    input and a <datalist> that htmx fills from /inventory/lookup/<kind>/ (20 matches,
    already narrowed to what the user may see). Without JavaScript, typing the id works.

    `labelled` (the edit forms): the input shows and posts "name (#id)" rather than the
    bare id, and the suggestions are offered in that form; the form reads the id back.
    The current object's label comes from one query per widget (StyledForm._lookup).
    The lookup URL names the parameter that carries the typed text (`field`), so a field
    called `model` is searched by its text, not taken for the version lookup's model.
    """

    template_name = "inventory/widgets/lookup.html"

    def __init__(
        self,
        kind: str,
        attrs: dict[str, Any] | None = None,
        *,
        labelled: bool = False,
    ) -> None:
        super().__init__(
            attrs={
                "autocomplete": "off",
                "placeholder": "Type a name, pick from the list",
                **(attrs or {}),
            }
        )
        self.kind = kind
        self.labelled = labelled
        self.current_label = ""
        self.current_pk = ""

    def value_from_datadict(self, data, files, name: str) -> Any:
        value = super().value_from_datadict(data, files, name)
        return lookup_id(value) if value is not None else None

    def format_value(self, value: Any) -> str | None:
        shown = super().format_value(value)
        if (
            self.labelled
            and shown
            and self.current_label
            and str(lookup_id(shown)) == str(self.current_pk)
        ):
            return labelled(self.current_label, self.current_pk)
        return shown

    def get_context(
        self, name: str, value: Any, attrs: dict[str, Any] | None
    ) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        widget = context["widget"]
        query = {"field": name, **({"labelled": "1"} if self.labelled else {})}
        widget["lookup_url"] = (
            f"{reverse('inventory:lookup', args=[self.kind])}?{urlencode(query)}"
        )
        widget["labelled"] = self.labelled
        widget["datalist_id"] = f"{widget['attrs'].get('id', name)}-options"
        widget["current_label"] = self.current_label
        return context


def describe_choice(field: forms.Field, value: Any) -> str:
    """The label of the object a LookupInput currently holds, for display beside it: one
    query, and none when nothing is chosen or the text names no id."""
    value = lookup_id(value)
    if not value.isdigit() or int(value) > 2**63 - 1:
        return ""
    obj = field.queryset.filter(pk=int(value)).first()
    if obj is None:
        return ""
    if isinstance(field.widget, LookupInput):
        field.widget.current_pk = str(obj.pk)
    return str(obj)


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
