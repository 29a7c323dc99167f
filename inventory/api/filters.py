"""Filtering for the API: the same FilterSets as the UI lists, narrowed to the caller."""

from __future__ import annotations

from typing import Any

from django_filters.rest_framework import DjangoFilterBackend


class UserFilterBackend(DjangoFilterBackend):
    """DjangoFilterBackend that hands request.user to our FilterSets.

    inventory.filters.BaseFilter narrows the team and owner choices to what the caller may
    read, so it needs the user; an invalid value becomes a 400 (raise_exception is on).
    """

    def get_filterset_kwargs(self, request, queryset, view) -> dict[str, Any]:
        kwargs = super().get_filterset_kwargs(request, queryset, view)
        kwargs["user"] = request.user
        return kwargs
