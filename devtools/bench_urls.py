"""URLs for `manage.py bench` only: the project's URLs plus a floor view.

The floor answers "ok" through the same middleware stack (sessions, auth, CSP, axes…), so a
page's time minus the floor's is what the page itself costs. The bench activates this module
with override_settings(ROOT_URLCONF=...); it is never the project's URLconf.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns

FLOOR_PATH = "/__bench_floor__"


def floor(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


urlpatterns = [
    *project_urlpatterns,
    path(FLOOR_PATH.lstrip("/"), floor, name="bench_floor"),
]
