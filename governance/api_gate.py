"""POST /api/v1/gate: the CI/CD release gate. A pipeline asks before it deploys.

Needs a token with the `gate` scope. Thin: the serializer checks the body's shape,
governance.gate decides and records (see its docstring for every reason code).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import gate
from inventory import models as m
from inventory.api.parsers import BODY_TOO_LARGE, StrictJSONParser
from inventory.api.permissions import HasGateScope

REF_INVALID = "A name (text) or an id (a positive integer)."
REF_TOO_LONG = "At most {max} characters."
REF_EMPTY = "This field may not be blank."


@extend_schema_field(
    {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "maxLength": 200}]}
)
class NameOrIdField(serializers.Field):
    """A model or deployment by id (a JSON integer) or by name (a JSON string)."""

    default_error_messages = {
        "invalid": REF_INVALID,
        "max_length": REF_TOO_LONG,
        "blank": REF_EMPTY,
    }

    def __init__(self, *, max_length: int = 200, **kwargs: Any) -> None:
        self.max_length = max_length
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int | str:
        # bool is an int in Python; true is no id.
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int):
            if not 1 <= data < 2**63:
                self.fail("invalid")
            return data
        if not isinstance(data, str):
            self.fail("invalid")
        text = data.strip()
        if not text:
            self.fail("blank")
        if len(text) > self.max_length:
            self.fail("max_length", max=self.max_length)
        return text

    def to_representation(self, value: Any) -> Any:
        return value


class GateRequestSerializer(serializers.Serializer):
    model = NameOrIdField(help_text="The model's name, or its id.")
    version = serializers.CharField(
        max_length=100, help_text="The version to release, as the registry names it."
    )
    environment = serializers.ChoiceField(choices=m.Deployment.Environment.choices)
    deployment = NameOrIdField(
        required=False,
        allow_null=True,
        help_text="The deployment to change, by id or name (within the model and "
        "environment). Optional.",
    )
    endpoint = serializers.CharField(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="Where it will answer: names the target deployment when no deployment "
        "is given. An endpoint with no deployment yet is a new deployment.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A misspelt "deployment" would otherwise widen the target silently.
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError(
                {name: ["Unknown field."] for name in unknown[:20]}
            )
        return attrs


class GateReasonSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=[
            "version_unknown",
            "version_not_approved",
            "version_deprecated",
            "version_retired",
            "model_retired",
            "critical_finding",
            "accepted_risk_expired",
            "more_findings",
            "outside_change_window",
            "no_change_window",
            "deployment_withdrawn",
            "deployment_quarantined",
        ]
    )
    message = serializers.CharField()
    finding_id = serializers.IntegerField(
        required=False, help_text="The finding that stops it, for finding reasons."
    )


class GateDecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=[gate.ALLOW, gate.DENY])
    reasons = GateReasonSerializer(many=True)
    decision_id = serializers.IntegerField(
        help_text="The recorded decision, listed at /governance/gate/."
    )


_FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": True,
    "description": "Each invalid field with its reasons (or `detail` for a body that is "
    "not JSON or too large).",
}


class GateView(APIView):
    permission_classes = [HasGateScope]
    parser_classes = [StrictJSONParser]

    @extend_schema(
        operation_id="gate_decide",
        request=GateRequestSerializer,
        responses={
            200: OpenApiResponse(
                response=GateDecisionSerializer,
                description="The decision, allow or deny, with every reason to deny. "
                "Recorded either way.",
            ),
            400: OpenApiResponse(
                response=_FIELD_ERRORS,
                description="A malformed body, an unknown model, or a deployment that "
                "is not the model's in that environment. Nothing is recorded.",
            ),
        },
        examples=[
            OpenApiExample(
                "Release to a production deployment",
                value={
                    "model": "fraud-scorer",
                    "version": "4",
                    "environment": "production",
                    "deployment": "fraud-scorer-prod",
                },
                request_only=True,
            ),
            OpenApiExample(
                "Denied",
                value={
                    "decision": "deny",
                    "reasons": [
                        {
                            "code": "version_not_approved",
                            "message": "Version '4' of model 'fraud-scorer' is pending "
                            "approval, not approved.",
                        }
                    ],
                    "decision_id": 42,
                },
                response_only=True,
            ),
        ],
        description="Ask whether a model version may be released to an environment now. "
        "Denies with every reason: version unknown, not approved, deprecated or retired; "
        "model retired; an open critical finding or an expired accepted risk on the "
        "target; outside the deployment's change window (or, in production, no "
        "machine-readable window); deployment withdrawn or quarantined. Needs the "
        "`gate` scope.",
    )
    def post(self, request: Request) -> Response:
        try:
            body = request.data
        except RequestDataTooBig:
            # Django refuses the body before the parser sees it (a declared length over
            # DATA_UPLOAD_MAX_MEMORY_SIZE): answer in JSON like every other bad body.
            raise ParseError(BODY_TOO_LARGE) from None
        data = GateRequestSerializer(data=body)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        decision = gate.gate_decide(
            request=gate.GateRequest(
                model=v["model"],
                version=v["version"],
                environment=v["environment"],
                deployment=v.get("deployment"),
                endpoint=v.get("endpoint", "").strip(),
            ),
            token=request.auth,
        )
        return Response(
            {
                "decision": gate.ALLOW if decision.allowed else gate.DENY,
                "reasons": decision.reasons,
                "decision_id": decision.pk,
            },
            status=status.HTTP_200_OK,
        )
