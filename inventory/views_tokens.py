"""API tokens: administrators list, issue and revoke them. The raw token is shown once."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from inventory import permissions, selectors, services
from inventory.forms_tokens import TokenIssueForm

FORM_INVALID = "Please correct the errors below."
TOKEN_REVOKED = "Token “{name}” revoked; it no longer authenticates."
TOKEN_LIST_LIMIT = 500


@require_GET
def token_list(request: HttpRequest) -> HttpResponse:
    permissions.require_admin(request.user)
    tokens = list(selectors.apitoken_list()[: TOKEN_LIST_LIMIT + 1])
    return render(
        request,
        "inventory/token_list.html",
        {
            "tokens": tokens[:TOKEN_LIST_LIMIT],
            "truncated": len(tokens) > TOKEN_LIST_LIMIT,
            "limit": TOKEN_LIST_LIMIT,
        },
    )


@never_cache  # the success page carries the raw token
@require_http_methods(["GET", "POST"])
def token_issue(request: HttpRequest) -> HttpResponse:
    permissions.require_admin(request.user)
    form = TokenIssueForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            try:
                token, raw = services.api_token_issue(
                    actor=request.user,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    days=form.cleaned_data["days"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                # Rendered, not redirected: the raw value must never sit in a URL or a
                # session, and this response is the only time it is shown.
                return render(
                    request,
                    "inventory/token_issued.html",
                    {"token": token, "raw_token": raw},
                )
        messages.error(request, FORM_INVALID)
        return render(request, "inventory/token_form.html", {"form": form}, status=422)
    return render(request, "inventory/token_form.html", {"form": form})


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    permissions.require_admin(request.user)
    token = selectors.apitoken_get(token_id=pk)
    try:
        services.api_token_revoke(actor=request.user, token=token)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, TOKEN_REVOKED.format(name=token.name))
    return redirect("tokens:token_list")
