"""/sources/: data sources, their runs, and revoking synced access at its source."""

from __future__ import annotations

from django.urls import path

from sources import views as views

app_name = "sources"

urlpatterns = [
    path("", views.source_list, name="source_list"),
    path("new/", views.source_new, name="source_new"),
    path("new/<str:kind>/", views.source_create, name="source_create"),
    path("<int:pk>/", views.source_detail, name="source_detail"),
    path("<int:pk>/edit/", views.source_edit, name="source_edit"),
    path("<int:pk>/delete/", views.source_delete, name="source_delete"),
    path("<int:pk>/sync/", views.source_sync, name="source_sync"),
    path("runs/", views.run_list, name="run_list"),
    path("events/", views.event_list, name="event_list"),
    path("runs/<int:pk>/", views.run_detail, name="run_detail"),
    path("runs/<int:pk>/progress/", views.run_progress, name="run_progress"),
    path("revoke/<str:kind>/<int:pk>/", views.revoke, name="revoke"),
]
