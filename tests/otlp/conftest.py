from __future__ import annotations

import pytest

from inventory import services
from sources.receivers import otlp


@pytest.fixture(autouse=True)
def _fresh_receiver_cache():
    """The receiver caches ids per process; a test must not see another's rows."""
    otlp.reset_process_state()
    yield
    otlp.reset_process_state()


@pytest.fixture
def issue_token(db):
    def issue(*scopes: str, name: str = "collector") -> str:
        _, raw = services.api_token_issue(
            actor=None, name=name, scopes=scopes or ("telemetry",), days=30
        )
        return raw

    return issue


@pytest.fixture
def telemetry_token(issue_token):
    return issue_token("telemetry")
