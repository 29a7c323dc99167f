"""The AWS IAM connector against a real moto server, an uploaded report, and backdated keys."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from freezegun import freeze_time
from moto import mock_aws

from audit.models import AuditEvent
from inventory import models as m
from inventory.filters import IdentityFilter
from sources import models as sm
from sources.connectors import aws_iam
from sources.sync import runner, secrets
from sources.sync.base import RevokeError
from sources.sync.revoke import revoke_at_source
from tests.connectors import aws_server
from tests.connectors.aws_server import ACCOUNT_ID, free_port
from tests.factories import AIModelFactory, DeploymentFactory

pytestmark = pytest.mark.django_db

# The moto server fixtures, used by name below.
moto_server = aws_server.moto_server
aws = aws_server.aws

FIXTURES = Path(__file__).parent.parent / "fixtures" / "credentials"
RULES = "^svc-(?P<model>[a-z0-9-]+)$ => model\n"


@pytest.fixture
def sync(django_capture_on_commit_callbacks, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")

    def do(source, **kw):
        with django_capture_on_commit_callbacks(execute=True):
            run, created = runner.request_sync(
                source=source, trigger=kw.pop("trigger", "command"), **kw
            )
        assert created
        run.refresh_from_db()
        return run

    return do


def make_source(endpoint_url=None, *, secrets_=None, **config) -> sm.DataSource:
    if endpoint_url:
        config["endpoint_url"] = endpoint_url
    return sm.DataSource.objects.create(
        name="AWS prod",
        kind="aws_iam",
        config={"rules": RULES, **config},
        secrets_encrypted=secrets.encrypt(
            secrets_
            if secrets_ is not None
            else {"access_key_id": "testing", "secret_access_key": "testing"}
        ),
    )


def ident(external_suffix: str) -> m.NonHumanIdentity:
    return m.NonHumanIdentity.objects.get(external_id__endswith=external_suffix)


@pytest.fixture
def account(aws):
    """Four IAM users at moto: tagged, rule-named, deployment-tagged, and a human."""
    iam = aws.client()
    iam.create_user(
        UserName="svc-fraud-scorer", Tags=[{"Key": "model", "Value": "fraud-scorer"}]
    )
    used = iam.create_access_key(UserName="svc-fraud-scorer")["AccessKey"]
    spare = iam.create_access_key(UserName="svc-fraud-scorer")["AccessKey"]
    iam.update_access_key(
        UserName="svc-fraud-scorer", AccessKeyId=spare["AccessKeyId"], Status="Inactive"
    )
    iam.create_user(UserName="svc-support-llm")
    iam.create_access_key(UserName="svc-support-llm")
    iam.create_user(
        UserName="deploy-bot", Tags=[{"Key": "deployment", "Value": "fraud-prod"}]
    )
    iam.create_access_key(UserName="deploy-bot")
    iam.create_user(UserName="alice")
    # A call signed with the first key is its use: the report then has a last-used date.
    aws.client(key_id=used["AccessKeyId"], secret=used["SecretAccessKey"]).list_users()
    return iam


def test_sync_from_moto_server_reads_keys_status_use_and_models(aws, account, sync):
    fraud = AIModelFactory(name="fraud-scorer", lifecycle=m.AIModel.Lifecycle.RETIRED)
    support = AIModelFactory(name="support-llm")
    prod = DeploymentFactory(name="fraud-prod", model=fraud)
    source = make_source(aws.endpoint_url)

    run = sync(source)

    assert (run.status, run.seen, run.created, run.errors) == ("succeeded", 4, 4, 0)
    arn = f"arn:aws:iam::{ACCOUNT_ID}:user"
    assert set(m.NonHumanIdentity.objects.values_list("external_id", flat=True)) == {
        f"aws:{arn}/svc-fraud-scorer:key1",
        f"aws:{arn}/svc-fraud-scorer:key2",
        f"aws:{arn}/svc-support-llm:key1",
        f"aws:{arn}/deploy-bot:key1",
    }
    used, spare = ident("svc-fraud-scorer:key1"), ident("svc-fraud-scorer:key2")
    assert (used.name, used.kind, used.provider) == (
        "svc-fraud-scorer key 1",
        "access_key",
        "aws",
    )
    assert (used.status, spare.status) == ("active", "disabled")
    assert used.last_used_at is not None and spare.last_used_at is None
    assert used.issued_at == used.rotated_at and used.issued_at is not None
    assert used.model == fraud, "the user's model tag"
    assert ident("svc-support-llm:key1").model == support, "the naming rule"
    bot = ident("deploy-bot:key1")
    assert list(bot.deployments.all()) == [prod]
    assert bot.model == fraud, "a deployment's credential belongs to its model"
    retired = IdentityFilter(
        {"risk": "retired_model"}, m.NonHumanIdentity.objects.all()
    ).qs
    assert bot in retired, "bound to a deployment of a retired model"

    again = sync(source)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)


def test_revoke_deactivates_the_right_key_at_moto_and_is_audited(
    aws, account, sync, admin_user, owner
):
    iam = account
    iam.create_user(UserName="svc-two-keys")
    first = iam.create_access_key(UserName="svc-two-keys")["AccessKey"]["AccessKeyId"]
    second = iam.create_access_key(UserName="svc-two-keys")["AccessKey"]["AccessKeyId"]
    source = make_source(aws.endpoint_url)
    sync(source)
    target = ident("svc-two-keys:key2")

    with pytest.raises(PermissionDenied):
        revoke_at_source(actor=owner, obj=target)
    assert _statuses(iam, "svc-two-keys") == {first: "Active", second: "Active"}

    message = revoke_at_source(actor=admin_user, obj=target)

    assert message == f"Deactivated access key …{second[-4:]} of IAM user svc-two-keys."
    assert _statuses(iam, "svc-two-keys") == {first: "Active", second: "Inactive"}
    target.refresh_from_db()
    assert target.status == "disabled"
    event = AuditEvent.objects.get(action="nonhumanidentity.revoke_at_source")
    assert (event.actor_id, event.object_id) == (admin_user.pk, str(target.pk))
    assert (event.before["status"], event.after["status"]) == ("active", "disabled")
    assert event.after["revoked_at_source"]["result"] == message

    run = sync(source)
    target.refresh_from_db()
    assert run.status == "succeeded" and target.status == "disabled"
    assert ident("svc-two-keys:key1").status == "active"


def test_revoking_a_key_replaced_since_the_sync_is_refused(
    aws, account, sync, admin_user
):
    iam = account
    source = make_source(aws.endpoint_url)
    sync(source)
    target = ident("svc-support-llm:key1")
    old = iam.list_access_keys(UserName="svc-support-llm")["AccessKeyMetadata"][0]
    iam.delete_access_key(UserName="svc-support-llm", AccessKeyId=old["AccessKeyId"])
    # The report dates keys to the second: the replacement is created in a later one.
    time.sleep(1.05 - (time.time() % 1))
    new = iam.create_access_key(UserName="svc-support-llm")["AccessKey"]
    assert new["CreateDate"].replace(microsecond=0) != old["CreateDate"].replace(
        microsecond=0
    )

    with pytest.raises(RevokeError, match="no longer at AWS"):
        revoke_at_source(actor=admin_user, obj=target)

    assert _statuses(iam, "svc-support-llm") == {new["AccessKeyId"]: "Active"}
    assert not AuditEvent.objects.filter(action__endswith="revoke_at_source").exists()


def _statuses(iam, user: str) -> dict[str, str]:
    return {
        k["AccessKeyId"]: k["Status"]
        for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    }


def test_unreachable_endpoint_fails_the_run_and_queues_a_retry(sync):
    source = make_source(f"http://127.0.0.1:{free_port()}")
    run = sync(source)
    assert run.status == "failed"
    assert "AWS IAM did not answer" in run.error
    assert sm.SyncRun.objects.get(retry_of=run).status == "queued"


def test_half_a_key_pair_is_a_configuration_error_without_retry(aws, sync):
    source = make_source(aws.endpoint_url, secrets_={"access_key_id": "AKIAONLY"})
    run = sync(source)
    assert run.status == "failed" and run.error == aws_iam.PARTIAL_KEYS
    assert not sm.SyncRun.objects.filter(retry_of=run).exists()
    assert "AKIAONLY" not in run.error


def test_uploaded_real_report_with_root_row_and_sentinels(sync, admin_user):
    AIModelFactory(name="churn-model")
    source = make_source(secrets_={})
    upload = SimpleUploadedFile(
        "report.csv", (FIXTURES / "aws_credential_report.csv").read_bytes()
    )

    run = sync(source, upload=upload, trigger="upload")

    assert run.status == "partial"
    # 7 rows: root (1 key), fraud (2), support (1), churn (2), alice (none) and two bad.
    assert (run.created, run.errors) == (6, 2)
    reasons = dict(run.error_rows.values_list("external_id", "reason"))
    assert (
        "access_key_1_last_rotated is not a date"
        in reasons[f"arn:aws:iam::{ACCOUNT_ID}:user/svc-broken"]
    )
    assert reasons[f"arn:aws:iam::{ACCOUNT_ID}:user/svc-cut-short"] == (
        "The row is cut short."
    )
    root = ident(":root:key1")
    assert (root.name, root.status, root.model_id) == (
        "root account key 1",
        "active",
        None,
    )
    assert root.last_used_at == datetime(2024, 9, 30, 12, tzinfo=UTC)
    fraud_spare = ident("svc-fraud-scorer:key2")
    assert fraud_spare.status == "disabled" and fraud_spare.last_used_at is None
    churn = ident("ml/svc-churn-model:key2")
    assert churn.last_used_at is None, "no_information is no date"
    assert churn.model.name == "churn-model", "rules see the user name, not the path"
    assert not m.NonHumanIdentity.objects.filter(name__startswith="alice").exists()

    with pytest.raises(RevokeError, match="root user"):
        revoke_at_source(actor=admin_user, obj=root)


def test_a_file_that_is_not_a_credential_report_fails_clearly(sync):
    source = make_source(secrets_={})
    upload = SimpleUploadedFile("users.csv", b"name,email\nalice,a@example.com\n")
    run = sync(source, upload=upload, trigger="upload")
    assert run.status == "failed"
    assert run.error.startswith("This file is not an AWS IAM credential report")
    assert "user, arn" in run.error


def test_backdated_keys_in_process_are_flagged_unrotated(sync, monkeypatch):
    """freezegun only reaches moto in-process (mock_aws), so the stale case runs there,
    through boto3's default credential chain and AWS's own endpoint name."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        iam = boto3.client("iam", region_name="us-east-1")
        with freeze_time("2023-01-15 10:00:00"):
            iam.create_user(UserName="svc-retired-model")
            iam.create_access_key(UserName="svc-retired-model")
        iam.create_user(UserName="svc-fresh")
        iam.create_access_key(UserName="svc-fresh")
        source = make_source(secrets_={})
        run = sync(source)

    assert run.status == "succeeded" and run.created == 2
    old = ident("svc-retired-model:key1")
    assert old.issued_at == datetime(2023, 1, 15, 10, tzinfo=UTC)
    assert old.last_used_at is None
    unrotated = IdentityFilter(
        {"risk": "unrotated"}, m.NonHumanIdentity.objects.all()
    ).qs
    assert list(unrotated) == [old]
