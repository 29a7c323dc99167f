from __future__ import annotations

import re

from django import forms

from inventory.widgets import FastSelect, use_fast_select


def _options(html: str) -> list[tuple[str, bool, str]]:
    return [
        (value, bool(selected), label)
        for value, selected, label in re.findall(
            r'<option value="([^"]*)"( selected)?>([^<]*)</option>', html
        )
    ]


def test_fast_select_renders_what_django_select_renders():
    choices = [("", "Any"), ("a", "Alpha & co"), ("b", '<b>"Beta"</b>')]
    slow = forms.Select(
        choices=choices, attrs={"class": "form-select", "id": "x"}
    ).render("kind", "a")
    fast = FastSelect(
        choices=choices, attrs={"class": "form-select", "id": "x"}
    ).render("kind", "a")
    assert _options(fast) == _options(slow)
    assert _options(fast)[1] == ("a", True, "Alpha &amp; co")
    assert "<b>" not in fast  # labels are escaped
    assert fast.startswith('<select name="kind" class="form-select" id="x">')


def test_use_fast_select_keeps_choices_that_are_set_later():
    field = forms.ChoiceField(choices=[("x", "X")])
    use_fast_select(field)
    field.choices = [("y", "Y")]
    assert isinstance(field.widget, FastSelect)
    assert _options(field.widget.render("f", None)) == [("y", False, "Y")]
