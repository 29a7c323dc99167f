"""`manage.py detect_findings`: counts per kind, --kind, --dry-run, --changes, bad input."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from governance.models import Finding
from inventory import history
from tests.factories import DeploymentFactory

pytestmark = pytest.mark.django_db
K = Finding.Kind


def detect(*args: str) -> str:
    out = StringIO()
    call_command("detect_findings", *args, stdout=out)
    return out.getvalue()


def row(output: str, kind: str) -> list[int]:
    for line in output.splitlines():
        if line.split()[0] == kind:
            return [int(n) for n in line.split()[1:5]]
    raise AssertionError(f"no row for {kind} in:\n{output}")


def test_counts_per_kind_and_twice_changes_nothing():
    d = DeploymentFactory(business_purpose="", owner=None)
    out = detect()
    assert out.splitlines()[0].split() == [
        "kind",
        "opened",
        "updated",
        "resolved",
        "reopened",
    ]
    assert row(out, K.MISSING_PURPOSE) == [1, 0, 0, 0]
    assert row(out, K.MISSING_OWNER) == [1, 0, 0, 0]
    assert row(out, K.VERSION_DRIFT) == [0, 0, 0, 0]

    again = detect()
    assert row(again, K.MISSING_PURPOSE) == [0, 1, 0, 0]
    assert Finding.objects.filter(kind=K.MISSING_PURPOSE, subject_id=d.pk).count() == 1

    d.business_purpose = "Scores claims"
    d.save(update_fields=["business_purpose"])
    assert row(detect(), K.MISSING_PURPOSE) == [0, 0, 1, 0]
    d.business_purpose = ""
    d.save(update_fields=["business_purpose"])
    assert row(detect(), K.MISSING_PURPOSE) == [0, 0, 0, 1]


def test_kind_limits_the_run_and_dry_run_writes_nothing():
    DeploymentFactory(business_purpose="", owner=None)
    out = detect("--kind", K.MISSING_PURPOSE, "--dry-run")
    assert row(out, K.MISSING_PURPOSE) == [1, 0, 0, 0]
    assert K.MISSING_OWNER not in out
    assert "dry run: nothing written" in out
    assert not Finding.objects.exists()

    out = detect("--kind", K.MISSING_PURPOSE, "--kind", K.MISSING_OWNER)
    assert [line.split()[0] for line in out.splitlines()] == [
        "kind",
        K.MISSING_PURPOSE,
        K.MISSING_OWNER,
        "total",
    ]
    repeated = detect("--kind", K.MISSING_PURPOSE, "--kind", K.MISSING_PURPOSE)
    assert len(repeated.splitlines()) == 3
    assert set(Finding.objects.values_list("kind", flat=True)) == {
        K.MISSING_PURPOSE,
        K.MISSING_OWNER,
    }


def test_an_unknown_kind_is_a_clear_error():
    DeploymentFactory(business_purpose="")
    with pytest.raises(CommandError) as exc:
        detect("--kind", "missing_purpose", "--kind", "nonsense")
    assert "Unknown finding kind(s): nonsense" in str(exc.value)
    assert "missing_purpose" in str(exc.value)  # the choices are listed
    assert not Finding.objects.exists()


def test_changes_consumes_the_pending_notices():
    d = DeploymentFactory(business_purpose="")
    history.announce(objects=[(history.DEPLOYMENT, d.pk)])
    out = detect("--changes")
    assert row(out, K.MISSING_PURPOSE) == [1, 0, 0, 0]
    assert row(detect("--changes"), K.MISSING_PURPOSE) == [0, 0, 0, 0]
    with pytest.raises(CommandError, match="--changes"):
        detect("--changes", "--dry-run")
