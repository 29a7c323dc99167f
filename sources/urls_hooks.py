from __future__ import annotations

from django.urls import path

from sources import views_hooks

app_name = "hooks"

urlpatterns = [
    path("mlflow/<int:source_id>/", views_hooks.mlflow_webhook, name="mlflow"),
]
