from __future__ import annotations

from django.apps import AppConfig


class SourcesConfig(AppConfig):
    name = "sources"
    verbose_name = "Sources"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from inventory import source_names
        from sources import selectors

        # Inventory lists name the source a row came from without importing this app.
        source_names.register(selectors.datasource_names)
