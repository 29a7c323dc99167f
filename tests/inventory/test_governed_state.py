"""Issue 7, item 5: one writer per governed state. No path (edit form, /admin/, the API,
the registry's sync) changes a version's approval, a model's lifecycle, a deployment's
status or its baseline without the service's transition check and its audit event.
(The sync's path is in tests/connectors/test_mlflow.py: a forbidden move is a skipped
record; each allowed one an event by the source.)"""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from audit.models import AuditEvent
from inventory import models as m
from inventory import services
from tests.factories import AIModelFactory, DeploymentFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db
A, L, S = m.ModelVersion.Approval, m.AIModel.Lifecycle, m.Deployment.Status


@pytest.fixture
def estate(team_a, owner):
    model = AIModelFactory(team=team_a, owner=owner, lifecycle=L.RETIRED)
    retired = ModelVersionFactory(model=model, approval=A.RETIRED)
    approved = ModelVersionFactory(model=model, approval=A.APPROVED)
    rejected = ModelVersionFactory(model=model, approval=A.REJECTED)
    deployment = DeploymentFactory(
        model=model,
        team=team_a,
        owner=owner,
        status=S.WITHDRAWN,
        observed_version=rejected,
        approved_version=approved,
    )
    return {
        "model": model,
        "retired": retired,
        "approved": approved,
        "rejected": rejected,
        "deployment": deployment,
    }


def _governed(estate) -> tuple:
    e = {k: type(v).objects.get(pk=v.pk) for k, v in estate.items()}
    return (
        e["retired"].approval,
        e["model"].lifecycle,
        e["model"].baseline_version_id,
        e["deployment"].status,
        e["deployment"].approved_version_id,
        e["deployment"].observed_version_id,
    )


def _form_data(form) -> dict:
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None:
            continue
        if isinstance(value, dict | list) and not isinstance(value, str):
            value = json.dumps(value)
        if hasattr(value, "pk"):
            value = value.pk
        data[name] = value
    return data


def test_edit_forms_save_other_fields_but_never_governed_state(
    client, admin_user, owner, estate
):
    before = _governed(estate)
    for user in (owner, admin_user):
        client.force_login(user)
        for key, obj, sneaked in (
            ("modelversion", estate["retired"], {"approval": A.APPROVED}),
            ("aimodel", estate["model"], {"lifecycle": L.ACTIVE}),
            (
                "deployment",
                estate["deployment"],
                # The issue's example: an owner set approved_version to the (rejected)
                # version it runs and the drift vanished from every list.
                {"status": S.ACTIVE, "approved_version": estate["rejected"].pk},
            ),
        ):
            url = reverse(f"inventory:{key}_edit", args=[obj.pk])
            form = client.get(url).context["form"]
            data = {**_form_data(form), "description": f"edited by {user}", **sneaked}
            if key == "modelversion":
                data["approved_bounds"] = "{}"
            response = client.post(url, data)
            assert response.status_code == 302, response.context["form"].errors
    assert _governed(estate) == before
    assert not AuditEvent.objects.filter(
        action__regex=r"\.(approve|retire|activate|reactivate|pin|baseline)$"
    ).exists()
    deployment = m.Deployment.objects.select_related("model").get(
        pk=estate["deployment"].pk
    )
    assert deployment.version_drift, "the drift is still there"


def test_the_admin_shows_governed_state_read_only_and_cannot_save_it(
    client, admin_user, estate
):
    client.force_login(admin_user)
    version = estate["retired"]
    url = reverse("admin:inventory_modelversion_change", args=[version.pk])
    form = client.get(url).context["adminform"].form
    assert "approval" not in form.fields  # shown read-only, not an input
    data = {**_form_data(form), "approval": A.APPROVED}
    response = client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    version.refresh_from_db()
    assert version.approval == A.RETIRED
    for name, fields in (
        ("inventory_aimodel_change", {"lifecycle", "baseline_version"}),
        ("inventory_deployment_change", {"status", "approved_version"}),
    ):
        obj = estate["model"] if "aimodel" in name else estate["deployment"]
        form = (
            client.get(reverse(f"admin:{name}", args=[obj.pk]))
            .context["adminform"]
            .form
        )
        assert not fields & set(form.fields)


