"""GET /api/v1/deployments/{id}/proof and /api/v1/models/{id}/proof: the proof card as JSON.

The same dict as the page's JSON download (governance.proof), with the `read` scope, for
what the token's principal may read (inventory.permissions; 404 otherwise).
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import proof
from inventory import permissions
from inventory.api.permissions import HasReadScope

DEPLOYMENT_CARD = (
    "The deployment's proof card: `running` (observed version and digest against the "
    "approved baseline, endpoint, environment, platform and locator, first and last seen, "
    "the reporting source, each field's last change from the history, open findings), "
    "`invoke` (bound identities with kind, provider, vendor, owner, age, rotation and last "
    "use; callers of the last 30 days from usage; third-party identities; callers not "
    "bound to any known identity) and `withdraw` (the plan per identity: revoked by a "
    "connector or by a person; the quarantine method; owner and change window; "
    "downstream deployments and systems; the last measured time to withdraw; the "
    "verdict `ready`, `needs_people` or `not_ready` with its reasons), and `complete`. "
    "Times are ISO 8601 in UTC."
)
MODEL_CARD = (
    "The model's proof card: its versions and approval, each deployment's three answers "
    "in brief with its verdict, the verdict counts, open findings, its risk tier and "
    "`complete` (every deployment's proof complete)."
)


class DeploymentProofView(APIView):
    permission_classes = [HasReadScope]

    @extend_schema(
        operation_id="deployments_proof",
        summary="A deployment's proof card",
        description=DEPLOYMENT_CARD,
        tags=["deployments"],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description=DEPLOYMENT_CARD)
        },
    )
    def get(self, request: Request, pk: int) -> Response:
        deployment = permissions.get_for_user(
            proof.deployment_queryset(), request.user, pk
        )
        return Response(
            proof.deployment_proof(deployment, now=timezone.now(), user=request.user)
        )


class ModelProofView(APIView):
    permission_classes = [HasReadScope]

    @extend_schema(
        operation_id="models_proof",
        summary="A model's proof card",
        description=MODEL_CARD,
        tags=["models"],
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description=MODEL_CARD)},
    )
    def get(self, request: Request, pk: int) -> Response:
        model = permissions.get_for_user(proof.model_queryset(), request.user, pk)
        return Response(proof.model_proof(model, now=timezone.now(), user=request.user))
