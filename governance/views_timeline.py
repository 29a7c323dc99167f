"""The incident timeline page and its CSV and JSON exports (thin: governance.timeline
reads, this renders)."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from governance import timeline as tl
from inventory.csv_export import csv_stream

RANGE_TOO_LONG = f"Choose a range of at most {tl.MAX_DAYS} days."
RANGE_BACKWARDS = "“Since” must be before “until”."
FORMATS = ("html", "csv", "json")


class TimelineForm(forms.Form):
    since = forms.DateTimeField(
        required=False, help_text="UTC; a date or an ISO time. Default: 30 days ago."
    )
    until = forms.DateTimeField(required=False, help_text="UTC. Default: now.")
    kind = forms.MultipleChoiceField(
        required=False,
        choices=list(tl.KINDS.items()),
        widget=forms.CheckboxSelectMultiple,
        label="Show",
    )
    caller = forms.CharField(
        required=False, max_length=200, help_text="Only this caller's calls."
    )
    order = forms.ChoiceField(
        required=False,
        choices=[("newest", "Newest first"), ("oldest", "Oldest first")],
        label="Order",
    )
    format = forms.ChoiceField(
        required=False, choices=[(f, f) for f in FORMATS], widget=forms.HiddenInput
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        now = timezone.now()
        until = data.get("until") or now
        since = data.get("since") or until - timedelta(days=tl.DEFAULT_DAYS)
        if since >= until:
            raise forms.ValidationError(RANGE_BACKWARDS)
        if until - since > timedelta(days=tl.MAX_DAYS):
            raise forms.ValidationError(RANGE_TOO_LONG)
        data["since"], data["until"] = since.astimezone(UTC), until.astimezone(UTC)
        data["kind"] = data.get("kind") or list(tl.KINDS)
        return data


def _errors(form: forms.Form) -> list[str]:
    return [f"{name}: {', '.join(errs)}" for name, errs in form.errors.items()]


@require_GET
@login_required
@vary_on_headers("HX-Request")
def timeline(request: HttpRequest, subject: str, pk: int) -> HttpResponse:
    related = tl.subject_get(user=request.user, subject=subject, pk=pk)
    form = TimelineForm(request.GET or None)
    wanted = request.GET.get("format") or "html"
    if request.GET and not form.is_valid():
        if wanted in ("csv", "json"):
            return JsonResponse({"errors": form.errors}, status=400)
        return render(
            request,
            "governance/timeline.html",
            {
                "form": form,
                "related": related,
                "timeline": None,
                "subject": subject,
                "kinds": _kinds(request.GET.getlist("kind")),
                "since_value": request.GET.get("since", ""),
                "until_value": request.GET.get("until", ""),
            },
            status=400,
        )
    if form.is_bound:
        data = form.cleaned_data
    else:
        since, until = tl.default_range()
        data = {"since": since, "until": until, "kind": list(tl.KINDS), "caller": ""}
    built = tl.timeline_build(
        related=related,
        since=data["since"],
        until=data["until"],
        kinds=data["kind"],
        caller=data.get("caller") or "",
    )
    if data.get("order") == "oldest":
        built.events.reverse()
    if wanted == "json":
        return JsonResponse(tl.export_json(built))
    if wanted == "csv":
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(
            csv_stream(tl.EXPORT_HEADER, tl.export_rows(built)),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="runproof-timeline-{subject}-{related.subject.pk}-{stamp}.csv"'
        )
        return response
    for event in built.events:
        if event.since_link:
            # "Who called it since?": the same page from this change on.
            event.since_url = _url(request, data, since=event.at)
    return render(
        request,
        "governance/timeline.html",
        {
            "form": form,
            "related": related,
            "subject": subject,
            "timeline": built,
            "chart_data": tl.chart_data(built),
            "row_cap": tl.ROW_CAP,
            "caller_cap": tl.CALLER_CAP,
            "kinds": _kinds(built.kinds),
            "order": data.get("order") or "newest",
            "since_value": data["since"].strftime("%Y-%m-%dT%H:%M"),
            "until_value": data["until"].strftime("%Y-%m-%dT%H:%M"),
            "csv_url": _url(request, data, format="csv"),
            "json_url": _url(request, data, format="json"),
        },
    )


def _kinds(chosen: list[str]) -> list[tuple[str, str, bool]]:
    return [(k, label, k in chosen) for k, label in tl.KINDS.items()]


def _url(request: HttpRequest, data: dict[str, Any], **changes: Any) -> str:
    """This page with the same filters but `changes` (for exports and "callers since")."""
    params = {
        "since": data["since"],
        "until": data["until"],
        "kind": data["kind"],
        "caller": data.get("caller") or "",
        "order": data.get("order") or "",
        **changes,
    }
    for key in ("since", "until"):
        params[key] = params[key].isoformat()
    for key in ("caller", "order"):
        if not params[key]:
            del params[key]
    return f"{request.path}?{urlencode(params, doseq=True)}"
