"""The incident timeline page: each kind of event on built data, filters, exports,
permissions and bad parameters."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.timeline_data import build_incident

pytestmark = pytest.mark.django_db


def url(subject, pk, **params):
    from urllib.parse import urlencode

    base = reverse("governance:timeline", args=[subject, pk])
    return f"{base}?{urlencode(params, doseq=True)}" if params else base


@pytest.fixture
def incident(team_a, risk):
    return build_incident(team=team_a, risk=risk)


def _events(response):
    return response.context["timeline"].events


def _whats(response, kind=None):
    return [e.what for e in _events(response) if kind is None or e.kind == kind]


def test_deployment_timeline_shows_every_kind(login, risk, incident):
    response = login(risk).get(url("deployment", incident.deployment.pk))
    assert response.status_code == 200
    kinds = {e.kind for e in _events(response)}
    assert kinds == {
        "registry",
        "runtime",
        "calls",
        "credential",
        "finding",
        "governance",
    }
    runtime = _whats(response, "runtime")
    assert "fraud-prod now runs 4 (was 3)" in runtime
    assert "fraud-prod status: active → quarantined" in runtime
    registry = _whats(response, "registry")
    assert "Version 4 registered" in registry
    assert "Version 4 pending → approved" in registry
    credential = _whats(response, "credential")
    assert "svc-fraud-prod rotated" in credential
    assert "svc-fraud-prod last used" in credential
    assert any(w.startswith("Opened: ") for w in _whats(response, "finding"))
    governance = _whats(response, "governance")
    assert any("deployment.quarantine" in w and "Incident 42" in w for w in governance)
    assert any("modelversion.approve" in w for w in governance)
    sources = {e.source for e in _events(response) if e.kind == "runtime"}
    assert "k8s-prod" in sources
    body = response.content.decode()
    assert 'id="timeline-chart"' in body and 'id="timeline-data"' in body
    assert "who called it since?" in body


def test_since_the_version_change_shows_who_called(login, risk, incident):
    client = login(risk)
    response = client.get(url("deployment", incident.deployment.pk))
    change = next(e for e in _events(response) if e.since_link)
    assert change.what == "fraud-prod now runs 4 (was 3)"
    since = client.get(change.since_url)
    assert since.status_code == 200
    callers = {c["caller"]: c for c in since.context["timeline"].callers}
    assert set(callers) == {"svc-fraud-prod", "mystery-svc"}  # not batch-old, before it
    assert callers["svc-fraud-prod"]["calls"] == 100 + 101 + 102
    assert callers["svc-fraud-prod"]["identity_id"] == incident.identity.pk
    assert callers["mystery-svc"]["identity_id"] is None
    # The whole month still shows the old caller.
    callers_all = {c["caller"] for c in response.context["timeline"].callers}
    assert "batch-old" in callers_all


def test_usage_is_per_hour_in_sql(login, risk, incident):
    response = login(risk).get(url("deployment", incident.deployment.pk))
    t = response.context["timeline"]
    assert t.calls_total == 40 + (100 + 7) + (101 + 7) + (102 + 7)
    assert t.errors_total == 1 + 2 * 3
    hours = [h["hour"] for h in t.hours]
    assert hours == sorted(hours) and len(hours) == 4
    chart = response.context["chart_data"]
    assert sum(chart["calls"]) == t.calls_total
    assert {row["kind"] for row in chart["markers"]} >= {"runtime", "registry"}


def test_range_filter(login, risk, incident):
    now = timezone.now()
    client = login(risk)
    response = client.get(
        url(
            "deployment",
            incident.deployment.pk,
            since=(now - timedelta(days=9)).strftime("%Y-%m-%dT%H:%M"),
            until=(now - timedelta(days=6)).strftime("%Y-%m-%dT%H:%M"),
        )
    )
    assert response.status_code == 200
    whats = _whats(response)
    assert "fraud-prod now runs 4 (was 3)" in whats
    assert "Version 4 registered" not in whats  # ten days ago
    assert not any("quarantine" in w for w in whats)  # now
    assert response.context["timeline"].calls_total == 40


def test_kind_filter(login, risk, incident):
    response = login(risk).get(
        url("deployment", incident.deployment.pk, kind=["runtime", "finding"])
    )
    assert {e.kind for e in _events(response)} == {"runtime", "finding"}
    assert response.context["timeline"].hours == []
    body = response.content.decode()
    assert 'value="runtime" id="kind-runtime" checked' in body
    assert 'value="calls" id="kind-calls">' in body


def test_registry_alone_shows_lifecycle_from_the_audit_log(login, risk, incident):
    services_module = __import__("inventory.services", fromlist=["x"])
    services_module.aimodel_set_lifecycle(
        actor=risk, model=incident.model, lifecycle="deprecated"
    )
    response = login(risk).get(url("model", incident.model.pk, kind="registry"))
    whats = _whats(response)
    assert any(w.startswith("aimodel.deprecate") for w in whats)
    assert {e.kind for e in _events(response)} == {"registry"}


def test_caller_filter(login, risk, incident):
    response = login(risk).get(
        url("deployment", incident.deployment.pk, caller="mystery-svc")
    )
    t = response.context["timeline"]
    assert [c["caller"] for c in t.callers] == ["mystery-svc"]
    assert t.calls_total == 21


def test_model_timeline_includes_its_deployments_and_versions(login, risk, incident):
    response = login(risk).get(url("model", incident.model.pk))
    assert response.status_code == 200
    whats = _whats(response)
    assert "fraud-prod now runs 4 (was 3)" in whats
    assert "Version 4 registered" in whats
    assert response.context["timeline"].calls_total > 0


def test_identity_timeline_shows_its_calls_and_its_deployments(login, risk, incident):
    response = login(risk).get(url("identity", incident.identity.pk))
    assert response.status_code == 200
    t = response.context["timeline"]
    assert [c["caller"] for c in t.callers] == ["svc-fraud-prod"]
    assert t.calls_total == 303
    whats = _whats(response)
    assert "svc-fraud-prod rotated" in whats
    assert "fraud-prod now runs 4 (was 3)" in whats  # a deployment it is bound to


def test_csv_export_is_what_the_filters_show(login, risk, incident):
    client = login(risk)
    response = client.get(
        url("deployment", incident.deployment.pk, kind="runtime", format="csv")
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["time", "kind", "what", "source", "subject", "link"]
    assert {r[1] for r in rows[1:]} == {"runtime"}
    assert any(r[2] == "fraud-prod now runs 4 (was 3)" for r in rows[1:])


def test_json_export(login, risk, incident):
    response = login(risk).get(
        url(
            "deployment",
            incident.deployment.pk,
            kind=["calls", "runtime"],
            format="json",
        )
    )
    assert response.status_code == 200
    data = response.json()
    assert data["subject"] == {
        "kind": "deployment",
        "id": incident.deployment.pk,
        "name": "fraud-prod",
    }
    assert data["kinds"] == ["runtime", "calls"]
    assert {e["kind"] for e in data["events"]} == {"runtime", "calls"}
    assert sum(h["calls"] for h in data["usage_per_hour"]) == 40 + 21 + 303
    assert data["capped"] is False


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"until": "2026-13-45"},
        {"since": "2025-01-01", "until": "2026-06-01"},  # over 366 days
        {"since": "2026-06-02", "until": "2026-06-01"},  # backwards
        {"kind": "everything"},
        {"format": "xml"},
        {"caller": "x" * 201},
    ],
)
def test_bad_parameters_are_a_form_error(login, risk, incident, params):
    response = login(risk).get(url("deployment", incident.deployment.pk, **params))
    assert response.status_code == 400
    assert response.context["timeline"] is None
    assert 'data-testid="form-errors"' in response.content.decode()


def test_bad_parameters_on_an_export_are_json_400(login, risk, incident):
    response = login(risk).get(
        url("deployment", incident.deployment.pk, since="nope", format="json")
    )
    assert response.status_code == 400
    assert "since" in response.json()["errors"]


def test_range_too_long_says_so(login, risk, incident):
    response = login(risk).get(
        url(
            "deployment", incident.deployment.pk, since="2025-01-01", until="2026-06-01"
        )
    )
    assert "Choose a range of at most 366 days." in response.content.decode()


def test_unknown_subject_is_404(login, risk, incident):
    assert login(risk).get(url("system", incident.deployment.pk)).status_code == 404
    assert login(risk).get(url("deployment", 999999)).status_code == 404


def test_another_teams_owner_gets_404(login, other_owner, owner, incident):
    for subject, pk in (
        ("deployment", incident.deployment.pk),
        ("model", incident.model.pk),
        ("identity", incident.identity.pk),
    ):
        assert login(other_owner).get(url(subject, pk)).status_code == 404
        assert login(owner).get(url(subject, pk)).status_code == 200


def test_anonymous_is_sent_to_sign_in(client, incident):
    response = client.get(url("deployment", incident.deployment.pk))
    assert response.status_code == 302 and "login" in response["Location"]


def test_detail_pages_link_to_the_timeline(login, risk, incident):
    client = login(risk)
    for obj, subject in (
        (incident.deployment, "deployment"),
        (incident.model, "model"),
        (incident.identity, "identity"),
    ):
        body = client.get(obj.get_absolute_url()).content.decode()
        assert f'href="{url(subject, obj.pk)}" data-testid="timeline-link"' in body


def test_order_oldest_first_and_exports_keep_it(login, risk, incident):
    client = login(risk)
    response = client.get(url("deployment", incident.deployment.pk, order="oldest"))
    times = [e.at for e in _events(response)]
    assert times == sorted(times) and len(times) > 5
    assert "order=oldest" in response.context["csv_url"]
    data = client.get(response.context["json_url"]).json()
    assert [e["at"] for e in data["events"]] == sorted(e["at"] for e in data["events"])
    assert (
        client.get(url("deployment", incident.deployment.pk, order="x")).status_code
        == 400
    )


def test_revoked_and_expired_credentials(login, risk, incident):
    from inventory import history
    from inventory import models as m

    now = timezone.now()
    history.record_changes(
        deltas=[
            history.Delta(
                history.IDENTITY, incident.identity.pk, "status", "active", "revoked"
            )
        ],
        source="aws-iam",
        at=now - timedelta(hours=2),
    )
    m.NonHumanIdentity.objects.filter(pk=incident.identity.pk).update(
        status="revoked", expires_at=now - timedelta(hours=1)
    )
    response = login(risk).get(url("identity", incident.identity.pk, kind="credential"))
    events = {e.what: e for e in _events(response)}
    assert events["svc-fraud-prod active → revoked"].source == "aws-iam"
    assert "svc-fraud-prod expired (revoked)" in events


def test_chart_stacks_calls_by_caller(login, risk, incident, monkeypatch):
    from governance import timeline as tl

    monkeypatch.setattr(tl, "CHART_CALLERS", 2)
    response = login(risk).get(url("deployment", incident.deployment.pk))
    chart = response.context["chart_data"]
    names = [s["name"] for s in chart["series"]]
    assert names == ["svc-fraud-prod", "batch-old", "other callers"]
    for i, total in enumerate(chart["calls"]):
        assert sum(s["calls"][i] for s in chart["series"]) == total
    assert sum(chart["series"][0]["calls"]) == 303
    assert sum(chart["series"][2]["calls"]) == 21  # mystery-svc
