"""Journey: an administrator adds an upload source, syncs a file, and follows the run.

Real connector (gcp_keys, which syncs from an uploaded gcloud export), real engine, eager
Celery in the live server's process. The page fixture fails the test on any console error
or CSP violation (plotly's history chart, the htmx progress polling).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from inventory import models as m
from sources import models as sm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIXTURE = (
    Path(__file__).parent.parent / "fixtures" / "credentials" / "gcp_keys_gcloud.json"
)


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


def test_admin_adds_a_source_uploads_a_file_and_follows_the_run(sign_in, admin_user):
    page = sign_in(admin_user)
    page.goto("/")
    page.get_by_role("link", name="Sources", exact=True).click()
    expect(page).to_have_url(re.compile(r"/sources/$"))

    page.get_by_role("link", name="New source").click()
    page.get_by_role("link", name="GCP service-account keys (JSON export)").click()
    page.get_by_label("Name").fill("GCP keys (acme-ml)")
    expect(page.get_by_test_id("schedule-note")).to_contain_text("uploaded files")
    page.get_by_role("button", name="Save").click()

    expect(page).to_have_url(re.compile(r"/sources/\d+/$"))
    source = sm.DataSource.objects.get(name="GCP keys (acme-ml)")
    assert source.kind == "gcp_keys"
    expect(page.get_by_role("heading", level=1)).to_have_text("GCP keys (acme-ml)")
    expect(page.get_by_test_id("health")).to_have_text("Not synced yet")

    page.get_by_label(re.compile(r"^File")).set_input_files(str(FIXTURE))
    page.get_by_test_id("sync-now").click()

    expect(page).to_have_url(re.compile(r"/sources/runs/\d+/$"))
    run = sm.SyncRun.objects.get(source=source)
    status = page.get_by_test_id("run-block")
    expect(status).to_have_attribute("data-status", "succeeded")
    expect(page.get_by_test_id("progress")).to_have_attribute("value", "100")
    expect(page.get_by_test_id("count-created")).to_have_text("1")
    expect(page.get_by_test_id("count-errors")).to_have_text("0")
    expect(page.get_by_test_id("changes")).to_contain_text("created")
    run.refresh_from_db()
    assert (run.status, run.trigger, run.created) == ("succeeded", "upload", 1)
    assert m.NonHumanIdentity.objects.filter(source=source.source_label).count() == 1

    page.get_by_role("link", name="Back to GCP keys (acme-ml)").click()
    expect(page.get_by_test_id("health")).to_have_text("Healthy")
    expect(page.locator("#chart-history svg.main-svg").first).to_be_visible()
    expect(page.get_by_test_id("runs")).to_contain_text(f"#{run.pk}")


def test_the_progress_bar_follows_a_running_sync_until_it_ends(sign_in, admin_user):
    """A run a worker is busy with: the page polls its fragment every second, the bar moves
    with the counts, and polling stops once the server answers 286 with the final counts."""
    source = sm.DataSource.objects.create(
        name="Slow registry", kind="gcp_keys", schedule_minutes=0
    )
    now = timezone.now()
    run = sm.SyncRun.objects.create(
        source=source,
        trigger="upload",
        status="running",
        phase="applying",
        started_at=now,
        heartbeat_at=now,
        expected=10,
        seen=3,
    )
    page = sign_in(admin_user)
    polls: list[int] = []
    page.on(
        "response",
        lambda r: "/progress/" in r.url and polls.append(r.status),
    )
    page.goto(f"/sources/runs/{run.pk}/")
    bar = page.get_by_test_id("progress")
    expect(bar).to_have_attribute("value", "30")

    sm.SyncRun.objects.filter(pk=run.pk).update(seen=7, created=7)
    expect(bar).to_have_attribute("value", "70", timeout=5_000)
    assert 200 in polls

    sm.SyncRun.objects.filter(pk=run.pk).update(
        status="succeeded", finished_at=timezone.now(), seen=10, created=10, phase=""
    )
    expect(page.get_by_test_id("run-block")).to_have_attribute(
        "data-status", "succeeded", timeout=5_000
    )
    expect(bar).to_have_attribute("value", "100")
    expect(page.get_by_test_id("count-created")).to_have_text("10")
    finished = len(polls)
    page.wait_for_timeout(2_500)
    assert polls[-1] == 286 and len(polls) == finished, "polling stopped after 286"