def test_the_api_is_read_only_for_governed_state(client, admin_user, estate):
    _, raw = services.api_token_issue(
        actor=admin_user, name="w", scopes=[m.APIToken.Scope.READ], days=1
    )
    headers = {"Authorization": f"Bearer {raw}"}
    for url, body in (
        (f"/api/v1/versions/{estate['retired'].pk}/", {"approval": "approved"}),
        (f"/api/v1/models/{estate['model'].pk}/", {"lifecycle": "active"}),
        (f"/api/v1/deployments/{estate['deployment'].pk}/", {"status": "active"}),
    ):
        for method in (client.patch, client.put):
            response = method(
                url, json.dumps(body), content_type="application/json", headers=headers
            )
            assert response.status_code in (403, 405)
    assert estate["retired"].__class__.objects.get(
        pk=estate["retired"].pk
    ).approval == (A.RETIRED)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (
            lambda e, who: services.model_version_set_approval(
                actor=who, version=e["retired"], approval=A.APPROVED
            ),
            services.APPROVAL_TRANSITION_NOT_ALLOWED.format(
                current="Retired", target="Approved"
            ),
        ),
        (
            lambda e, who: services.aimodel_set_lifecycle(
                actor=who, model=e["model"], lifecycle=L.ACTIVE
            ),
            services.LIFECYCLE_TRANSITION_NOT_ALLOWED.format(
                current="Retired", target="Active"
            ),
        ),
        (
            lambda e, who: services.deployment_set_status(
                actor=who, deployment=e["deployment"], status=S.QUARANTINED
            ),
            services.STATUS_TRANSITION_NOT_ALLOWED.format(
                current="Withdrawn", target="Quarantined"
            ),
        ),
        (
            lambda e, who: services.deployment_pin_baseline(
                actor=who, deployment=e["deployment"], version=e["rejected"]
            ),
            None,  # a rejected version is never a baseline
        ),
    ],
)
def test_services_refuse_moves_their_tables_forbid(call, expected, estate, risk):
    before = _governed(estate)
    with pytest.raises(ValidationError) as info:
        call(estate, risk)
    if expected:
        assert info.value.messages == [expected]
    assert _governed(estate) == before
    assert not AuditEvent.objects.exists()


def test_each_allowed_move_is_one_audited_event(estate, risk, owner):
    d, model = estate["deployment"], estate["model"]
    with pytest.raises(PermissionDenied):
        services.deployment_set_status(actor=owner, deployment=d, status=S.ACTIVE)
    services.deployment_set_status(actor=risk, deployment=d, status=S.ACTIVE)
    services.deployment_set_status(actor=risk, deployment=d, status=S.QUARANTINED)
    services.deployment_pin_baseline(actor=risk, deployment=d, version=None)
    services.aimodel_set_baseline(actor=risk, model=model, version=estate["approved"])
    assert list(
        AuditEvent.objects.order_by("seq").values_list("action", flat=True)
    ) == [
        "deployment.reactivate",
        "deployment.quarantine",
        "deployment.unpin",
        "aimodel.baseline",
    ]
    d = m.Deployment.objects.select_related("model").get(pk=d.pk)
    assert (d.status, d.approved_version_id, d.baseline_version_id) == (
        S.QUARANTINED,
        None,
        estate["approved"].pk,
    )


def test_approving_offers_to_make_the_version_the_baseline(client, risk, team_a):
    model = AIModelFactory(team=team_a)
    version = ModelVersionFactory(model=model, approval=A.PENDING)
    deployment = DeploymentFactory(model=model, observed_version=version)
    client.force_login(risk)
    page = client.get(version.get_absolute_url()).content.decode()
    assert 'name="make_baseline"' in page
    url = reverse("governance:version_approval", args=[version.pk])
    assert (
        client.post(url, {"approval": "approved", "make_baseline": "yes"}).status_code
        == 302
    )
    model.refresh_from_db()
    assert model.baseline_version_id == version.pk
    assert list(
        AuditEvent.objects.order_by("seq").values_list("action", flat=True)
    ) == [
        "modelversion.approve",
        "aimodel.baseline",
    ]
    deployment = m.Deployment.objects.select_related("model").get(pk=deployment.pk)
    assert deployment.baseline_version_id == version.pk and not deployment.version_drift


