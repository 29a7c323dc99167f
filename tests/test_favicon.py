"""A favicon: the static SVG, linked by the base template and served by WhiteNoise (no CDN);
/favicon.ico, which browsers ask for on pages that link none, points at it."""

from __future__ import annotations

import re

import pytest
from django.templatetags.static import static


@pytest.mark.django_db
def test_pages_link_the_static_favicon_and_it_is_served(client, owner):
    client.force_login(owner)
    page = client.get("/").content.decode()
    link = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page)
    assert link is not None and link.group(1) == static("favicon.svg")
    assert link.group(1).startswith("/")  # our own server, not a CDN
    served = client.get(link.group(1))
    assert served.status_code == 200
    body = b"".join(served.streaming_content) if served.streaming else served.content
    assert b"<svg" in body


@pytest.mark.django_db
def test_favicon_ico_redirects_to_it_without_signing_in(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert response["Location"] == static("favicon.svg")
