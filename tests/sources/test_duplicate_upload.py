"""The same file twice in a row is refused before any run exists: no failed run, and the
source's health stays as it was."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.urls import reverse

from sources import models as sm
from sources.sync import services

pytestmark = pytest.mark.django_db

EXPORT = b'[{"name": "projects/p/serviceAccounts/a@p.iam/keys/k1"}]'


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def source():
    return sm.DataSource.objects.create(
        name="GCP keys", kind="gcp_keys", schedule_minutes=0, health="healthy"
    )


def sync(actor, source, content: bytes, **kw):
    return services.sync_request(
        actor=actor, source=source, upload=ContentFile(content, name="keys.json"), **kw
    )


def finish(run, status="succeeded"):
    sm.SyncRun.objects.filter(pk=run.pk).update(status=status)


def test_the_same_file_again_is_refused_with_the_run_that_synced_it(admin_user, source):
    run, created = sync(admin_user, source, EXPORT)
    assert created and len(run.upload_sha256) == 64
    finish(run)
    with pytest.raises(ValidationError) as refused:
        sync(admin_user, source, EXPORT)
    message = refused.value.message_dict["file"][0]
    assert f"the one run #{run.pk} already synced" in message
    assert sm.SyncRun.objects.filter(source=source).count() == 1
    source.refresh_from_db()
    assert source.health == "healthy"


def test_another_file_a_retry_after_failure_and_a_dry_run_are_not_refused(
    admin_user, source
):
    first, _ = sync(admin_user, source, EXPORT)
    finish(first)
    dry, created = sync(admin_user, source, EXPORT, dry_run=True)
    assert created  # a dry run keeps nothing: checking the same file is allowed
    finish(dry)
    other, created = sync(admin_user, source, EXPORT + b"\n")
    assert created
    finish(other, "failed")
    # The last kept run failed: sending its file (or the first one) again is a retry.
    again, created = sync(admin_user, source, EXPORT + b"\n")
    assert created
    finish(again)
    back, created = sync(admin_user, source, EXPORT)
    assert created  # a change back to the first export, after another one


def test_the_page_answers_422_with_the_refusal(client, admin_user, source):
    run, _ = sync(admin_user, source, EXPORT)
    finish(run)
    client.force_login(admin_user)
    response = client.post(
        reverse("sources:source_sync", args=[source.pk]),
        {"dry_run": "false", "file": ContentFile(EXPORT, name="keys.json")},
    )
    assert response.status_code == 422
    assert "already synced" in response.content.decode()
    assert sm.SyncRun.objects.filter(source=source).count() == 1
