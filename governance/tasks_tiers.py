"""The nightly tier run: every deployment and model, so expired overrides stop applying
(governance.tiers). Idempotent: a second run writes nothing."""

from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True, soft_time_limit=600, time_limit=660)
def recompute_tiers() -> int:
    """Recompute every deployment's and model's tier; return how many deployments changed."""
    from governance import tiers

    return tiers.recompute_everything()
