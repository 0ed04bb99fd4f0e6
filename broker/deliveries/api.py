"""Tenant API for deliveries (tenant host): the delivery log, one delivery with its attempts
and event, resend, and a consumer's test event. Records live in the data plane's table
(`broker.deliveries.selectors`); a consumer outside this tenant's schema is a 404."""

from datetime import UTC, datetime

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from broker.api._common import ERRORS
from broker.functions.shared import records
from broker.models import Consumer
from tenants.permissions import IsTenantMember

from . import selectors, services

MAX_LIMIT = 100


class AttemptSerializer(serializers.Serializer):
    delivery_id = serializers.CharField()
    at = serializers.CharField(help_text="ISO 8601, UTC, milliseconds")
    status = serializers.CharField(help_text="ok, retrying (another attempt follows) or dead")
    http_status = serializers.IntegerField(allow_null=True, required=False)
    latency_ms = serializers.FloatField(
        allow_null=True, required=False, help_text="milliseconds, with their fraction"
    )
    error = serializers.CharField(allow_null=True, required=False)
    error_kind = serializers.CharField(allow_null=True, required=False)
    throttled_ms = serializers.IntegerField(
        allow_null=True,
        required=False,
        help_text="milliseconds the delivery was held back over the consumer's rate limit "
        "before this attempt; absent when it was not",
    )
    consumer_id = serializers.CharField()
    subscription_id = serializers.CharField(allow_null=True, required=False)
    producer_id = serializers.CharField(allow_null=True, required=False)
    event_id = serializers.CharField(required=False)
    event_type = serializers.CharField(required=False)
    replay = serializers.IntegerField()
    attempt = serializers.IntegerField()
    test = serializers.BooleanField(required=False)
    cursor = serializers.CharField(help_text="pass as `before` for the next (older) page")


class DeliverySerializer(serializers.Serializer):
    delivery_id = serializers.CharField()
    event = serializers.JSONField(allow_null=True)
    event_escaped = serializers.BooleanField(
        help_text="The event was stored before the ingress refused NaN, Infinity and lone "
        'surrogates: those are shown as strings ("NaN", "\\ud800"), not as sent.'
    )
    event_truncated = serializers.BooleanField(
        help_text="The event was too large for the delivery log: `event` is "
        '{"raw": <its first bytes>} and the delivery cannot be resent.'
    )
    attempts = AttemptSerializer(many=True)


def _iso(name: str, value: str | None) -> str | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError({name: ["An ISO 8601 date-time, e.g. 2026-11-30T12:00:00Z."]})
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="milliseconds")


def _consumer(value) -> Consumer:
    try:
        consumer = Consumer.objects.filter(pk=value).first()
    except (DjangoValidationError, ValueError):
        consumer = None
    if consumer is None:
        raise NotFound("No such consumer.")
    return consumer


def _clean(attempt: dict) -> dict:
    attempt = dict(attempt)
    attempt.pop("at_display", None)
    return attempt


class DeliveryListView(APIView):
    """Delivery attempts, newest first (one row per attempt; a delivery's retries and replays
    share its `delivery_id`). Records expire after the data plane's retention (7 days by
    default)."""

    permission_classes = [IsTenantMember]

    @extend_schema(
        tags=["deliveries"],
        operation_id="deliveries_list",
        parameters=[
            OpenApiParameter("consumer", str, description="consumer id (all consumers if absent)"),
            OpenApiParameter("status", str, enum=list(records.STATUSES)),
            OpenApiParameter("event_type", str),
            OpenApiParameter("since", str, description="ISO 8601 date-time, inclusive"),
            OpenApiParameter("until", str, description="ISO 8601 date-time, inclusive"),
            OpenApiParameter("before", str, description="`next` of the previous page"),
            OpenApiParameter("limit", int, description=f"1..{MAX_LIMIT}, default 50"),
        ],
        responses={
            200: inline_serializer(
                "DeliveryPage",
                {
                    "results": AttemptSerializer(many=True),
                    "next": serializers.CharField(allow_null=True),
                },
            ),
            **ERRORS,
        },
    )
    def get(self, request):
        params = request.query_params
        status_ = params.get("status") or None
        if status_ and status_ not in records.STATUSES:
            raise ValidationError({"status": [f"One of {', '.join(records.STATUSES)}."]})
        try:
            limit = min(MAX_LIMIT, max(1, int(params.get("limit", 50))))
        except ValueError:
            raise ValidationError({"limit": ["A number."]}) from None
        filters = {
            "status": status_,
            "event_type": params.get("event_type") or None,
            "since": _iso("since", params.get("since")),
            "until": _iso("until", params.get("until")),
            "before": params.get("before") or None,
        }
        if params.get("consumer"):
            consumer_ids = [_consumer(params["consumer"]).pk]
        else:
            consumer_ids = list(Consumer.objects.values_list("pk", flat=True)[:500])
        results = selectors.tenant_log(request.tenant.pk, consumer_ids, limit=limit, **filters)
        return Response(
            {
                "results": [_clean(a) for a in results],
                "next": results[-1]["cursor"] if len(results) == limit else None,
            }
        )


class DeliveryDetailView(APIView):
    """One delivery: its event (while kept) and every attempt, oldest first."""

    permission_classes = [IsTenantMember]

    @extend_schema(tags=["deliveries"], responses={200: DeliverySerializer, **ERRORS})
    def get(self, request, delivery_id):
        history = selectors.delivery_history(request.tenant.pk, delivery_id)
        if history is None:
            raise NotFound("No such delivery.")
        history["attempts"] = [_clean(a) for a in history["attempts"]]
        return Response(history)


RESEND_ANSWER = inline_serializer(
    "Resend",
    {
        "delivery_id": serializers.CharField(),
        "replay": serializers.IntegerField(),
        "consumer": serializers.CharField(),
        "message_id": serializers.CharField(),
    },
)


class DeliveryResendView(APIView):
    """Sends the delivery again through the replay path: same `delivery_id` (the consumer's
    `webhook-id`), the next replay number, to the consumer's current delivery queue."""

    permission_classes = [IsTenantMember]

    @extend_schema(tags=["deliveries"], request=None, responses={202: RESEND_ANSWER, **ERRORS})
    def post(self, request, delivery_id):
        answer = services.delivery_resend(
            tenant=request.tenant, actor=request.user, delivery_id=delivery_id
        )
        return Response(answer, status=status.HTTP_202_ACCEPTED)


class ConsumerTestEventView(APIView):
    """Sends a test event (`broker.test`, marked as a test) to the consumer, through the same
    routing code as the ingress. Its delivery shows in the delivery log."""

    permission_classes = [IsTenantMember]

    @extend_schema(
        tags=["consumers"],
        request=None,
        responses={
            202: inline_serializer(
                "TestEvent",
                {
                    "delivery_id": serializers.CharField(),
                    "event_id": serializers.CharField(),
                    "event_type": serializers.CharField(),
                    "consumer": serializers.CharField(),
                },
            ),
            **ERRORS,
        },
    )
    def post(self, request, pk):
        consumer = _consumer(pk)
        answer = services.consumer_test_event(
            tenant=request.tenant, actor=request.user, consumer=consumer
        )
        return Response(answer, status=status.HTTP_202_ACCEPTED)
