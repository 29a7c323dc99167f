"""The audit trail, below every other app: `audit.record(actor=…, action=…, target=…)`.

The functions import lazily so that `import audit` works before the app registry is ready.
"""

from __future__ import annotations

from typing import Any


def record(**kwargs: Any) -> Any:
    from audit import services

    return services.record(**kwargs)


def record_many(**kwargs: Any) -> Any:
    from audit import services

    return services.record_many(**kwargs)
