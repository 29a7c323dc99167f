from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from governance import dashboard
from inventory import health

admin.site.site_header = "Runproof administration"
admin.site.site_title = "Runproof admin"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("healthz", health.healthz, name="healthz"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("inventory/", include("inventory.urls")),
    path("tokens/", include("inventory.urls_tokens")),
    path("governance/", include("governance.urls")),
    path("sources/", include("inventory.urls_sources")),
    path("hooks/", include("inventory.urls_hooks")),
    path("v1/", include("inventory.urls_otlp")),
    path("api/v1/", include("inventory.api.urls")),
    path("admin/", admin.site.urls),
]
