from __future__ import annotations

from django.urls import path

from governance import dashboard

app_name = "governance"
urlpatterns = [path("audit/", dashboard.dashboard, name="audit_list")]
