"""The release gate's decisions: a list (filter, sort, CSV) and one decision's page.

Read by the risk committee, compliance officers, auditors and administrators; a model
owner reads the decisions about their teams' and own models and deployments
(governance.gate.decision_list). The decisions themselves come from POST /api/v1/gate.
"""

from __future__ import annotations

import json
from typing import Any

import django_filters as df
import django_tables2 as tables
from django import forms
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from governance import gate
from governance.filters import DayRangeFilter
from governance.models import GateDecision
from inventory import models as m
from inventory.lists import ListPage, keyset_list
from inventory.tables import KeysetTable, WhenColumn

DECISION_CHOICES = ((gate.ALLOW, "Allow"), (gate.DENY, "Deny"))
GATE_SORTS = {"created_at": "created_at"}
GATE_DEFAULT_SORT = "-created_at"


class GateDecisionFilter(DayRangeFilter):
    search_fields = ("version", "actor_label")
    date_field = "created_at"

    decision = df.ChoiceFilter(
        choices=DECISION_CHOICES, method="filter_decision", empty_label="Any"
    )
    model = df.CharFilter(
        method="filter_model",
        label="Model",
        widget=forms.TextInput(attrs={"placeholder": "name or id"}),
    )
    environment = df.ChoiceFilter(
        choices=m.Deployment.Environment.choices, empty_label="Any"
    )

    class Meta:
        model = GateDecision
        fields: list[str] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.form.fields["q"].label = "Version or token"
        self.form.fields["q"].widget.attrs["placeholder"] = "contains…"

    def filter_decision(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(allowed=value == gate.ALLOW)

    def filter_model(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if value.isdigit() and len(value) < 19:
            return queryset.filter(model_id=int(value))
        return queryset.filter(model__name__iexact=value)


class GateDecisionTable(KeysetTable):
    id = tables.Column(verbose_name="#", empty_values=())
    created_at = WhenColumn(
        verbose_name="When (UTC)", orderable=True, fmt="%Y-%m-%d %H:%M:%S"
    )
    allowed = tables.Column(verbose_name="Decision", empty_values=())
    model = tables.Column(empty_values=())
    version = tables.Column()
    environment = tables.Column()
    deployment = tables.Column(empty_values=())
    reasons = tables.Column(empty_values=())
    actor_label = tables.Column(verbose_name="Asked by")

    class Meta(KeysetTable.Meta):
        model = GateDecision
        fields = (
            "id",
            "created_at",
            "allowed",
            "model",
            "version",
            "environment",
            "deployment",
            "reasons",
            "actor_label",
        )
        attrs = {**KeysetTable.Meta.attrs, "data-testid": "gate-table"}
        empty_text = "No release gate decisions match these filters."

    def render_id(self, record: GateDecision) -> str:
        return format_html(
            '<a href="{}">#{}</a>',
            self.urls.path("governance:gate_decision_detail", record.pk),
            record.pk,
        )

    def render_allowed(self, record: GateDecision) -> str:
        if record.allowed:
            return format_html('<span class="badge text-bg-success">{}</span>', "allow")
        return format_html('<span class="badge text-bg-danger">{}</span>', "deny")

    def render_model(self, record: GateDecision) -> str:
        if record.model_id is None:
            return str(record.inputs.get("model", "—"))
        return format_html(
            '<a href="{}">{}</a>', self.urls.of(record.model), record.model.name
        )

    def render_deployment(self, record: GateDecision) -> str:
        if record.deployment_id is None:
            return record.inputs.get("endpoint") or "—"
        return format_html(
            '<a href="{}">{}</a>',
            self.urls.of(record.deployment),
            record.deployment.name,
        )

    def render_reasons(self, record: GateDecision) -> str:
        if not record.reasons:
            return "—"
        return format_html_join(
            " ",
            '<code class="small">{}</code>',
            ((r.get("code", ""),) for r in record.reasons),
        )


def _json_cell(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


GATE_EXPORT_COLUMNS = [
    ("id", "pk"),
    ("created_at", "created_at"),
    ("asked_by", "actor_label"),
    ("decision", lambda d: gate.ALLOW if d.allowed else gate.DENY),
    ("model_id", "model_id"),
    ("model", "model.name"),
    ("version", "version"),
    ("environment", "environment"),
    ("deployment_id", "deployment_id"),
    ("deployment", "deployment.name"),
    ("reason_codes", lambda d: " ".join(r.get("code", "") for r in d.reasons)),
    ("reasons", lambda d: _json_cell(d.reasons)),
    ("inputs", lambda d: _json_cell(d.inputs)),
]

GATE_LIST = ListPage(
    title="Release gate decisions",
    description="Every answer of the CI/CD release gate (POST /api/v1/gate): who asked, "
    "for which model version and target, allow or deny, and every reason.",
    filterset=GateDecisionFilter,
    table=GateDecisionTable,
    sorts=GATE_SORTS,
    default_sort=GATE_DEFAULT_SORT,
    export_columns=GATE_EXPORT_COLUMNS,
    export_name="gate-decisions",
    export_chunk_size=1000,
    noun="decision",
    breadcrumbs=(("Audit log", "governance:audit_list"),),
)


@require_GET
@vary_on_headers("HX-Request")  # never let a cache serve the fragment as the page
def gate_decision_list(request: HttpRequest) -> HttpResponse:
    decisions = gate.decision_list(user=request.user)  # 403 for roles without it
    return keyset_list(request, page=GATE_LIST, base=decisions)


@require_GET
def gate_decision_detail(request: HttpRequest, pk: int) -> HttpResponse:
    decision = gate.decision_get_for_user(user=request.user, pk=pk)
    return render(
        request,
        "governance/gate_decision_detail.html",
        {
            "decision": decision,
            "inputs_json": json.dumps(decision.inputs, indent=2, ensure_ascii=False),
        },
    )
