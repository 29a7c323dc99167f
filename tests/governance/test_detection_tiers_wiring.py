"""The change consumer recomputes tiers before it detects: an owner's edit that makes a
deployment riskier moves its tier and its findings' severity within one consumer run."""

from __future__ import annotations

import pytest

from governance import detection_runner, tiers
from governance.models import Finding
from inventory import models as m
from inventory import services
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db


def test_an_edit_moves_the_tier_and_the_finding_severity(admin_user):
    d = DeploymentFactory(
        owner=None,
        exposure="internal",
        write_access=False,
        decision_making=False,
        environment="development",
    )
    tiers.recompute()
    detection_runner.detect_all()
    d.refresh_from_db()
    assert d.risk_tier == 4
    low = Finding.objects.get(kind="missing_owner", subject_id=d.pk)
    assert low.tier == 4

    d.exposure, d.write_access, d.decision_making = "external", True, True
    d.environment = "production"
    services.object_update(actor=admin_user, instance=d)
    detection_runner.detect_changes()

    d.refresh_from_db()
    assert d.risk_tier == 1
    assert m.AIModel.objects.get(pk=d.model_id).risk_tier == 1
    finding = Finding.objects.get(pk=low.pk)
    assert finding.tier == 1
    assert finding.severity > low.severity
