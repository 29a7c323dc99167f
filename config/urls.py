from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic.base import RedirectView

from governance import dashboard
from inventory import health

admin.site.site_header = "Runproof administration"
admin.site.site_title = "Runproof admin"


@login_not_required
def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """/favicon.ico, which browsers ask for on pages that link none (the admin, JSON): the
    static SVG that base.html links, served by WhiteNoise. Resolved per request, so the
    manifest's hashed name is read only once collectstatic has run."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))


urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("favicon.ico", favicon, name="favicon"),
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
    path("sources/", include("sources.urls")),
    path("hooks/", include("sources.urls_hooks")),
    path("v1/", include("sources.urls_otlp")),
    path("api/v1/", include("config.api_urls")),
    # Sources moved out of the inventory app: old admin addresses redirect, their tail kept.
    re_path(
        r"^admin/inventory/(?P<rest>(?:datasource|syncrun|syncerror|deploymentevent|importedfile)/.*)$",
        RedirectView.as_view(
            url="/admin/sources/%(rest)s", permanent=True, query_string=True
        ),
    ),
    path("admin/", admin.site.urls),
]
