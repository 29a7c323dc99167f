"""model_version_set_approval: the risk committee's decision, its transitions and its audit."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.template import engines
from django.test import RequestFactory
from django.urls import reverse

from audit.models import AuditEvent
from governance import services
from inventory import models as m
from inventory import permissions
from tests.factories import AIModelFactory, ModelVersionFactory

A = m.ModelVersion.Approval


@pytest.fixture
def version(team_a):
    return ModelVersionFactory(model=AIModelFactory(team=team_a), approval=A.PENDING)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("start", "target", "action"),
    [
        (A.PENDING, A.APPROVED, "modelversion.approve"),
        (A.PENDING, A.REJECTED, "modelversion.reject"),
        (A.APPROVED, A.DEPRECATED, "modelversion.deprecate"),
        (A.APPROVED, A.RETIRED, "modelversion.retire"),
        (A.DEPRECATED, A.RETIRED, "modelversion.retire"),
        (A.REJECTED, A.PENDING, "modelversion.reopen"),
    ],
)
def test_allowed_transitions_are_saved_and_audited(
    start, target, action, version, risk
):
    m.ModelVersion.objects.filter(pk=version.pk).update(approval=start)
    result = services.model_version_set_approval(
        actor=risk, version=version, approval=target, note="  reviewed  "
    )
    stored = m.ModelVersion.objects.get(pk=version.pk)
    assert result.approval == stored.approval == target
    event = AuditEvent.objects.get()
    assert event.action == action
    assert (event.actor_id, event.actor_label) == (risk.pk, "rita")
    assert event.team_id == version.model.team_id
    assert event.before["approval"] == start
    assert event.after["approval"] == target
    assert event.after["approval_note"] == "reviewed"


@pytest.mark.django_db
def test_approving_records_who_and_when(version, risk):
    services.model_version_set_approval(
        actor=risk, version=version, approval=A.APPROVED
    )
    version.refresh_from_db()
    assert version.approved_by == risk
    assert version.approved_at is not None
    event = AuditEvent.objects.get()
    assert event.before["approved_by_id"] is None
    assert event.after["approved_by_id"] == risk.pk
    assert "approval_note" not in event.after  # no note, no key


@pytest.mark.django_db
def test_other_moves_keep_the_approvers_record(version, risk, admin_user):
    services.model_version_set_approval(
        actor=risk, version=version, approval=A.APPROVED
    )
    services.model_version_set_approval(
        actor=admin_user, version=version, approval=A.DEPRECATED
    )
    version.refresh_from_db()
    assert (version.approval, version.approved_by) == (A.DEPRECATED, risk)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("start", "target"),
    [
        (A.PENDING, A.DEPRECATED),
        (A.PENDING, A.RETIRED),
        (A.PENDING, A.PENDING),
        (A.APPROVED, A.PENDING),
        (A.APPROVED, A.REJECTED),
        (A.REJECTED, A.APPROVED),
        (A.DEPRECATED, A.APPROVED),
        (A.RETIRED, A.APPROVED),
        (A.RETIRED, A.PENDING),
    ],
)
def test_other_transitions_are_refused(start, target, version, risk):
    m.ModelVersion.objects.filter(pk=version.pk).update(approval=start)
    expected = services.APPROVAL_TRANSITION_NOT_ALLOWED.format(
        current=services.LABELS[start], target=services.LABELS[target]
    )
    with pytest.raises(ValidationError) as info:
        services.model_version_set_approval(
            actor=risk, version=version, approval=target
        )
    assert info.value.messages == [expected]
    assert m.ModelVersion.objects.get(pk=version.pk).approval == start
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_the_stored_state_decides_not_a_stale_copy(version, risk):
    """Two reviewers on the same page: the second decision meets the first one's result."""
    stale = m.ModelVersion.objects.get(pk=version.pk)
    services.model_version_set_approval(
        actor=risk, version=version, approval=A.REJECTED
    )
    with pytest.raises(ValidationError):
        services.model_version_set_approval(
            actor=risk, version=stale, approval=A.APPROVED
        )
    assert m.ModelVersion.objects.get(pk=version.pk).approval == A.REJECTED


