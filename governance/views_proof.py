"""The proof card pages: one template for the page and the PDF, and a JSON download.

`?format=json` downloads `governance.proof`'s dict as it is; `?format=pdf` renders the page's
own template (with a print layout as its base) through WeasyPrint, whose URL fetcher
serves static files from disk and refuses everything else: rendering never touches the
network. Who may read the deployment or model may read its card; anyone else gets 404.
"""

from __future__ import annotations

import logging
import mimetypes
from html import escape
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from governance import proof
from inventory import permissions

log = logging.getLogger(__name__)

PDF_BASE_URL = "https://runproof.invalid/"
FORMATS = ("html", "json", "pdf")
BAD_FORMAT = "Unknown format: choose html, json or pdf."
PDF_UNAVAILABLE = (
    "PDF rendering is not available on this server: WeasyPrint needs Debian's "
    "libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libfontconfig1 fonts-dejavu-core. "
    "The JSON download (?format=json) has the same card."
)
PAGE_BASE = "base.html"
PRINT_BASE = "governance/_proof_print.html"


class StaticOnlyFetcher:
    """A WeasyPrint URL fetcher that serves `STATIC_URL` files from disk and refuses the
    rest (other hosts, file:, data: and every other scheme): no network, no local files
    outside the static folders. `refused` keeps what it turned down."""

    def __init__(self) -> None:
        self.refused: list[str] = []
        self._fail_on_errors = False  # what weasyprint.urls.fetch reads on a fetcher

    def __call__(self, url: str) -> Any:
        from weasyprint.urls import URLFetcherResponse

        prefix = PDF_BASE_URL + settings.STATIC_URL.lstrip("/")
        path = url.split("?", 1)[0].split("#", 1)[0]
        if not path.startswith(prefix):
            self.refused.append(url)
            raise ValueError(f"Refused (not a static file): {url}")
        relative = path[len(prefix) :]
        found = finders.find(relative) if ".." not in relative else None
        if not found:
            root = Path(settings.STATIC_ROOT)
            candidate = (root / relative).resolve()
            if (
                ".." not in relative
                and candidate.is_file()
                and root in candidate.parents
            ):
                found = str(candidate)
        if not found:
            self.refused.append(url)
            raise ValueError(f"No such static file: {url}")
        mime = mimetypes.guess_type(found)[0] or "application/octet-stream"
        return URLFetcherResponse(
            url, Path(found).read_bytes(), headers={"Content-Type": mime}
        )


def render_pdf(html: str) -> tuple[bytes, StaticOnlyFetcher]:
    """Raise OSError or ImportError when WeasyPrint or its system libraries are missing."""
    from weasyprint import HTML

    fetcher = StaticOnlyFetcher()
    pdf = HTML(string=html, base_url=PDF_BASE_URL, url_fetcher=fetcher).write_pdf()
    return pdf, fetcher


def _e(value: Any) -> str:
    """The template's {{ value }}: None as "None", the rest as text, escaped."""
    return escape(str(value))


def _or(value: Any, default: str) -> str:
    """{{ value|default:"…" }}: the default for any falsy value."""
    return _e(value) if value else default


def identity_rows_html(identities: list[dict[str, Any]]) -> str:
    rows = []
    for x in identities:
        name = _e(x["name"])
        cell = (
            f'<a href="{_e(x["url"])}">{name}</a>'
            if x.get("url")
            else f'<span class="text-body-secondary">{name}</span>'
        )
        if x.get("third_party"):
            cell += ' <span class="badge text-bg-warning">third party</span>'
        provider = _or(x.get("provider"), "—")
        if x.get("vendor"):
            provider += f" / {_e(x['vendor'])}"
        owner = x.get("owner")
        if owner and owner.get("hidden"):
            who = "another team"
        elif owner:
            who = _e(owner.get("username", ""))
        else:
            who = '<span class="badge text-bg-danger">no owner</span>'
        age = (
            f"{_e(x['age_days'])} d (issued {_e(x.get('issued_at'))})"
            if x.get("age_days") is not None
            else "unknown"
        )
        rows.append(
            f"<tr><td>{cell}</td><td>{_e(x.get('kind_label', ''))}</td>"
            f"<td>{provider}</td><td>{who}</td><td>{age}</td>"
            f"<td>{_or(x.get('rotated_at'), 'never')}</td>"
            f"<td>{_or(x.get('last_used_at'), 'never')}</td>"
            f"<td>{_e(x.get('status_label', ''))}</td>"
            f"<td>{_e((x.get('source') or {}).get('name', ''))}</td></tr>"
        )
    return "\n      ".join(rows)


