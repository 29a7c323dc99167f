"""POST /api/v1/deployment-events: a CI/CD pipeline reports what it deployed, and where.

Needs a token with the `deploy` scope. The work is done by
sources.receivers.cicd.CicdReceiver (decode -> apply), in one transaction.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory.api.parsers import StrictJSONParser
from inventory.api.permissions import HasDeployScope
from sources.api.serializers import (
    DeploymentEventInSerializer,
    DeploymentEventSerializer,
)
from sources.api.views import BAD_INPUT
from sources.receivers.cicd import CicdReceiver


class DeploymentEventView(APIView):
    permission_classes = [HasDeployScope]
    parser_classes = [StrictJSONParser]

    @extend_schema(
        operation_id="deployment_events_create",
        request=DeploymentEventInSerializer,
        responses={
            201: OpenApiResponse(
                response=DeploymentEventSerializer,
                description="Recorded; the deployment was created or updated.",
            ),
            200: OpenApiResponse(
                response=DeploymentEventSerializer,
                description="Already recorded (same pipeline run, model, version and "
                "environment): the first event, unchanged.",
            ),
            400: BAD_INPUT,
        },
        examples=[
            OpenApiExample(
                "A production deploy",
                value={
                    "model": "fraud-scorer",
                    "version": "3",
                    "environment": "production",
                    "endpoint": "https://fraud.internal/v1/score",
                    "deployment": "fraud-scorer-prod",
                    "commit": "9f3c2ab",
                    "pipeline": "deploy-fraud-scorer",
                    "pipeline_run": "https://ci.example.com/runs/1234",
                    "deployed_at": "2026-11-26T10:00:00Z",
                },
                request_only=True,
            )
        ],
        description="Record that a pipeline deployed a model version to an environment. "
        "Unknown models and versions are created (versions pending approval); the "
        "deployment is keyed by environment and endpoint.",
    )
    def post(self, request: Request) -> Response:
        row, created = CicdReceiver(token=request.auth).receive(
            request.data, request.headers
        )
        return Response(
            DeploymentEventSerializer(row, context={"request": request}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
