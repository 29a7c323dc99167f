"""Inventory pages: lists (filter, sort, keyset pages, CSV export), details, create/edit/delete.

The six inventory lists share one view and one template, driven by a `ListSpec`; each
detail page has its own view because each shows different relations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.db.models import (
    Model,
    OuterRef,
    ProtectedError,
    Q,
    QuerySet,
    RestrictedError,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html_join
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from inventory import (
    csv_export,
    filters,
    forms,
    permissions,
    selectors,
    services,
    tables,
)
from inventory import models as m
from inventory.lists import Action, ListPage, keyset_list
from inventory.usage import usage_context
from inventory.widgets import labelled, lookup_id

FORM_INVALID = "Please correct the errors below."


@dataclass(frozen=True)
class ListSpec:
    key: str
    title: str
    model: type[Model]
    selector: Callable[..., QuerySet]
    filterset: type[filters.BaseFilter]
    table: type[tables.KeysetTable]
    sorts: dict[str, str]
    default_sort: str
    export_columns: list[tuple[str, Any]] = field(default_factory=list)
    # Joins the CSV needs beyond the list's own (the list keeps its joins few: planning cost).
    export_related: tuple[str, ...] = ()
    export_queryset: Callable[[QuerySet, Any], QuerySet] | None = None
    form: type[forms.StyledForm] | None = None
    description: str = ""
    # What the list (and its CSV) adds to the selector's rows, e.g. an annotation.
    prepare: Callable[[QuerySet], QuerySet] | None = None
    # Sort aliases whose NULLs come last going up (a model's tier: none yet).
    nulls_last: frozenset[str] = frozenset()

    @property
    def list_url(self) -> str:
        return reverse(f"inventory:{self.key}_list")

    @cached_property
    def page(self) -> ListPage:
        return ListPage(
            title=self.title,
            description=self.description,
            filterset=self.filterset,
            table=self.table,
            sorts=self.sorts,
            default_sort=self.default_sort,
            export_columns=self.export_columns,
            export_related=self.export_related,
            export_queryset=self.export_queryset,
            export_name=f"{self.key}s",
            refresh_event=f"{self.key}sChanged",
            nulls_last=self.nulls_last,
        )


def deployment_rows(queryset: QuerySet) -> QuerySet:
    """Deployments with `baseline_label`, the version their baseline names.

    A subquery per shown row rather than two more joins (each join costs the planner
    more on every page, see selectors.deployment_list); the baseline rule is
    querysets.BASELINE: the committee's pin, else the model's baseline version.
    """
    return queryset.annotate(
        baseline_label=Subquery(
            m.ModelVersion.objects.filter(
                pk=Coalesce(
                    OuterRef("approved_version_id"),
                    OuterRef("model__baseline_version_id"),
                )
            )
            # No default ordering: it would join the model again inside the subquery.
            .order_by()
            .values("version")[:1]
        )
    )


SPECS: dict[str, ListSpec] = {
    spec.key: spec
    for spec in [
        ListSpec(
            key="team",
            title="Teams",
            model=m.Team,
            selector=selectors.team_list,
            filterset=filters.TeamFilter,
            table=tables.TeamTable,
            sorts={"name": "name"},
            default_sort="name",
            form=forms.TeamForm,
            export_columns=[
                ("id", "pk"),
                ("name", "name"),
                ("slug", "slug"),
                ("description", "description"),
            ],
            description="The groups that own models, systems, deployments and identities.",
        ),
        ListSpec(
            key="aimodel",
            title="Models",
            model=m.AIModel,
            selector=selectors.aimodel_list,
            filterset=filters.AIModelFilter,
            table=tables.AIModelTable,
            # The tier (riskiest of its deployments', governance.tiers) sorts 1 first and
            # the models with no deployment (no tier) last: an (risk_tier, id) index.
            sorts={
                "name": "name",
                "updated_at": "updated_at",
                "risk_tier": "risk_tier",
            },
            nulls_last=frozenset({"risk_tier"}),
            default_sort="name",
            form=forms.AIModelForm,
            export_columns=[
                ("id", "pk"),
                ("name", "name"),
                ("kind", "kind"),
                ("provider", "provider"),
                ("lifecycle", "lifecycle"),
                ("team", "team.name"),
                ("owner", "owner.username"),
                ("source", "source"),
                ("external_id", "external_id"),
                ("updated_at", "updated_at"),
                ("risk_tier", "risk_tier"),
                ("sensitivity", "sensitivity"),
            ],
            description="Every model the organisation has registered or been seen running.",
        ),
        ListSpec(
            key="modelversion",
            title="Model versions",
            model=m.ModelVersion,
            selector=selectors.modelversion_list,
            filterset=filters.ModelVersionFilter,
            table=tables.ModelVersionTable,
            sorts={"version": "version", "created_at": "created_at"},
            default_sort="-created_at",
            form=forms.ModelVersionForm,
            export_columns=[
                ("id", "pk"),
                ("model", "model.name"),
                ("version", "version"),
                ("approval", "approval"),
                ("artifact_uri", "artifact_uri"),
                ("digest", "digest"),
                ("approved_at", "approved_at"),
                ("created_at", "created_at"),
            ],
            description="Registered versions and their approval state.",
        ),
        ListSpec(
            key="system",
            title="Systems",
            model=m.System,
            selector=selectors.system_list,
            filterset=filters.SystemFilter,
            table=tables.SystemTable,
            sorts={"name": "name"},
            default_sort="name",
            form=forms.SystemForm,
            export_columns=[
                ("id", "pk"),
                ("name", "name"),
                ("kind", "kind"),
                ("team", "team.name"),
                ("owner", "owner.username"),
                ("business_purpose", "business_purpose"),
            ],
            description="Applications, workflows and agents that invoke models.",
        ),
        ListSpec(
            key="deployment",
            title="Deployments",
            model=m.Deployment,
            selector=selectors.deployment_list,
            filterset=filters.DeploymentFilter,
            table=tables.DeploymentTable,
            # Owner and team group each person's and team's rows (by id: the order a
            # (owner_id, id) index answers; by name, a join sorted 50,000 rows for
            # 90 to 230 ms, bench). Empty owner, team or last call sorts as the
            # smallest value (inventory.pagination).
            sorts={
                "name": "name",
                "environment": "environment",
                "team": "team_id",
                "owner": "owner_id",
                "last_seen_at": "last_seen_at",
                "last_call_at": "last_call_at",
                # Kept by governance.tiers; a (risk_tier, id) index.
                "risk_tier": "risk_tier",
            },
            default_sort="name",
            form=forms.DeploymentForm,
            export_columns=[
                ("id", "pk"),
                ("name", "name"),
                ("model", "model.name"),
                ("observed_version", "observed_version.version"),
                # The page's "Approved": the baseline (the pin, else the model's).
                ("approved_version", "baseline_label"),
                (
                    "approved_version_pinned",
                    lambda d: d.approved_version_id is not None,
                ),
                ("environment", "environment"),
                ("endpoint", "endpoint"),
                ("exposure", "exposure"),
                ("write_access", "write_access"),
                ("decision_making", "decision_making"),
                ("status", "status"),
                ("team", "team.name"),
                ("owner", "owner.username"),
                ("business_purpose", "business_purpose"),
                ("change_window", "change_window"),
                ("first_seen_at", "first_seen_at"),
                ("last_seen_at", "last_seen_at"),
                ("last_call_at", "last_call_at"),
                ("source", "source"),
                # What the pages say (observed_version is empty for an unregistered one).
                ("running_version", "running_version"),
                ("running_version_registered", "running_version_registered"),
                ("baseline_version", "baseline_version.version"),
                ("baseline_kind", "baseline_kind"),
                ("model_lifecycle", "model.lifecycle"),
                ("silent", "is_silent"),
                ("inherited_owner", csv_export.username_of("inherited_owner")),
                ("identities", csv_export.names_of("identities")),
                ("risk_tier", "risk_tier"),
                ("risk_score", "risk_score"),
            ],
            export_related=(
                "approved_version",
                "model__baseline_version",
                "model__owner",
            ),
            export_queryset=csv_export.deployment_export_queryset,
            prepare=deployment_rows,
            description="Where each model actually runs, and who answers for it.",
        ),
        ListSpec(
            key="identity",
            title="Non-human identities",
            model=m.NonHumanIdentity,
            selector=selectors.identity_list,
            filterset=filters.IdentityFilter,
            table=tables.IdentityTable,
            sorts={"name": "name", "updated_at": "updated_at"},
            default_sort="name",
            form=forms.IdentityForm,
            export_columns=[
                ("id", "pk"),
                ("name", "name"),
                ("kind", "kind"),
                ("provider", "provider"),
                ("vendor", "vendor"),
                ("status", "status"),
                ("scopes", "scopes"),
                ("team", "team.name"),
                ("owner", "owner.username"),
                ("issued_at", "issued_at"),
                ("rotated_at", "rotated_at"),
                ("last_used_at", "last_used_at"),
                ("expires_at", "expires_at"),
                ("source", "source"),
                ("external_id", "external_id"),
                ("silent", "is_silent"),
                ("model", "model.name"),
                ("deployments", csv_export.names_of("deployments")),
            ],
            export_related=("model",),
            export_queryset=csv_export.identity_export_queryset,
            description="Service accounts, keys, OAuth apps and tokens that can invoke models.",
        ),
    ]
}


def _spec(key: str) -> ListSpec:
    try:
        return SPECS[key]
    except KeyError as exc:
        raise Http404 from exc


@require_GET
@vary_on_headers("HX-Request")  # never let a cache serve the fragment as the page
def object_list(request: HttpRequest, key: str) -> HttpResponse:
    spec = _spec(key)
    actions = []
    if spec.form is not None and permissions.can_create(request.user, spec.model):
        actions.append(
            Action(
                f"New {spec.model._meta.verbose_name}",
                reverse(f"inventory:{key}_create"),
                primary=True,
            )
        )
    base = spec.selector(user=request.user)
    return keyset_list(
        request,
        page=spec.page,
        base=base,
        prepare=spec.prepare,
        actions=actions,
        context={"spec": spec},
    )


# ---------------------------------------------------------------------------
# Details
# ---------------------------------------------------------------------------
def _detail_context(
    request: HttpRequest, spec_key: str, obj: Model, **extra: Any
) -> dict[str, Any]:
    return {
        "spec": SPECS[spec_key],
        "object": obj,
        "can_change": permissions.can_change(request.user, obj),
        "can_delete": permissions.can_delete(request.user, obj),
        **extra,
    }


@require_GET
def team_detail(request: HttpRequest, pk: int) -> HttpResponse:
    team = selectors.team_get_for_user(user=request.user, team_id=pk)
    limit = selectors.RELATED_LIMIT
    context = _detail_context(
        request,
        "team",
        team,
        members=list(team.members.order_by("username")[:100]),
        models=list(
            selectors.aimodel_list(user=request.user)
            .filter(team=team)
            .order_by("name")[:limit]
        ),
        systems=list(
            selectors.system_list(user=request.user)
            .filter(team=team)
            .order_by("name")[:limit]
        ),
        deployments=list(
            selectors.deployment_list(user=request.user)
            .filter(team=team)
            .order_by("name")[:limit]
        ),
        limit=limit,
    )
    return render(request, "inventory/team_detail.html", context)


@require_GET
def aimodel_detail(request: HttpRequest, pk: int) -> HttpResponse:
    model = selectors.aimodel_get_for_user(user=request.user, model_id=pk)
    limit = selectors.RELATED_LIMIT
    context = _detail_context(
        request,
        "aimodel",
        model,
        versions=list(model.versions.order_by("-created_at")[:limit]),
        deployments=list(
            selectors.deployment_list(user=request.user)
            .filter(model=model)
            .order_by("name")[:limit]
        ),
        limit=limit,
    )
    return render(request, "inventory/aimodel_detail.html", context)


@require_GET
def modelversion_detail(request: HttpRequest, pk: int) -> HttpResponse:
    version = selectors.modelversion_get_for_user(user=request.user, version_id=pk)
    limit = selectors.RELATED_LIMIT
    # A withdrawn deployment no longer runs anything: it is not "running in".
    running = (
        selectors.deployment_list(user=request.user)
        .filter(observed_version=version)
        .exclude(status=m.Deployment.Status.WITHDRAWN)
    )
    context = _detail_context(
        request,
        "modelversion",
        version,
        running=list(running.order_by("name")[:limit]),
        approved_for=list(
            selectors.deployment_list(user=request.user)
            .held_to(version)
            .order_by("name")[:limit]
        ),
        limit=limit,
    )
    return render(request, "inventory/modelversion_detail.html", context)


@require_GET
def system_detail(request: HttpRequest, pk: int) -> HttpResponse:
    system = selectors.system_get_for_user(user=request.user, system_id=pk)
    limit = selectors.RELATED_LIMIT
    context = _detail_context(
        request,
        "system",
        system,
        deployments=list(
            selectors.deployment_list(user=request.user)
            .filter(system=system)
            .order_by("name")[:limit]
        ),
        limit=limit,
    )
    return render(request, "inventory/system_detail.html", context)


@require_GET
def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_get_for_user(user=request.user, deployment_id=pk)
    upstream, downstream = selectors.deployment_dependencies(
        user=request.user, deployment=deployment
    )
    context = _detail_context(
        request,
        "deployment",
        deployment,
        identities=selectors.deployment_identities(
            user=request.user, deployment=deployment
        ),
        upstream=upstream,
        downstream=downstream,
        limit=selectors.RELATED_LIMIT,
        dependency_form=(
            forms.DependencyForm(user=request.user, downstream=deployment)
            if permissions.can_change(request.user, deployment)
            else None
        ),
        # Calls per hour and per caller from OpenTelemetry traces: two aggregate queries.
        **usage_context(deployment.pk),
    )
    return render(request, "inventory/deployment_detail.html", context)


@require_GET
def identity_detail(request: HttpRequest, pk: int) -> HttpResponse:
    identity = selectors.identity_get_for_user(user=request.user, identity_id=pk)
    context = _detail_context(
        request,
        "identity",
        identity,
        deployments=selectors.identity_deployments(
            user=request.user, identity=identity
        ),
        limit=selectors.RELATED_LIMIT,
        is_runproof_token=identity.kind == m.NonHumanIdentity.Kind.RUNPROOF_TOKEN,
        bind_form=(
            forms.IdentityBindForm(user=request.user)
            if permissions.can_change(request.user, identity)
            else None
        ),
    )
    return render(request, "inventory/identity_detail.html", context)


DETAIL_GETTERS: dict[str, Callable[[Any, int], Model]] = {
    "team": lambda user, pk: selectors.team_get_for_user(user=user, team_id=pk),
    "aimodel": lambda user, pk: selectors.aimodel_get_for_user(user=user, model_id=pk),
    "modelversion": lambda user, pk: selectors.modelversion_get_for_user(
        user=user, version_id=pk
    ),
    "system": lambda user, pk: selectors.system_get_for_user(user=user, system_id=pk),
    "deployment": lambda user, pk: selectors.deployment_get_for_user(
        user=user, deployment_id=pk
    ),
    "identity": lambda user, pk: selectors.identity_get_for_user(
        user=user, identity_id=pk
    ),
}


# ---------------------------------------------------------------------------
# Create, edit, delete
# ---------------------------------------------------------------------------
def _form_response(
    request: HttpRequest,
    spec: ListSpec,
    form: forms.StyledForm,
    obj: Model | None,
    status: int = 200,
) -> HttpResponse:
    template_name = "inventory/object_form.html"
    if request.htmx and status == 422:
        template_name += "#object-form"
    return render(
        request,
        template_name,
        {
            "spec": spec,
            "form": form,
            "object": obj,
            # The heading names the kind and the object: "Edit deployment fraud-scorer-prod".
            "noun": spec.model._meta.verbose_name,
        },
        status=status,
    )


def _saved(request: HttpRequest, obj: Model, verb: str) -> HttpResponse:
    messages.success(request, f"{obj._meta.verbose_name.capitalize()} “{obj}” {verb}.")
    if request.htmx:
        return HttpResponseClientRedirect(obj.get_absolute_url())
    return redirect(obj.get_absolute_url())


@require_http_methods(["GET", "POST"])
def object_create(request: HttpRequest, key: str) -> HttpResponse:
    spec = _spec(key)
    if spec.form is None or not permissions.can_create(request.user, spec.model):
        raise PermissionDenied
    initial = {}
    if "team" in request.GET:
        initial["team"] = request.GET["team"]
    if key == "modelversion" and "model" in request.GET:
        initial["model"] = request.GET["model"]
    if key in {"aimodel", "system", "deployment", "identity"}:
        initial.setdefault("owner", request.user.pk)
    form = spec.form(request.POST or None, user=request.user, initial=initial)
    if request.method == "POST":
        if form.is_valid():
            instance = form.save(commit=False)
            m2m = _m2m_data(form)
            try:
                services.object_create(actor=request.user, instance=instance, m2m=m2m)
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                return _saved(request, instance, "created")
        messages.error(request, FORM_INVALID)
        return _form_response(request, spec, form, None, status=422)
    return _form_response(request, spec, form, None)


@require_http_methods(["GET", "POST"])
def object_edit(request: HttpRequest, key: str, pk: int) -> HttpResponse:
    spec = _spec(key)
    obj = DETAIL_GETTERS[key](request.user, pk)
    if spec.form is None or not permissions.can_change(request.user, obj):
        raise PermissionDenied
    form = spec.form(request.POST or None, instance=obj, user=request.user)
    if request.method == "POST":
        if form.is_valid():
            instance = form.save(commit=False)
            try:
                services.object_update(
                    actor=request.user, instance=instance, m2m=_m2m_data(form)
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                return _saved(request, instance, "saved")
        messages.error(request, FORM_INVALID)
        return _form_response(request, spec, form, obj, status=422)
    return _form_response(request, spec, form, obj)


def _m2m_data(form: forms.StyledForm) -> dict[str, Any]:
    return {
        f.name: form.cleaned_data[f.name]
        for f in form._meta.model._meta.many_to_many
        if f.name in form.cleaned_data
    }


DELETE_REFUSED = "{what} still {verb} this {noun}; remove or reassign {them} first."
DELETE_REFUSED_UNKNOWN = (
    "Other records still reference this {noun}; remove those first."
)
BLOCKERS_LISTED = 5


def _count_phrase(count: int, model: type[Model]) -> str:
    meta = model._meta
    return f"{count} {meta.verbose_name if count == 1 else meta.verbose_name_plural}"


def _blockers(
    exc: Exception, obj: Model, user: Any
) -> tuple[str, list[dict[str, Any]]]:
    """What refused a delete: "3 deployments and 2 identities still reference this model",
    and, for each kind, the first few of them with links (only for a user who reads all:
    another team's rows are counted, never named)."""
    noun = obj._meta.verbose_name
    found = getattr(exc, "protected_objects", None) or getattr(
        exc, "restricted_objects", None
    )
    if not found:
        return DELETE_REFUSED_UNKNOWN.format(noun=noun), []
    by_model: dict[type[Model], list[Model]] = {}
    for blocker in found:
        by_model.setdefault(type(blocker), []).append(blocker)
    groups = []
    for model, rows in sorted(
        by_model.items(), key=lambda item: item[0]._meta.verbose_name_plural
    ):
        shown = sorted(rows, key=str)[:BLOCKERS_LISTED]
        groups.append(
            {
                "phrase": _count_phrase(len(rows), model),
                "count": len(rows),
                "items": [
                    {
                        "label": str(row),
                        "url": row.get_absolute_url()
                        if hasattr(row, "get_absolute_url")
                        else "",
                    }
                    for row in shown
                ]
                if permissions.reads_all(user)
                else [],
                "more": max(0, len(rows) - BLOCKERS_LISTED),
            }
        )
    phrases = [g["phrase"] for g in groups]
    what = (
        phrases[0]
        if len(phrases) == 1
        else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    )
    single = len(found) == 1
    return (
        DELETE_REFUSED.format(
            what=what,
            verb="references" if single else "reference",
            noun=noun,
            them="it" if single else "them",
        ),
        groups,
    )


@require_http_methods(["GET", "POST"])
def object_delete(request: HttpRequest, key: str, pk: int) -> HttpResponse:
    spec = _spec(key)
    obj = DETAIL_GETTERS[key](request.user, pk)
    if not permissions.can_delete(request.user, obj):
        raise PermissionDenied
    context: dict[str, Any] = {
        "spec": spec,
        "object": obj,
        "noun": spec.model._meta.verbose_name,
    }
    if request.method == "POST":
        try:
            services.object_delete(actor=request.user, instance=obj)
        except (ProtectedError, RestrictedError, IntegrityError) as exc:
            # 409: the request was fine, the object's references refuse it.
            refused, blockers = _blockers(exc, obj, request.user)
            context.update(refused=refused, blockers=blockers)
            return render(
                request, "inventory/object_confirm_delete.html", context, status=409
            )
        messages.success(
            request, f"{obj._meta.verbose_name.capitalize()} “{obj}” deleted."
        )
        return redirect(spec.list_url)
    return render(request, "inventory/object_confirm_delete.html", context)


@require_POST
def dependency_add(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = selectors.deployment_get_for_user(user=request.user, deployment_id=pk)
    if not permissions.can_change(request.user, deployment):
        raise PermissionDenied
    form = forms.DependencyForm(request.POST, user=request.user, downstream=deployment)
    if form.is_valid():
        instance = form.save(commit=False)
        try:
            services.object_create(actor=request.user, instance=instance)
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            messages.success(request, f"Dependency on “{instance.upstream}” recorded.")
    else:
        messages.error(
            request, "; ".join(e for errs in form.errors.values() for e in errs)
        )
    return redirect(deployment.get_absolute_url())


@require_POST
def dependency_remove(
    request: HttpRequest, pk: int, dependency_id: int
) -> HttpResponse:
    deployment = selectors.deployment_get_for_user(user=request.user, deployment_id=pk)
    dependency = m.Dependency.objects.filter(
        pk=dependency_id, downstream=deployment
    ).first()
    if dependency is None:
        raise Http404
    if not permissions.can_change(request.user, deployment):
        raise PermissionDenied
    services.dependency_remove(actor=request.user, dependency=dependency)
    messages.success(request, "Dependency removed.")
    return redirect(deployment.get_absolute_url())


@require_POST
def identity_bind(request: HttpRequest, pk: int) -> HttpResponse:
    identity = selectors.identity_get_for_user(user=request.user, identity_id=pk)
    if not permissions.can_change(request.user, identity):
        raise PermissionDenied
    form = forms.IdentityBindForm(request.POST, user=request.user)
    if form.is_valid():
        try:
            services.identity_bind(
                actor=request.user,
                identity=identity,
                deployment=form.cleaned_data["deployment"],
            )
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
        else:
            messages.success(
                request,
                f"“{identity}” can now invoke “{form.cleaned_data['deployment']}”.",
            )
    else:
        messages.error(
            request, "; ".join(e for errs in form.errors.values() for e in errs)
        )
    return redirect(identity.get_absolute_url())


@require_POST
def identity_unbind(request: HttpRequest, pk: int, deployment_id: int) -> HttpResponse:
    identity = selectors.identity_get_for_user(user=request.user, identity_id=pk)
    if not permissions.can_change(request.user, identity):
        raise PermissionDenied
    deployment = identity.deployments.filter(pk=deployment_id).first()
    if deployment is None:
        raise Http404
    services.identity_unbind(
        actor=request.user, identity=identity, deployment=deployment
    )
    messages.success(request, f"“{identity}” no longer bound to “{deployment}”.")
    return redirect(identity.get_absolute_url())


# ---------------------------------------------------------------------------
# Lookups for LookupInput (type-ahead choices that stay small at any scale)
# ---------------------------------------------------------------------------
LOOKUP_LIMIT = 20
LOOKUPS: dict[str, tuple[Callable[..., QuerySet], tuple[str, ...], str]] = {
    "aimodel": (selectors.aimodel_list, ("name",), "name"),
    "modelversion": (
        selectors.modelversion_list,
        ("version", "model__name"),
        "version",
    ),
    "system": (selectors.system_list, ("name",), "name"),
    "deployment": (selectors.deployment_list, ("name", "endpoint"), "name"),
    "team": (selectors.team_list, ("name", "slug"), "name"),
    "user": (
        selectors.person_list,
        ("username", "first_name", "last_name", "email"),
        "username",
    ),
}


@require_GET
def lookup(request: HttpRequest, kind: str) -> HttpResponse:
    """<option>s for a LookupInput's datalist: up to 20 visible objects matching the text.

    The widget names the parameter that carries the text (`field`: the input's own name,
    which may be `model`); `model` is otherwise the chosen model a version lookup follows.
    Without `field` (an older page), the first other parameter is the text.
    """
    if kind not in LOOKUPS:
        raise Http404
    selector, fields, order = LOOKUPS[kind]
    field_name = request.GET.get("field", "")
    if field_name:
        raw = request.GET.get(field_name, "")
    else:
        raw = next(
            (
                v
                for k, v in request.GET.items()
                if k not in {"model", "field", "labelled"} and v.strip()
            ),
            "",
        )
    text = raw.strip()[:100].replace("\x00", "")  # PostgreSQL refuses NUL in a query
    queryset = selector(user=request.user)
    model_id = lookup_id(request.GET.get("model", "")) if field_name != "model" else ""
    if (
        kind == "modelversion"
        and model_id.isdigit()
        and int(model_id) <= filters.MAX_ID
    ):
        queryset = queryset.filter(model_id=int(model_id))
    if text:
        chosen = lookup_id(text)
        condition = Q()
        if chosen != text:
            # "name (#30)": the text of an option already chosen; offer it again.
            condition = (
                Q(pk=int(chosen)) if int(chosen) <= filters.MAX_ID else Q(pk=None)
            )
        else:
            for name in fields:
                condition |= Q(**{f"{name}__icontains": text})
            if text.isdigit() and int(text) <= filters.MAX_ID:
                condition |= Q(pk=int(text))
        queryset = queryset.filter(condition)
    options = queryset.order_by(order, "pk")[:LOOKUP_LIMIT]
    if request.GET.get("labelled"):
        rows = ((labelled(str(o), o.pk), str(o)) for o in options)
    else:
        rows = ((o.pk, str(o)) for o in options)
    return HttpResponse(format_html_join("", '<option value="{}">{}</option>', rows))
