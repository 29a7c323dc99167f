"""Risk tier pages: the tier policy (an administrator edits it; everyone reads it, with
the deployments per tier), a deployment's "Risk tier" panel (why it has its tier) and the
committee's override (set, end). The rules and the audited writes are governance.tiers."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from governance import tiers
from governance.models import TierPolicy
from inventory import models as m
from inventory import permissions
from inventory import selectors as inventory_selectors

FORM_INVALID = "Please correct the errors below."
TIER_COLOURS = {1: "#dc3545", 2: "#fd7e14", 3: "#ffc107", 4: "#198754"}


class TierPolicyForm(forms.ModelForm):
    class Meta:
        model = TierPolicy
        fields = list(tiers.POLICY_FIELDS)
        labels = {
            "weight_external": "Externally exposed",
            "weight_write_access": "Write access",
            "weight_decision_making": "Decision-making",
            "weight_production": "Production",
            "weight_sensitivity_medium": "Sensitivity: medium",
            "weight_sensitivity_high": "Sensitivity: high",
            "weight_sensitivity_critical": "Sensitivity: critical",
            "tier1_min_score": "Tier 1 from score",
            "tier2_min_score": "Tier 2 from score",
            "tier3_min_score": "Tier 3 from score",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs.setdefault("class", "form-control form-control-sm")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        cuts = [data.get(f"tier{n}_min_score") for n in (1, 2, 3)]
        if None not in cuts and not cuts[0] > cuts[1] > cuts[2]:
            raise ValidationError(tiers.CUTOFFS_MUST_DESCEND)
        return data

    def validate_constraints(self, exclude: Any = None) -> None:
        # clean() says it in words; the database's check stays the backstop.
        return None


def _chart(counts: dict[int, int]) -> dict[str, Any]:
    list_url = reverse("inventory:deployment_list")
    return {
        "id": "chart-tiers",
        "title": "Deployments per risk tier",
        "kind": "group",
        "x_title": "Risk tier",
        "y_title": "Deployments",
        "categories": [f"Tier {t}" for t in tiers.TIERS],
        "series": [
            {
                "name": "Deployments",
                "values": [counts[t] for t in tiers.TIERS],
                "colors": [TIER_COLOURS[t] for t in tiers.TIERS],
                "links": [f"{list_url}?risk_tier={t}" for t in tiers.TIERS],
            }
        ],
    }


@require_http_methods(["GET", "POST"])
def tier_policy(request: HttpRequest) -> HttpResponse:
    """governance:tier_policy: the weights and cut-offs, the rule in words, and how many
    of the deployments the user may read are in each tier (one grouped query)."""
    policy = tiers.policy_current()
    can_edit = permissions.is_admin(request.user)
    status = 200
    if request.method == "POST":
        if not can_edit:
            raise PermissionDenied(permissions.ADMIN_ONLY)
        form = TierPolicyForm(
            request.POST, instance=TierPolicy(pk=TierPolicy.SINGLETON_ID)
        )
        if form.is_valid():
            values = {name: form.cleaned_data[name] for name in tiers.POLICY_FIELDS}
            try:
                _, changed = tiers.tier_policy_update(actor=request.user, **values)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                if changed is None:
                    messages.success(
                        request, "Tier policy saved. Tiers are being recomputed."
                    )
                else:
                    messages.success(
                        request,
                        f"Tier policy saved. {changed} deployment"
                        f"{'' if changed == 1 else 's'} changed tier or score.",
                    )
                return redirect("governance:tier_policy")
        status = 422
    else:
        form = TierPolicyForm(instance=policy) if can_edit else None
    counts = tiers.tier_counts(
        permissions.scope(m.Deployment.objects.all(), request.user)
    )
    chart = _chart(counts)
    return render(
        request,
        "governance/tier_policy.html",
        {
            "policy": policy,
            "form": form,
            "can_edit": can_edit,
            "counts": [(t, counts[t]) for t in tiers.TIERS],
            "total": sum(counts.values()),
            "chart": chart,
            "chart_data": [chart],
            "fields": [
                (TierPolicyForm.Meta.labels[name], getattr(policy, name))
                for name in tiers.POLICY_FIELDS
            ],
            "form_invalid": FORM_INVALID if status == 422 else "",
        },
        status=status,
    )


class TierOverrideForm(forms.Form):
    tier = forms.TypedChoiceField(
        choices=[(t, tiers.TIER_LABELS[t]) for t in tiers.TIERS], coerce=int
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), max_length=tiers.OVERRIDE_REASON_MAX
    )
    expires_on = forms.DateField(
        label="Until",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The override ends at the start of this day (UTC).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            css = "form-select" if name == "tier" else "form-control"
            field.widget.attrs.setdefault("class", f"{css} form-control-sm")
            field.widget.attrs.setdefault("id", f"tier-override-{name}")
        today = timezone.now().date()
        days = tiers.override_max_days()
        self.fields["expires_on"].widget.attrs.update(
            min=(today + dt.timedelta(days=1)).isoformat(),
            max=(today + dt.timedelta(days=days)).isoformat(),
        )
        if not self.is_bound:
            self.initial.setdefault(
                "expires_on", (today + dt.timedelta(days=min(90, days))).isoformat()
            )

    def clean_expires_on(self) -> dt.date:
        day = self.cleaned_data["expires_on"]
        if not dt.date(1900, 1, 1) <= day <= dt.date(9998, 12, 31):
            raise ValidationError(
                tiers.OVERRIDE_EXPIRY_TOO_FAR.format(days=tiers.override_max_days())
            )
        return day

    def expires_at(self) -> dt.datetime:
        return dt.datetime.combine(
            self.cleaned_data["expires_on"], dt.time.min, tzinfo=dt.UTC
        )


def _panel_context(
    request: HttpRequest, deployment: m.Deployment, form: TierOverrideForm | None = None
) -> dict[str, Any]:
    allowed = tiers.can_override(request.user)
    return {
        "object": deployment,
        "explanation": tiers.explain(deployment, tiers.policy_current()),
        "can_override": allowed,
        "override_form": (form or TierOverrideForm()) if allowed else None,
        "tier_labels": tiers.TIER_LABELS,
    }


def _deployment(request: HttpRequest, pk: int) -> m.Deployment:
    return inventory_selectors.deployment_get_for_user(
        user=request.user, deployment_id=pk
    )


@require_GET
def deployment_tier(request: HttpRequest, pk: int) -> HttpResponse:
    """The deployment page's "Risk tier" panel, loaded after the page (so the page keeps
    its query budget): anyone who may read the deployment sees why it has its tier."""
    deployment = _deployment(request, pk)
    template = "governance/_deployment_tier_panel.html"
    if not request.htmx:
        template = "governance/deployment_tier.html"
    return render(request, template, _panel_context(request, deployment))


@require_POST
def deployment_tier_override(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _deployment(request, pk)
    if not tiers.can_override(request.user):
        raise PermissionDenied(tiers.OVERRIDE_ROLE_ONLY)
    form = TierOverrideForm(request.POST)
    if form.is_valid():
        try:
            override = tiers.tier_override_set(
                actor=request.user,
                deployment=deployment,
                tier=form.cleaned_data["tier"],
                reason=form.cleaned_data["reason"],
                expires_at=form.expires_at(),
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request,
                f"Tier overridden to {override.tier} until "
                f"{override.expires_at:%Y-%m-%d}.",
            )
            return redirect(deployment.get_absolute_url())
    context = _panel_context(request, deployment, form)
    context["form_invalid"] = FORM_INVALID
    return render(request, "governance/deployment_tier.html", context, status=422)


@require_POST
def deployment_tier_end(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _deployment(request, pk)
    if not tiers.can_override(request.user):
        raise PermissionDenied(tiers.OVERRIDE_ROLE_ONLY)
    try:
        tiers.tier_override_end(actor=request.user, deployment=deployment)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect(deployment.get_absolute_url())
    messages.success(request, "Override ended: the computed tier applies again.")
    return redirect(deployment.get_absolute_url())
