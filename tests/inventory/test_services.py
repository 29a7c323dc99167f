from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from audit.chain import audit_chain_verify
from audit.models import AuditEvent
from inventory import models as m
from inventory import permissions, services
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    ModelVersionFactory,
    TeamFactory,
)


@pytest.mark.django_db
def test_create_writes_object_and_one_audit_event(owner, team_a):
    model = AIModelFactory(team=team_a)
    deployment = services.object_create(
        actor=owner,
        instance=m.Deployment(name="scorer", model=model, team=team_a, owner=owner),
    )
    event = AuditEvent.objects.get(
        object_type="inventory.deployment", object_id=str(deployment.pk)
    )
    assert event.action == "deployment.create"
    assert event.actor_id == owner.pk and event.actor_label == "olivia"
    assert event.before is None and event.after["name"] == "scorer"
    assert event.team_id == team_a.pk


@pytest.mark.django_db
def test_update_records_before_and_after(owner, team_a):
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a), name="old")
    deployment.name = "new"
    services.object_update(actor=owner, instance=deployment)
    event = AuditEvent.objects.get(action="deployment.update")
    assert (event.before["name"], event.after["name"]) == ("old", "new")


@pytest.mark.django_db
def test_update_without_change_writes_no_event(owner, team_a):
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a))
    services.object_update(actor=owner, instance=deployment)
    assert not AuditEvent.objects.filter(action="deployment.update").exists()


@pytest.mark.django_db
def test_identity_bindings_are_in_the_audit_picture(owner, team_a):
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a))
    identity = services.object_create(
        actor=owner,
        instance=m.NonHumanIdentity(name="svc-scorer", team=team_a),
        m2m={"deployments": [deployment]},
    )
    assert list(identity.deployments.all()) == [deployment]
    event = AuditEvent.objects.get(action="nonhumanidentity.create")
    assert event.after["deployments"] == [deployment.pk]


@pytest.mark.django_db
def test_delete_is_admin_only_and_audited(owner, admin_user, team_a):
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a))
    with pytest.raises(PermissionDenied):
        services.object_delete(actor=owner, instance=deployment)
    services.object_delete(actor=admin_user, instance=deployment)
    assert not m.Deployment.objects.filter(pk=deployment.pk).exists()
    event = AuditEvent.objects.get(action="deployment.delete")
    assert event.before["name"] == deployment.name and event.after is None


@pytest.mark.django_db
def test_owner_cannot_move_object_to_a_team_they_are_not_in(owner, team_a, team_b):
    deployment = DeploymentFactory(model=AIModelFactory(team=team_a))
    deployment.team = team_b
    with pytest.raises(PermissionDenied, match=services.TEAM_CHANGE_NOT_YOURS):
        services.object_update(actor=owner, instance=deployment)
    deployment.refresh_from_db()
    assert deployment.team == team_a
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_owner_cannot_create_in_another_team(owner, team_b):
    with pytest.raises(PermissionDenied):
        services.object_create(
            actor=owner, instance=m.AIModel(name="sneaky", team=team_b)
        )
    assert not m.AIModel.objects.filter(name="sneaky").exists()


@pytest.mark.django_db
def test_only_risk_committee_changes_approval(owner, risk, team_a):
    version = ModelVersionFactory(
        model=AIModelFactory(team=team_a), approval=m.ModelVersion.Approval.PENDING
    )
    version.approval = m.ModelVersion.Approval.APPROVED
    with pytest.raises(PermissionDenied, match=permissions.APPROVAL_RISK_ONLY):
        services.object_update(actor=owner, instance=version)
    version.refresh_from_db()
    assert version.approval == m.ModelVersion.Approval.PENDING


@pytest.mark.django_db
def test_invalid_instance_writes_nothing(owner, team_a):
    with pytest.raises(ValidationError):
        services.object_create(actor=owner, instance=m.AIModel(name="", team=team_a))
    assert not m.AIModel.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_failure_while_auditing_rolls_the_change_back(owner, team_a, monkeypatch):
    """The change and its audit event commit together or not at all."""
    from audit import services as audit_services

    def broken(**kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(audit_services, "record_many", broken)
    model = AIModelFactory(team=team_a)
    with pytest.raises(RuntimeError):
        services.object_create(
            actor=owner, instance=m.Deployment(name="half", model=model, team=team_a)
        )
    assert not m.Deployment.objects.filter(name="half").exists()


@pytest.mark.django_db
def test_events_form_a_verifiable_chain(admin_user):
    for n in range(5):
        services.object_create(
            actor=admin_user, instance=TeamFactory.build(name=f"T{n}", slug=f"t{n}")
        )
    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    assert audit_chain_verify().ok


@pytest.mark.django_db
def test_api_token_lifecycle(admin_user):
    token, raw = services.api_token_issue(
        actor=admin_user, name="ci", scopes=["read"], days=30
    )
    assert (
        raw.startswith("rp_")
        and token.token_hash != raw
        and raw not in str(token.__dict__)
    )
    assert services.api_token_authenticate(raw) == token
    assert services.api_token_authenticate(raw + "x") is None
    assert token.identity.kind == m.NonHumanIdentity.Kind.RUNPROOF_TOKEN
    services.api_token_revoke(actor=admin_user, token=token)
    assert services.api_token_authenticate(raw) is None
    token.identity.refresh_from_db()
    assert token.identity.status == m.NonHumanIdentity.Status.REVOKED
    with pytest.raises(ValidationError):
        services.api_token_revoke(actor=admin_user, token=token)
    actions = list(AuditEvent.objects.order_by("seq").values_list("action", flat=True))
    assert actions == ["apitoken.issue", "apitoken.revoke"]
    assert all("token_hash" not in (e.after or {}) for e in AuditEvent.objects.all())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("scopes", "days"),
    [([], 30), (["read", "root"], 30), (["read"], 0), (["read"], 731)],
)
def test_api_token_rejects_bad_input(admin_user, scopes, days):
    with pytest.raises(ValidationError):
        services.api_token_issue(actor=admin_user, name="x", scopes=scopes, days=days)
    assert not m.APIToken.objects.exists() and not m.NonHumanIdentity.objects.exists()


@pytest.mark.django_db
def test_only_admins_issue_tokens(owner):
    with pytest.raises(PermissionDenied):
        services.api_token_issue(actor=owner, name="x", scopes=["read"], days=1)
