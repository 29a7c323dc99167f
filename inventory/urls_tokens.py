from __future__ import annotations

from django.urls import path

from governance import dashboard

app_name = "tokens"
urlpatterns = [path("", dashboard.dashboard, name="token_list")]
