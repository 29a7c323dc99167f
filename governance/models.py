"""What ought to be, and the proof. The audit trail itself lives in the `audit` app."""

from __future__ import annotations
