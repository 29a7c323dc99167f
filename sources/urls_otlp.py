from __future__ import annotations

from django.urls import path

from sources import views_otlp

app_name = "otlp"

urlpatterns = [
    path("traces", views_otlp.traces, name="traces"),
]
