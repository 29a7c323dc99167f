"""The hostile-input suite (issue 8, item 16): its Hypothesis profiles and its tally.

`ci` (the default): derandomized with a fixed seed, few examples, so `make test` is short
and repeatable on SQLite and PostgreSQL. `fuzz` (`make fuzz`): many more examples, on
PostgreSQL. Choose with HYPOTHESIS_PROFILE. The tally (requests sent, 5xx answers, partial
writes) is printed at the end of the run, for the closing note.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_common = {
    "deadline": None,
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,  # the db fixture: one transaction per test
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
    "database": None,  # nothing written outside the repository
}
settings.register_profile("ci", max_examples=10, derandomize=True, **_common)
settings.register_profile("fuzz", max_examples=600, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from tests.hostile.tally import TALLY  # noqa: E402


def pytest_terminal_summary(terminalreporter) -> None:
    if TALLY["requests"]:
        terminalreporter.write_line(
            "hostile input: {requests} requests, {5xx} answered 5xx, "
            "{partial writes} partial writes".format(**TALLY)
        )
