"""AWS IAM access keys, from the IAM credential report (pulled with boto3, or uploaded).

The credential report is one CSV row per IAM user (and one for the root account) with two
access-key slots each. Every slot that holds a key becomes a `NonHumanIdentity` of kind
"access_key"; users without keys bring nothing. The model a key exists for comes from the
user's tag (`model` by default, read with iam:ListUserTags) or from the naming rules on
the user name.

The same parser reads moto's report and AWS's, which differ (see the research note, 4.1):
moto has no `<root_account>` row and writes `not_supported` where AWS writes a region or
`N/A`. Dates may be any of the sentinels N/A / not_supported / no_information.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import boto3
from botocore import exceptions as bx
from botocore.config import Config
from django.conf import settings

from inventory import models as m
from sources.connectors.credentials import (
    Credential,
    CredentialConnector,
    as_bool,
    key_settings,
    parse_time,
    rules_setting,
)
from sources.sync.base import (
    FetchContext,
    Malformed,
    Record,
    RevokeError,
    Setting,
    SourceConfigError,
    SourceUnavailable,
    excerpt,
)

SENTINELS = frozenset({"", "N/A", "not_supported", "no_information"})
ROOT_USER = "<root_account>"
SLOTS = (1, 2)
REQUIRED_COLUMNS = ("user", "arn") + tuple(
    f"access_key_{n}_{col}"
    for n in SLOTS
    for col in ("active", "last_rotated", "last_used_date")
)
# generate_credential_report answers STARTED until the report is ready; AWS says it takes
# seconds for most accounts, so a report not ready after this long is a transient failure.
REPORT_WAIT_SECONDS = 120

NOT_A_REPORT = (
    "This file is not an AWS IAM credential report: its header lacks {missing}. "
    "Download it with `aws iam get-credential-report` (the Content, base64-decoded) or "
    "from the IAM console's Credential report page."
)
NOT_TEXT = "The file is not a UTF-8 CSV text file."
PARTIAL_KEYS = "Enter both the access key ID and the secret access key, or neither."
NO_CREDENTIALS = (
    "No AWS credentials: enter an access key for this source, or give the worker an "
    "IAM role (instance profile, IRSA) or the AWS_* environment variables."
)
REFUSED = (
    "AWS refused the credentials ({code}). Check the access key and that its policy allows "
    "iam:GenerateCredentialReport, iam:GetCredentialReport and iam:ListUserTags."
)
TAGS_REFUSED = (
    "AWS refused iam:ListUserTags ({code}). Allow it in the policy, or turn off "
    "'Read user tags' for this source."
)
UNREACHABLE = "AWS IAM did not answer at {endpoint} ({error})."
TLS_FAILED = "The TLS certificate of {endpoint} is not trusted by the worker."
NOT_READY = (
    "The IAM credential report was not ready after {seconds} s; trying again later."
)
ROOT_KEY = (
    "Root account keys can only be deactivated by the root user, in the AWS console."
)
KEY_GONE = (
    "The access key in slot {slot} of {user} is no longer at AWS (rotated or deleted); "
    "sync the source and try again."
)
BAD_ID = "This identity's id is not an IAM access key slot."

# Error codes that mean the credentials or their policy are wrong, not that AWS is down.
CONFIG_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidAccessKeyId",
        "AuthFailure",
        "OptInRequired",
    }
)
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ServiceFailure",
        "ServiceUnavailable",
        "InternalFailure",
    }
)


class AwsIamConnector(CredentialConnector):
    kind = "aws_iam"
    label = "AWS IAM credential report"
    description = (
        "IAM users' access keys with last rotation and last use, from the credential "
        "report, linked to models by user tag or naming rules."
    )
    pull = True
    upload = "optional"
    upload_help = (
        "The credential report CSV (IAM console > Credential report > Download, or "
        "`aws iam get-credential-report --query Content --output text | base64 -d`). "
        "User tags are not in the report: an upload links keys by naming rules only."
    )
    revocable = (m.NonHumanIdentity,)
    # A deactivated key can be re-activated: revoking leaves it disabled, not revoked.
    revoked_status = m.NonHumanIdentity.Status.DISABLED
    settings_spec = (
        Setting("region", "Region", default="us-east-1"),
        Setting(
            "endpoint_url",
            "Endpoint URL",
            kind="url",
            help="Only for a VPC endpoint or a test server; empty uses AWS's own.",
        ),
        Setting(
            "read_user_tags",
            "Read user tags",
            kind="bool",
            default=True,
            help="Call iam:ListUserTags for each user with keys, to read the model tag.",
        ),
        *key_settings("model", "user tag"),
        rules_setting(),
        Setting("access_key_id", "Access key ID", secret=True),
        Setting("secret_access_key", "Secret access key", secret=True),
        Setting(
            "session_token",
            "Session token",
            secret=True,
            help="Only for temporary credentials. Leave all three empty to use the "
            "worker's own AWS credentials (instance role, environment).",
        ),
    )

    # -- fetching ----------------------------------------------------------------------
    def fetch(self, ctx: FetchContext) -> Iterator[Record | Malformed]:
        self.check_rules()
        if ctx.upload_path:
            try:
                with open(ctx.upload_path, encoding="utf-8-sig", newline="") as fp:
                    yield from self._parse(fp, ctx, iam=None)
            except UnicodeDecodeError as exc:
                raise SourceConfigError(NOT_TEXT) from exc
            return
        iam = self.client(ctx)
        with self._errors(ctx):
            content = self._report(iam)
        # The API hands the report over whole (a few MB even for large accounts), so it
        # is in memory once; the rows are still parsed one at a time.
        with io.TextIOWrapper(
            io.BytesIO(content), encoding="utf-8-sig", newline=""
        ) as fp:
            yield from self._parse(fp, ctx, iam=iam)

    def _report(self, iam: Any) -> bytes:
        deadline = time.monotonic() + REPORT_WAIT_SECONDS
        pause = 0.2
        while iam.generate_credential_report()["State"] != "COMPLETE":
            if time.monotonic() > deadline:
                raise SourceUnavailable(NOT_READY.format(seconds=REPORT_WAIT_SECONDS))
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
        return iam.get_credential_report()["Content"]

    def _parse(
        self, fp: Any, ctx: FetchContext, iam: Any
    ) -> Iterator[Record | Malformed]:
        reader = csv.DictReader(fp)
        try:
            header = reader.fieldnames or []
        except csv.Error as exc:
            raise SourceConfigError(
                NOT_A_REPORT.format(missing="a CSV header")
            ) from exc
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise SourceConfigError(NOT_A_REPORT.format(missing=", ".join(missing)))
        read_tags = iam is not None and as_bool(ctx.options.read_user_tags)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Malformed(f"line {reader.line_num}", f"Not a CSV row: {exc}.")
                continue
            try:
                slots = list(_key_slots(row))
            except ValueError as exc:
                yield Malformed(
                    row.get("arn") or row.get("user") or f"line {reader.line_num}",
                    str(exc),
                    excerpt(",".join(str(v) for v in row.values() if v is not None)),
                )
                continue
            if not slots:
                continue
            user = row["user"]
            tags: dict[str, str] = {}
            if read_tags and user != ROOT_USER:
                with self._errors(ctx, tags_call=True):
                    tags = _user_tags(iam, user)
            for external_id, cred in slots:
                cred.model_name = tags.get(ctx.options.model_key) or ""
                cred.deployment_name = tags.get(ctx.options.deployment_key) or ""
                yield Record(external_id, cred)

    # -- revoking ----------------------------------------------------------------------
    def revoke(self, obj: Any, ctx: FetchContext) -> str:
        """Deactivate the key (it can be re-activated at AWS; it is not deleted)."""
        arn, slot = _parse_external_id(obj.external_id or "")
        if arn.endswith(":root"):
            raise RevokeError(ROOT_KEY)
        user = arn.rsplit("/", 1)[-1]
        iam = self.client(ctx)
        with self._errors(ctx):
            try:
                keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
            except bx.ClientError as exc:
                if _error_code(exc) == "NoSuchEntity":
                    raise RevokeError(KEY_GONE.format(slot=slot, user=user)) from exc
                raise
            key_id = _key_in_slot(keys, slot, obj.issued_at)
            if key_id is None:
                raise RevokeError(KEY_GONE.format(slot=slot, user=user))
            iam.update_access_key(UserName=user, AccessKeyId=key_id, Status="Inactive")
        return f"Deactivated access key …{key_id[-4:]} of IAM user {user}."

    # -- the client and its errors -------------------------------------------------------
    def client(self, ctx: FetchContext) -> Any:
        key_id = ctx.secrets.get("access_key_id", "")
        secret = ctx.secrets.get("secret_access_key", "")
        if bool(key_id) != bool(secret):
            raise SourceConfigError(PARTIAL_KEYS)
        if key_id:
            session = boto3.session.Session(
                aws_access_key_id=key_id,
                aws_secret_access_key=secret,
                aws_session_token=ctx.secrets.get("session_token") or None,
            )
        else:
            session = boto3.session.Session()  # the default chain: role, environment
        timeout = settings.SYNC_HTTP_TIMEOUT
        kwargs: dict[str, Any] = {
            "region_name": ctx.options.region or "us-east-1",
            "config": Config(
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        }
        if ctx.options.endpoint_url:
            kwargs["endpoint_url"] = ctx.options.endpoint_url
        return session.client("iam", **kwargs)

    @contextmanager
    def _errors(self, ctx: FetchContext, *, tags_call: bool = False) -> Iterator[None]:
        """Turn botocore's errors into the sync's: unavailable (retried) or misconfigured."""
        endpoint = ctx.options.endpoint_url or "AWS"
        try:
            yield
        except bx.SSLError as exc:
            raise SourceConfigError(TLS_FAILED.format(endpoint=endpoint)) from exc
        except (
            bx.EndpointConnectionError,
            bx.ConnectTimeoutError,
            bx.ReadTimeoutError,
            bx.ConnectionClosedError,
        ) as exc:
            raise SourceUnavailable(
                UNREACHABLE.format(endpoint=endpoint, error=type(exc).__name__)
            ) from exc
        except (bx.NoCredentialsError, bx.PartialCredentialsError) as exc:
            raise SourceConfigError(NO_CREDENTIALS) from exc
        except bx.ClientError as exc:
            code = _error_code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in CONFIG_CODES:
                message = TAGS_REFUSED if tags_call else REFUSED
                raise SourceConfigError(message.format(code=code)) from exc
            if code in TRANSIENT_CODES or status >= 500:
                raise SourceUnavailable(
                    f"AWS IAM answered {status or code}; trying again later."
                ) from exc
            if tags_call and code == "NoSuchEntity":
                return  # deleted since the report was made: its keys are read untagged
            raise SourceConfigError(f"AWS IAM error {code}.") from exc


# ---------------------------------------------------------------------------
# Report rows
# ---------------------------------------------------------------------------
def _key_slots(row: dict[str, Any]) -> Iterator[tuple[str, Credential]]:
    """The access keys of one report row, as (external id, credential)."""
    user, arn = row.get("user"), row.get("arn")
    if not user or not arn or not arn.startswith("arn:"):
        raise ValueError("The row has no user name or ARN.")
    for slot in SLOTS:
        active = row.get(f"access_key_{slot}_active")
        rotated = row.get(f"access_key_{slot}_last_rotated")
        last_used = row.get(f"access_key_{slot}_last_used_date")
        if active is None or rotated is None or last_used is None:
            raise ValueError("The row is cut short.")
        if rotated in SENTINELS and active != "true":
            continue  # an empty slot
        rotated_at = _report_time(rotated, f"access_key_{slot}_last_rotated")
        yield (
            f"aws:{arn}:key{slot}",
            Credential(
                name=f"{'root account' if user == ROOT_USER else user} key {slot}",
                kind=m.NonHumanIdentity.Kind.ACCESS_KEY,
                provider="aws",
                subject="" if user == ROOT_USER else user,
                status=(
                    m.NonHumanIdentity.Status.ACTIVE
                    if _report_bool(active, f"access_key_{slot}_active")
                    else m.NonHumanIdentity.Status.DISABLED
                ),
                # The report only has last_rotated. IAM keys are rotated by creating a
                # new key and deleting the old one, so a slot's last_rotated is when its
                # current key was created: both its issue and its last rotation.
                issued_at=rotated_at,
                rotated_at=rotated_at,
                last_used_at=_report_time(
                    last_used, f"access_key_{slot}_last_used_date"
                ),
            ),
        )


def _report_time(value: str, column: str) -> datetime | None:
    if value in SENTINELS:
        return None
    try:
        return parse_time(value)
    except ValueError:
        raise ValueError(f"{column} is not a date: {value[:40]!r}.") from None


def _report_bool(value: str, column: str) -> bool:
    if value in ("true", "TRUE", "True"):
        return True
    if value in ("false", "FALSE", "False"):
        return False
    raise ValueError(f"{column} is not true or false: {value[:40]!r}.")


def _user_tags(iam: Any, user: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for page in iam.get_paginator("list_user_tags").paginate(UserName=user):
        for tag in page.get("Tags", []):
            tags[tag["Key"]] = tag["Value"]
    return tags


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _parse_external_id(external_id: str) -> tuple[str, int]:
    """("arn:aws:iam::123:user/name", 1) from "aws:arn:aws:iam::123:user/name:key1"."""
    if not external_id.startswith("aws:arn:") or ":key" not in external_id:
        raise RevokeError(BAD_ID)
    arn, _, slot = external_id[len("aws:") :].rpartition(":key")
    if slot not in ("1", "2"):
        raise RevokeError(BAD_ID)
    return arn, int(slot)


def _key_in_slot(
    keys: list[dict[str, Any]], slot: int, issued_at: datetime | None
) -> str | None:
    """The id of the key the report showed in `slot`.

    The report has no key ids. Slot N is the user's N-th key by creation, and its
    last_rotated (our issued_at) is that key's creation time, so the key must match both;
    anything else means the keys changed since the sync, and the wrong key must never be
    deactivated.
    """

    def second(value: datetime) -> datetime:
        return value.replace(microsecond=0)

    ordered = sorted(keys, key=lambda k: k["CreateDate"])
    if issued_at is None:
        return None
    in_slot = ordered[slot - 1] if len(ordered) >= slot else None
    if in_slot is not None and second(in_slot["CreateDate"]) == second(issued_at):
        return in_slot["AccessKeyId"]
    matching = [k for k in ordered if second(k["CreateDate"]) == second(issued_at)]
    if len(matching) == 1:
        return matching[0]["AccessKeyId"]
    return None
