"""Journeys: the sources page after a failed run and after a duplicate upload.

Real connector (gcp_keys, which only takes uploaded gcloud exports), real engine, eager
Celery in the live server's process, as in test_sources.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from sources import models as sm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FIXTURE = (
    Path(__file__).parent.parent / "fixtures" / "credentials" / "gcp_keys_gcloud.json"
)
# Bootstrap 5.3's --bs-danger, as the computed accent colour of a <progress>.
DANGER = "rgb(220, 53, 69)"


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def upload_source():
    return sm.DataSource.objects.create(
        name="GCP keys (acme-ml)", kind="gcp_keys", schedule_minutes=0
    )


def upload(page, path: Path) -> None:
    page.get_by_label(re.compile(r"^File")).set_input_files(str(path))
    page.get_by_test_id("sync-now").click()


def test_an_upload_only_source_offers_no_sync_now(sign_in, admin_user, upload_source):
    page = sign_in(admin_user)
    page.goto(upload_source.get_absolute_url())
    form = page.get_by_test_id("sync-form")
    expect(form.get_by_role("button", name="Upload and sync")).to_be_visible()
    expect(form.get_by_role("button", name="Sync now")).to_have_count(0)


def test_a_failed_run_is_red_says_failed_and_the_health_agrees(
    sign_in, admin_user, upload_source, tmp_path
):
    broken = tmp_path / "keys.json"
    broken.write_text("{ this is not a gcloud export", encoding="utf-8")
    page = sign_in(admin_user)
    page.goto(upload_source.get_absolute_url())
    upload(page, broken)

    expect(page).to_have_url(re.compile(r"/sources/runs/\d+/$"))
    run = sm.SyncRun.objects.get(source=upload_source)
    expect(page.get_by_test_id("run-block")).to_have_attribute("data-status", "failed")
    bar = page.get_by_test_id("progress")
    expect(bar).to_have_class(re.compile(r"\bsync-progress-failed\b"))
    assert bar.evaluate("e => getComputedStyle(e).accentColor") == DANGER
    outcome = page.get_by_test_id("run-outcome")
    expect(outcome).to_have_attribute("data-outcome", "failed")
    expect(outcome).to_contain_text(f"Run #{run.pk} failed")
    expect(page.get_by_test_id("progress-text")).to_contain_text("Failed")
    for word in ("running", "done", "succeeded", "100%"):
        expect(page.get_by_test_id("run-block")).not_to_contain_text(word)

    # The source page: health Failing, and "Last run" is that same run, failed.
    page.get_by_role("link", name="Back to GCP keys (acme-ml)").click()
    expect(page.get_by_test_id("health")).to_have_text("Failing")
    last_run = page.get_by_test_id("last-run")
    expect(last_run.get_by_role("link")).to_have_text(f"#{run.pk}")
    expect(last_run.get_by_test_id("run-status")).to_have_text("Failed")

    # The sources list says the same of it, in one row.
    page.goto("/sources/")
    row = page.locator("#results tbody tr", has_text="GCP keys (acme-ml)")
    expect(row.get_by_test_id("health")).to_have_text("Failing")
    expect(row.get_by_test_id("run-status")).to_have_text("Failed")
    expect(row.get_by_role("link", name="Failed")).to_have_attribute(
        "href", run.get_absolute_url()
    )


def test_a_duplicate_upload_is_refused_and_the_source_stays_healthy(
    sign_in, admin_user, page_problems, upload_source
):
    # Chromium logs the 422 of the refused form as a failed load; that one is expected.
    page_problems.allowed.append("status of 422")
    page = sign_in(admin_user)
    page.goto(upload_source.get_absolute_url())
    upload(page, FIXTURE)
    expect(page.get_by_test_id("run-block")).to_have_attribute(
        "data-status", "succeeded"
    )
    first = sm.SyncRun.objects.get(source=upload_source)

    page.get_by_role("link", name="Back to GCP keys (acme-ml)").click()
    expect(page.get_by_test_id("health")).to_have_text("Healthy")
    upload(page, FIXTURE)

    refused = page.get_by_test_id("upload-error")
    expect(refused).to_contain_text(f"the one run #{first.pk} already synced")
    expect(refused).to_contain_text("no run was started")
    expect(page.get_by_test_id("health")).to_have_text("Healthy")
    expect(page.get_by_test_id("last-run").get_by_test_id("run-status")).to_have_text(
        "Succeeded"
    )
    upload_source.refresh_from_db()
    assert upload_source.health == sm.DataSource.Health.HEALTHY
    assert list(sm.SyncRun.objects.filter(source=upload_source)) == [first]
    assert not sm.SyncRun.objects.filter(status=sm.SyncRun.Status.FAILED).exists()
