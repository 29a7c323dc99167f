"""/api/v1/sources/ and /api/v1/sync-runs/: manage sources and ask for syncs.

Every endpoint needs a token with the `sources` scope. Thin: sources.sync.services checks,
writes and audits, exactly as for the UI and the `sources` command.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from inventory.api.pagination import IdCursorPagination, NewestFirstPagination
from inventory.api.parsers import StrictJSONParser
from inventory.api.permissions import HasSourcesScope
from sources import models as sm
from sources.api import serializers as s
from sources.sync import services

_DETAIL = {
    "type": "object",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
_FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": True,
    "description": 'Each invalid field with its reasons; settings and secrets nest under "config" and "secrets".',
}
BAD_INPUT = OpenApiResponse(response=_FIELD_ERRORS, description="Invalid input.")
NOT_FOUND = OpenApiResponse(response=_DETAIL, description="No such source.")


def api_errors(exc: DjangoValidationError) -> exceptions.ValidationError:
    """A service's ValidationError as the API answers it: settings and secrets nested.

    The services key setting errors "config.<name>" and secret errors "secrets.<name>".
    """
    if not hasattr(exc, "error_dict"):
        return exceptions.ValidationError({"non_field_errors": exc.messages})
    out: dict[str, Any] = {}
    for key, messages in exc.message_dict.items():
        if key == NON_FIELD_ERRORS:
            out.setdefault("non_field_errors", []).extend(messages)
        elif "." in key:
            group, name = key.split(".", 1)
            out.setdefault(group, {}).setdefault(name, []).extend(messages)
        else:
            out.setdefault(key, []).extend(messages)
    return exceptions.ValidationError(out)


class SourceViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Data sources: the registries, runtimes and credential stores Runproof reads."""

    permission_classes = [HasSourcesScope]
    serializer_class = s.SourceSerializer
    pagination_class = IdCursorPagination
    filter_backends: list = []
    lookup_value_regex = r"\d+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet:
        return sm.DataSource.objects.select_related("team")

    def get_object(self) -> sm.DataSource:
        try:
            return self.get_queryset().get(pk=int(self.kwargs["pk"]))
        except (sm.DataSource.DoesNotExist, ValueError, OverflowError) as exc:
            raise Http404 from exc

    def _saved(self, source: sm.DataSource, code: int) -> Response:
        source = self.get_queryset().get(pk=source.pk)
        return Response(
            s.SourceSerializer(source, context=self.get_serializer_context()).data,
            status=code,
        )

    @extend_schema(
        request=s.SourceWriteSerializer,
        responses={201: s.SourceSerializer, 400: BAD_INPUT},
    )
    def create(self, request: Request) -> Response:
        data = s.SourceWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        try:
            source = services.source_create(
                actor=request.user,
                name=v["name"],
                kind=v["kind"],
                config=v.get("config") or {},
                secrets_given=v.get("secrets") or {},
                schedule_minutes=v.get("schedule_minutes"),
                team=v.get("team"),
                enabled=v.get("enabled", True),
            )
        except DjangoValidationError as exc:
            raise api_errors(exc) from None
        return self._saved(source, status.HTTP_201_CREATED)

    @extend_schema(
        request=s.SourceWriteSerializer,
        responses={200: s.SourceSerializer, 400: BAD_INPUT, 404: NOT_FOUND},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        source = self.get_object()
        data = s.SourceWriteSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        changes = {
            key: v[key]
            for key in ("name", "kind", "enabled", "schedule_minutes", "team")
            if key in v
        }
        try:
            source = services.source_update(
                actor=request.user,
                source=source,
                config=v.get("config"),
                secrets_given=v.get("secrets"),
                clear_secrets=v.get("clear_secrets", ()),
                **changes,
            )
        except DjangoValidationError as exc:
            raise api_errors(exc) from None
        return self._saved(source, status.HTTP_200_OK)

    @extend_schema(responses={204: None, 400: BAD_INPUT, 404: NOT_FOUND})
    def destroy(self, request: Request, pk: str) -> Response:
        source = self.get_object()
        try:
            services.source_delete(actor=request.user, source=source)
        except DjangoValidationError as exc:
            raise api_errors(exc) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request={
            "application/json": s.SyncRequestSerializer,
            "multipart/form-data": s.SyncRequestSerializer,
        },
        responses={
            202: OpenApiResponse(
                response=s.SyncRunSerializer, description="A run was queued."
            ),
            200: OpenApiResponse(
                response=s.SyncRunSerializer,
                description="A run of this source was already queued or running: that run.",
            ),
            400: BAD_INPUT,
            404: NOT_FOUND,
        },
        description="Ask for a sync (or a dry run). Sources that sync from a file take "
        "it as multipart/form-data in `file`.",
    )
    @action(
        detail=True,
        methods=["post"],
        parser_classes=[StrictJSONParser, MultiPartParser],
    )
    def sync(self, request: Request, pk: str) -> Response:
        source = self.get_object()
        data = s.SyncRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            run, created = services.sync_request(
                actor=request.user,
                source=source,
                dry_run=data.validated_data["dry_run"],
                upload=data.validated_data.get("file"),
            )
        except DjangoValidationError as exc:
            raise api_errors(exc) from None
        run = sm.SyncRun.objects.select_related("requested_by").get(pk=run.pk)
        return Response(
            s.SyncRunSerializer(run, context=self.get_serializer_context()).data,
            status=status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK,
        )

    @extend_schema(responses={200: s.SyncRunSerializer(many=True), 404: NOT_FOUND})
    @action(
        detail=True,
        methods=["get"],
        pagination_class=NewestFirstPagination,
        serializer_class=s.SyncRunSerializer,
    )
    def runs(self, request: Request, pk: str) -> Response:
        source = self.get_object()
        runs = sm.SyncRun.objects.filter(source=source).select_related("requested_by")
        page = self.paginate_queryset(runs)
        return self.get_paginated_response(
            s.SyncRunSerializer(
                page, many=True, context=self.get_serializer_context()
            ).data
        )


class SyncRunViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """One sync run, with the records it skipped and a sample of what it changed."""

    permission_classes = [HasSourcesScope]
    serializer_class = s.SyncRunDetailSerializer
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> QuerySet:
        return sm.SyncRun.objects.select_related("requested_by")

    def get_object(self) -> sm.SyncRun:
        try:
            return self.get_queryset().get(pk=int(self.kwargs["pk"]))
        except (sm.SyncRun.DoesNotExist, ValueError, OverflowError) as exc:
            raise Http404 from exc