@pytest.mark.django_db
def test_unknown_state_and_long_note_are_refused(version, risk):
    with pytest.raises(ValidationError, match="Unknown approval state 'blessed'"):
        services.model_version_set_approval(
            actor=risk, version=version, approval="blessed"
        )
    with pytest.raises(ValidationError) as info:
        services.model_version_set_approval(
            actor=risk, version=version, approval=A.APPROVED, note="x" * 1001
        )
    assert info.value.messages == [services.APPROVAL_NOTE_TOO_LONG]
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "compliance", "auditor"])
def test_only_the_risk_committee_and_admins_decide(role, request, version):
    with pytest.raises(PermissionDenied, match=permissions.APPROVAL_RISK_ONLY):
        services.model_version_set_approval(
            actor=request.getfixturevalue(role), version=version, approval=A.APPROVED
        )
    assert m.ModelVersion.objects.get(pk=version.pk).approval == A.PENDING
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_a_failed_audit_rolls_the_decision_back(version, risk, monkeypatch):
    from audit import services as audit_services

    def broken(**kwargs):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(audit_services, "record_many", broken)
    with pytest.raises(RuntimeError):
        services.model_version_set_approval(
            actor=risk, version=version, approval=A.APPROVED
        )
    assert m.ModelVersion.objects.get(pk=version.pk).approval == A.PENDING


# ---------------------------------------------------------------------------
# The view and its partial
# ---------------------------------------------------------------------------
def url(version) -> str:
    return reverse("governance:version_approval", args=[version.pk])


@pytest.mark.django_db
def test_risk_committee_posts_a_decision(client, risk, version):
    client.force_login(risk)
    response = client.post(url(version), {"approval": "approved", "note": "ok"})
    assert response.status_code == 302
    assert response["Location"] == version.get_absolute_url()
    version.refresh_from_db()
    assert version.approval == A.APPROVED
    page = client.get(version.get_absolute_url()).content.decode()
    assert "is now approved" in page


@pytest.mark.django_db
def test_htmx_success_redirects_the_page(client, risk, version):
    client.force_login(risk)
    response = client.post(
        url(version), {"approval": "rejected"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == version.get_absolute_url()


@pytest.mark.django_db
def test_htmx_refused_transition_rerenders_the_form_with_422(client, risk, version):
    client.force_login(risk)
    response = client.post(
        url(version), {"approval": "retired"}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert "<html" not in body
    assert 'data-testid="approval-error"' in body
    assert "cannot become “Retired”" in body
    assert 'value="approved"' in body  # the allowed buttons are offered again


@pytest.mark.django_db
def test_plain_refused_transition_redirects_with_a_message(client, risk, version):
    client.force_login(risk)
    response = client.post(url(version), {"approval": "retired"}, follow=True)
    assert "cannot become “Retired”" in response.content.decode()
    assert m.ModelVersion.objects.get(pk=version.pk).approval == A.PENDING


@pytest.mark.django_db
def test_owner_is_forbidden_and_other_teams_versions_do_not_exist(
    client, owner, version, team_b
):
    client.force_login(owner)
    assert client.post(url(version), {"approval": "approved"}).status_code == 403
    theirs = ModelVersionFactory(model=AIModelFactory(team=team_b), approval=A.PENDING)
    assert client.post(url(theirs), {"approval": "approved"}).status_code == 404
    assert client.get(url(version)).status_code == 405
    assert not AuditEvent.objects.exists()


def render_partial(user, version) -> str:
    request = RequestFactory().get("/")
    request.user = user
    template = engines["django"].from_string(
        '{% include "governance/_version_approval.html" %}'
    )
    return template.render({"object": version}, request)


@pytest.mark.django_db
def test_partial_offers_the_allowed_moves_to_the_risk_committee_only(
    risk, owner, version
):
    html = render_partial(risk, version)
    assert 'value="approved"' in html and 'value="rejected"' in html
    assert 'value="retired"' not in html
    assert "csrfmiddlewaretoken" in html
    assert render_partial(owner, version).strip() == ""
    m.ModelVersion.objects.filter(pk=version.pk).update(approval=A.RETIRED)
    version.refresh_from_db()
    assert "is final" in render_partial(risk, version)