def test_committee_pages_need_the_role_and_a_confirmation(client, risk, owner, estate):
    model, d = estate["model"], estate["deployment"]
    m.AIModel.objects.filter(pk=model.pk).update(lifecycle=L.ACTIVE)
    lifecycle_url = reverse("governance:aimodel_lifecycle", args=[model.pk])
    status_url = reverse("governance:deployment_status", args=[d.pk])

    client.force_login(owner)
    assert (
        client.post(
            lifecycle_url, {"lifecycle": "deprecated", "confirm": "yes"}
        ).status_code
        == 403
    )
    assert (
        b'data-testid="model-governance"'
        not in client.get(model.get_absolute_url()).content
    )

    client.force_login(risk)
    page = client.get(model.get_absolute_url()).content
    assert b'data-testid="model-governance"' in page
    client.post(lifecycle_url, {"lifecycle": "deprecated"})  # not confirmed
    model.refresh_from_db()
    assert model.lifecycle == L.ACTIVE
    client.post(lifecycle_url, {"lifecycle": "deprecated", "confirm": "yes"})
    client.post(status_url, {"status": "active", "confirm": "yes"})
    model.refresh_from_db()
    d.refresh_from_db()
    assert (model.lifecycle, d.status) == (L.DEPRECATED, S.ACTIVE)
    pin_url = reverse("governance:deployment_pin", args=[d.pk])
    client.post(pin_url, {"version": "not-a-number", "confirm": "yes"})
    d.refresh_from_db()
    assert d.approved_version_id == estate["approved"].pk
    assert list(
        AuditEvent.objects.order_by("seq").values_list("action", flat=True)
    ) == [
        "aimodel.deprecate",
        "deployment.reactivate",
    ]


def test_a_deployment_no_source_reports_shows_its_version_as_declared(
    client, owner, team_a
):
    version = ModelVersionFactory(model=AIModelFactory(team=team_a))
    typed_in = DeploymentFactory(
        model=version.model, team=team_a, observed_version=version
    )
    synced = DeploymentFactory(
        model=version.model,
        team=team_a,
        observed_version=version,
        source="k8s:prod",
        external_id="ns/x",
    )
    client.force_login(owner)
    assert b'data-testid="declared"' in client.get(typed_in.get_absolute_url()).content
    assert (
        b'data-testid="declared"' not in client.get(synced.get_absolute_url()).content
    )
    form = client.get(reverse("inventory:deployment_edit", args=[synced.pk])).context[
        "form"
    ]
    assert "observed_version" not in form.fields, (
        "the runtime's version is the source's"
    )


def test_the_generic_update_service_refuses_governed_fields_for_every_role(
    estate, admin_user, risk
):
    for actor in (admin_user, risk):
        for obj, field, value in (
            (estate["approved"], "approval", A.RETIRED),
            (estate["model"], "lifecycle", L.ACTIVE),
            (estate["deployment"], "status", S.ACTIVE),
            (estate["deployment"], "approved_version_id", None),
        ):
            obj = type(obj).objects.get(pk=obj.pk)
            setattr(obj, field, value)
            with pytest.raises(PermissionDenied):
                services.object_update(actor=actor, instance=obj)
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("rows", [3, 30])
def test_committee_forms_keep_the_detail_pages_query_count(
    rows, client, risk, team_a, django_assert_max_num_queries
):
    model = AIModelFactory(team=team_a)
    versions = [ModelVersionFactory(model=model) for _ in range(rows)]
    model.baseline_version = versions[0]
    model.save()
    deployment = DeploymentFactory(model=model, observed_version=versions[-1])
    client.force_login(risk)
    # As many as before the forms existed (measured): the version is a type-ahead, not a
    # <select> of the model's versions.
    for url, marker, queries in (
        (model.get_absolute_url(), b'data-testid="model-baseline-form"', 6),
        (deployment.get_absolute_url(), b'data-testid="pin-form"', 9),
    ):
        client.get(url)  # warm the session and caches
        with django_assert_max_num_queries(queries):
            response = client.get(url)
        assert marker in response.content


