"""The product's test, in real Chromium: from the dashboard to a shadow deployment's
finding, its proof card (what runs, who can invoke it, how quickly it can be withdrawn)
and its incident timeline (since when, and who called it since)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from governance import detection, tiers
from governance.models import Finding
from inventory import models as m
from inventory import services
from tests.factories import (
    AIModelFactory,
    DeploymentFactory,
    IdentityFactory,
    ModelVersionFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_dashboard_to_shadow_finding_to_proof_card_to_timeline(sign_in, risk, team_a):
    model = AIModelFactory(name="legacy-ranker", team=team_a, lifecycle="active")
    version = ModelVersionFactory(model=model, version="7", approval="approved")
    deployment = DeploymentFactory(
        name="ranker-prod",
        model=model,
        team=team_a,
        observed_version=version,
        environment="production",
        exposure="external",
    )
    key = IdentityFactory(name="svc-ranker", team=team_a)
    key.deployments.add(deployment)
    services.aimodel_set_lifecycle(
        actor=risk, model=model, lifecycle="deprecated", note="replaced by ranker-2"
    )
    services.aimodel_set_lifecycle(
        actor=risk, model=model, lifecycle="retired", note="replaced by ranker-2"
    )
    # Still answering after its retirement: calls in this hour from a known caller.
    now = timezone.now()
    m.UsageHour.objects.create(
        deployment=deployment,
        hour=now.replace(minute=0, second=0, microsecond=0),
        caller_service="svc-ranker",
        identity=key,
        calls=42,
        errors=1,
        duration_ms_total=4200,
        duration_ms_max=300,
    )
    m.Deployment.objects.filter(pk=deployment.pk).update(
        last_call_at=now, last_seen_at=now - timedelta(minutes=1)
    )
    tiers.recompute()
    detection.run(notify=False)
    finding = Finding.objects.get(kind="shadow_deployment", subject_id=deployment.pk)

    page = sign_in(risk)
    page.goto("/")
    page.get_by_test_id("headline-shadow_deployments").get_by_role("link").click()
    expect(page).to_have_url(
        re.compile(r"/governance/findings/\?kind=shadow_deployment")
    )
    page.get_by_test_id(f"finding-link-{finding.pk}").click()
    expect(page.get_by_test_id("finding-kind")).to_have_text("Shadow deployment")

    page.get_by_test_id("finding-subject").click()
    expect(page).to_have_url(re.compile(rf"/inventory/deployments/{deployment.pk}/"))
    page.get_by_test_id("proof-card-link").click()
    expect(page).to_have_url(
        re.compile(rf"/governance/deployments/{deployment.pk}/proof/")
    )
    expect(page.get_by_test_id("running-version")).to_contain_text("7")
    expect(page.get_by_test_id("proof-findings")).to_contain_text("Shadow deployment")
    expect(page.get_by_text("svc-ranker").first).to_be_visible()

    page.go_back()
    page.get_by_test_id("timeline-link").click()
    expect(page).to_have_url(
        re.compile(rf"/governance/timeline/deployment/{deployment.pk}/")
    )
    # The retirement, the finding and the caller since, on one page.
    body = page.locator("main")
    expect(body).to_contain_text("retired")
    expect(body).to_contain_text("svc-ranker")
    expect(body).to_contain_text(f"Opened: {finding.title}")