def caller_rows_html(callers: list[dict[str, Any]]) -> str:
    rows = []
    for c in callers:
        identity = c.get("identity")
        if identity and identity.get("url"):
            who = f'<a href="{_e(identity["url"])}">{_e(identity.get("name", ""))}</a>'
        elif identity:
            who = _e(identity.get("name", ""))
        else:
            who = ""
        if not c.get("bound"):
            who += (
                ' <span class="badge text-bg-danger" data-testid="unbound-caller">'
                "not bound to a known identity</span>"
            )
        rows.append(
            f"<tr><td>{_or(c.get('service'), '—')}</td><td>{_or(c.get('user'), '—')}</td>"
            f'<td>{who}</td><td class="text-end">{_e(c.get("calls", ""))}</td>'
            f'<td class="text-end">{_e(c.get("errors", ""))}</td>'
            f"<td>{_e(c.get('last_hour', ''))}</td></tr>"
        )
    return "\n      ".join(rows)


REVOKERS = {"connector": "a connector", "person": "a person"}


def plan_rows_html(plan: list[dict[str, Any]]) -> str:
    rows = []
    for p in plan:
        identity = p.get("identity") or {}
        name = _e(identity.get("name", ""))
        cell = (
            f'<a href="{_e(identity["url"])}">{name}</a>'
            if identity.get("url")
            else name
        )
        revoker = p.get("revoker", "")
        rows.append(
            f'<tr><td>{cell}</td><td data-revoker="{_e(revoker)}">'
            f"{REVOKERS.get(revoker, '—')}</td><td>{_e(p.get('how', ''))}</td></tr>"
        )
    return "\n      ".join(rows)


def card_rows(card: dict[str, Any]) -> dict[str, SafeString]:
    """The deployment card's three long tables' rows, as its template shows them (the
    template language drew them at a third of the card's CPU)."""
    return {
        "identities": mark_safe(identity_rows_html(card["invoke"]["identities"])),  # noqa: S308 - escaped above
        "callers": mark_safe(caller_rows_html(card["invoke"]["callers"])),  # noqa: S308
        "plan": mark_safe(plan_rows_html(card["withdraw"]["plan"])),  # noqa: S308
    }


def _respond(
    request: HttpRequest, card: dict[str, Any], template: str, filename: str
) -> HttpResponse:
    fmt = request.GET.get("format", "html") or "html"
    if fmt not in FORMATS:
        return HttpResponse(BAD_FORMAT, status=400, content_type="text/plain")
    if fmt == "json":
        response = JsonResponse(card, json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="{filename}.json"'
        return response
    context = {"card": card, "base_template": PAGE_BASE, "printing": False}
    if card.get("kind") == "deployment":
        context["rows"] = card_rows(card)
    if fmt == "pdf":
        context.update(base_template=PRINT_BASE, printing=True)
        html = render_to_string(template, context, request=request)
        try:
            pdf, _ = render_pdf(html)
        except (ImportError, OSError):
            log.exception("proof card PDF: WeasyPrint or its libraries are missing")
            return HttpResponse(PDF_UNAVAILABLE, status=503, content_type="text/plain")
        response = HttpResponse(pdf, content_type="application/pdf")
        response["Content-Disposition"] = f'attachment; filename="{filename}.pdf"'
        return response
    return render(request, template, context)


def _filename(kind: str, card: dict[str, Any]) -> str:
    name = slugify(card["subject"]["name"])[:60] or str(card["subject"]["id"])
    stamp = card["generated_at"][:16].replace(":", "").replace("-", "")
    return f"proof-{kind}-{card['subject']['id']}-{name}-{stamp}"


@require_GET
@login_required
def deployment_proof(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = permissions.get_for_user(proof.deployment_queryset(), request.user, pk)
    card = proof.deployment_proof(deployment, now=timezone.now(), user=request.user)
    return _respond(
        request,
        card,
        "governance/deployment_proof.html",
        _filename("deployment", card),
    )


@require_GET
@login_required
def aimodel_proof(request: HttpRequest, pk: int) -> HttpResponse:
    model = permissions.get_for_user(proof.model_queryset(), request.user, pk)
    card = proof.model_proof(model, now=timezone.now(), user=request.user)
    return _respond(
        request, card, "governance/aimodel_proof.html", _filename("model", card)
    )
