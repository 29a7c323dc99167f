"""The detectors, one per finding kind (`governance.detection.Detector`).

Each module lists its detectors in `DETECTORS`; this one joins them in the order the
engine runs them.
"""

from __future__ import annotations

from governance.detectors import behaviour, deployments, identities

DETECTORS = [*deployments.DETECTORS, *identities.DETECTORS, *behaviour.DETECTORS]