@pytest.mark.parametrize(
    "role", ["owner", "risk", "compliance", "auditor", "admin_user"]
)
def test_who_may_take_each_committee_decision(request, client, role, team_a, team_b):
    """Risk committee and administrators decide; an owner gets 403 on their own objects
    and 404 on another team's (existence is not revealed); read-only roles get 403."""
    user = request.getfixturevalue(role)
    client.force_login(user)
    committee = role in ("risk", "admin_user")
    for team, whose in ((team_a, "mine"), (team_b, "theirs")):
        model = AIModelFactory(team=team, lifecycle=L.ACTIVE)
        version = ModelVersionFactory(model=model, approval=A.APPROVED)
        deployment = DeploymentFactory(model=model, team=team)
        for name, obj, data in (
            ("aimodel_lifecycle", model, {"lifecycle": "deprecated"}),
            ("aimodel_baseline", model, {"version": str(version.pk)}),
            ("deployment_status", deployment, {"status": "quarantined"}),
            ("deployment_pin", deployment, {"version": str(version.pk)}),
        ):
            url = reverse(f"governance:{name}", args=[obj.pk])
            response = client.post(url, {**data, "confirm": "yes"})
            if committee:
                expected = 302
            elif role == "owner" and whose == "theirs":
                expected = 404
            else:
                expected = 403
            assert response.status_code == expected, (name, whose)
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    if committee:
        assert actions >= {
            "aimodel.deprecate",
            "aimodel.baseline",
            "deployment.quarantine",
            "deployment.pin",
        }
    else:
        assert not actions & {"aimodel.deprecate", "deployment.quarantine"}

    policy_url = reverse("governance:policy")
    assert client.get(policy_url).status_code == 200
    posted = client.post(
        policy_url,
        {"unrotated_after_days": 9, "unused_after_days": 9, "silent_after_hours": 9},
    )
    assert posted.status_code == (302 if role == "admin_user" else 403)


def test_batched_baselines_keep_the_checks_and_one_event_per_move(owner):
    """`aimodels_set_baselines` (the registry's sync sets hundreds at once) refuses what
    `aimodel_set_baseline` refuses, writes one `aimodel.baseline` event per model that
    moved, and costs the same few queries for one model or fifty."""
    from audit.actors import Actor

    models = [AIModelFactory() for _ in range(50)]
    good = {
        mo.pk: ModelVersionFactory(model=mo, approval=A.APPROVED).pk for mo in models
    }
    first, second, third = models[:3]
    rejected = ModelVersionFactory(model=first, approval=A.REJECTED)
    of_another_model = ModelVersionFactory(model=second, approval=A.APPROVED)
    targets = {**good, first.pk: rejected.pk, third.pk: of_another_model.pk}
    actor = Actor.source("mlflow:1")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    few = [AIModelFactory() for _ in range(2)]
    two = {mo.pk: ModelVersionFactory(model=mo).pk for mo in few}
    services.aimodels_set_baselines(actor=actor, targets={})  # nothing: no query
    audit_record = __import__("audit").record
    audit_record(actor=actor, action="test.start", target=few[0])  # the chain's head
    with CaptureQueriesContext(connection) as for_two:
        services.aimodels_set_baselines(actor=actor, targets=two)
    before = AuditEvent.objects.count()
    with CaptureQueriesContext(connection) as for_fifty:
        refused = services.aimodels_set_baselines(actor=actor, targets=targets)
    assert len(for_fifty) == len(for_two) <= 15, "a query per model"
    assert set(refused) == {first.pk, third.pk}
    assert "approved" in refused[first.pk] and "another model" in refused[third.pk]
    events = AuditEvent.objects.filter(
        action="aimodel.baseline", object_id__in=[str(mo.pk) for mo in models]
    ).order_by("seq")
    assert AuditEvent.objects.count() - before == 48 == events.count()
    assert {e.object_id for e in events} == {
        str(mo.pk) for mo in models if mo.pk not in refused
    }
    assert all(e.actor_kind == "source" and e.actor_label == "mlflow:1" for e in events)
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.baseline_version_id == good[second.pk]
    assert first.baseline_version_id is None
    # Again: nothing moves, nothing is written.
    assert set(services.aimodels_set_baselines(actor=actor, targets=targets)) == {
        first.pk,
        third.pk,
    }
    assert AuditEvent.objects.filter(action="aimodel.baseline").count() == 48 + 2
    # A person who is not on the committee is refused, as one model at a time is.
    with pytest.raises(PermissionDenied):
        services.aimodels_set_baselines(actor=owner, targets=good)
