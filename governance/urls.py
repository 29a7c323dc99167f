from __future__ import annotations

from django.urls import path

from governance import views

app_name = "governance"
urlpatterns = [
    path("audit/", views.audit_list, name="audit_list"),
    path("audit/<int:seq>/", views.audit_detail, name="audit_detail"),
    path(
        "versions/<int:pk>/approval/",
        views.version_approval,
        name="version_approval",
    ),
]
