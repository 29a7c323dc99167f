"""`deployments._calls_since`: the calls of each deployment from the hour that holds its
own time on, and the latest such hour (summed in SQL on PostgreSQL, in Python elsewhere:
both give the same answer)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from governance.detectors import deployments
from tests.factories import DeploymentFactory
from tests.governance.proof_data import usage

pytestmark = pytest.mark.django_db

H = timedelta(hours=1)
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_each_deployment_counts_from_the_hour_holding_its_own_time():
    early, late, quiet = DeploymentFactory(), DeploymentFactory(), DeploymentFactory()
    for n in range(6):
        usage(early, hour=T0 + n * H, calls=10, service="a")
        usage(early, hour=T0 + n * H, calls=1, service="b")  # two callers, one hour
        usage(late, hour=T0 + n * H, calls=100)
    usage(quiet, hour=T0, calls=5)

    got = deployments._calls_since(
        {
            # 10:40 counts the 10:00 hour on: all six hours.
            early.pk: T0 + timedelta(minutes=40),
            # 14:05 counts 14:00 and 15:00 only.
            late.pk: T0 + 4 * H + timedelta(minutes=5),
            # After its only hour: nothing, so it is absent.
            quiet.pk: T0 + 2 * H,
        }
    )

    assert got == {early.pk: (66, T0 + 5 * H), late.pk: (200, T0 + 5 * H)}
    assert deployments._calls_since({}) == {}
