"""The API token issue form. It only collects input: services.api_token_issue decides."""

from __future__ import annotations

from django import forms

from inventory import models as m
from inventory import services

TOKEN_DAYS_DEFAULT = 90


class TokenIssueForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        help_text="What uses it, e.g. “CI deploy events” or “BI export”.",
        widget=forms.TextInput(attrs={"class": "form-control", "autocomplete": "off"}),
    )
    scopes = forms.MultipleChoiceField(
        choices=m.APIToken.Scope.choices,
        widget=forms.CheckboxSelectMultiple(attrs={"class": "form-check-input"}),
        error_messages={"required": services.TOKEN_NO_SCOPES},
        help_text="Give only what it needs.",
    )
    days = forms.IntegerField(
        label="Valid for (days)",
        min_value=1,
        max_value=730,
        initial=TOKEN_DAYS_DEFAULT,
        error_messages={
            "min_value": services.TOKEN_DAYS_RANGE,
            "max_value": services.TOKEN_DAYS_RANGE,
        },
        widget=forms.NumberInput(attrs={"class": "form-control"}),
    )
