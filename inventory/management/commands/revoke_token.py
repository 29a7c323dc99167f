"""Revoke an API token by its prefix (the public part shown in the tokens list)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inventory import models as m
from inventory import services

ACTOR_LABEL = "manage.py revoke_token"
TOKEN_NOT_FOUND = "No token has the prefix {prefix!r}."


class Command(BaseCommand):
    help = "Revoke a Runproof API token; it stops authenticating at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("prefix", help="The token's prefix, e.g. 3f9a0c1b2d4e.")

    def handle(self, *args: Any, prefix: str, **options: Any) -> None:
        prefix = prefix.strip()
        token = m.APIToken.objects.filter(prefix=prefix).first()
        if token is None:
            raise CommandError(TOKEN_NOT_FOUND.format(prefix=prefix))
        try:
            services.api_token_revoke(actor=None, token=token, actor_label=ACTOR_LABEL)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(f"Revoked token “{token.name}” ({token.prefix}).")
