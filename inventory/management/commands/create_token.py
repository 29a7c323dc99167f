"""Issue an API token from the shell: `manage.py create_token --name CI --scopes read,deploy`.

Only the raw token goes to stdout, so a script can capture it (TOKEN=$(... create_token ...));
everything else goes to stderr.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inventory import models as m
from inventory import services
from inventory.forms_tokens import TOKEN_DAYS_DEFAULT

ACTOR_LABEL = "manage.py create_token"


class Command(BaseCommand):
    help = "Issue a Runproof API token and print it (the only output on stdout)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True, help="What uses the token.")
        parser.add_argument(
            "--scopes",
            required=True,
            help=f"Comma-separated, from: {', '.join(m.APIToken.Scope.values)}.",
        )
        parser.add_argument(
            "--days",
            type=int,
            default=TOKEN_DAYS_DEFAULT,
            help=f"Days until it expires, 1–730 (default {TOKEN_DAYS_DEFAULT}).",
        )

    def handle(self, *args: Any, name: str, scopes: str, days: int, **options: Any):
        try:
            token, raw = services.api_token_issue(
                actor=None,
                actor_label=ACTOR_LABEL,
                name=name.strip(),
                scopes=[s.strip() for s in scopes.split(",") if s.strip()],
                days=days,
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stderr.write(
            f"Issued token “{token.name}” (prefix {token.prefix}, scopes "
            f"{', '.join(token.scopes)}, expires {token.expires_at:%Y-%m-%d %H:%M %Z}). "
            "It is shown once: store it now.",
            style_func=str,  # information, not an error: no red
        )
        self.stdout.write(raw)
