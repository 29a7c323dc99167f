"""A finding's deployment and identity have no database constraint (their checks cost a
first full run seconds at its commits): Django still deletes a subject's findings with
it, and a finding whose subject vanished behind Django's back (a run racing a delete)
still shows, then resolves at the next full run."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from governance import detection
from governance.models import Finding
from inventory import models as m
from tests.governance.findings_ui_helpers import make_finding

pytestmark = pytest.mark.django_db


def test_deleting_a_subject_deletes_its_findings(team_a):
    finding = make_finding(team=team_a)
    finding.deployment.delete()
    assert not Finding.objects.filter(pk=finding.pk).exists()


def test_a_finding_whose_subject_vanished_shows_and_then_resolves(
    client, admin_user, team_a
):
    finding = make_finding(team=team_a, kind=Finding.Kind.MISSING_PURPOSE)
    gone = finding.deployment_id
    with connection.cursor() as cursor:  # behind Django's back: no cascade
        table = connection.ops.quote_name(m.Deployment._meta.db_table)
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [gone])  # noqa: S608
    client.force_login(admin_user)

    for url in (
        finding.get_absolute_url(),
        reverse("governance:finding_list"),
        reverse("governance:finding_list") + "?export=csv",
        reverse("dashboard"),
    ):
        assert client.get(url).status_code == 200, url

    detection.run(kinds=[Finding.Kind.MISSING_PURPOSE], notify=False)
    finding.refresh_from_db()
    assert finding.status == Finding.Status.RESOLVED
