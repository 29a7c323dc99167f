from __future__ import annotations

from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Register the detection tasks in every process, so that the change consumer's
        # wake-up (inventory.history, which asks for it by name) finds the task here:
        # eager where CELERY_TASK_ALWAYS_EAGER is on, sent to the broker otherwise.
        from governance import tasks  # noqa: F401
