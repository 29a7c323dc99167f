from __future__ import annotations

app_name = "otlp"

urlpatterns: list = []
