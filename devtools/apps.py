from __future__ import annotations

from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    """Demo data, the benchmark and test fakes: installed in embedded mode, not in production."""

    name = "devtools"
    verbose_name = "Development tools"
    default_auto_field = "django.db.models.BigAutoField"
