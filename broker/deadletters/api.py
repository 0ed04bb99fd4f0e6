"""Dead-letter API. Tenant host: dead letters, replay jobs, DLQ alert settings. Public host:
the quarantine (operators and support).

Every letter and job comes from the active tenant schema, so another tenant's id is a 404 like
an unknown one; in a replay or discard body such ids are a 400 naming them.
"""

import json
import uuid

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from broker import secrets
from broker.api._common import ERRORS, IdempotentViewSet
from broker.dlq.models import QuarantinedMessage, QuarantineStatus, TenantDlqState
from broker.functions.shared import jsontext
from broker.models import Consumer
from core.api import StrictSerializer
from core.errors import ApplicationError
from tenants.models import Tenant
from tenants.permissions import (
    IsOperatorOrSupportReadOnly,
    IsTenantAdminOrReadOnly,
    IsTenantMember,
)

from . import alerts, quarantine, selectors, services
from .models import DeadLetter, ReplayJob

PAGING_PARAMS = {"page", "page_size", "ordering", "format"}
LIST_FIELDS = (
    "id",
    "delivery_id",
    "consumer_id",
    "subscription_id",
    "producer_id",
    "event_id",
    "event_type",
    "status",
    "attempts",
    "last_status",
    "last_error",
    "error_kind",
    "first_attempt_at",
    "last_attempt_at",
    "dead_lettered_at",
    "replay_count",
    "last_job_id",
    "payload_bytes",
)


def _consumer_names(ids) -> dict[str, str]:
    valid = []
    for raw in set(ids):
        try:
            valid.append(uuid.UUID(str(raw)))
        except ValueError:
            pass
    return {
        str(pk): name
        for pk, name in Consumer.objects.filter(pk__in=valid).values_list("pk", "name")
    }


class DeadLetterSerializer(serializers.ModelSerializer):
    consumer_name = serializers.SerializerMethodField()
    failure = serializers.SerializerMethodField()
    last_job = serializers.UUIDField(source="last_job_id", read_only=True, allow_null=True)

    class Meta:
        model = DeadLetter
        fields = [
            "id",
            "delivery_id",
            "consumer_id",
            "consumer_name",
            "subscription_id",
            "producer_id",
            "event_id",
            "event_type",
            "status",
            "failure",
            "attempts",
            "last_status",
            "last_error",
            "error_kind",
            "first_attempt_at",
            "last_attempt_at",
            "dead_lettered_at",
            "replay_count",
            "last_job",
            "payload_bytes",
        ]
        read_only_fields = fields

    def get_consumer_name(self, obj) -> str:
        return self.context.get("consumer_names", {}).get(obj.consumer_id, "")

    def get_failure(self, obj) -> str:
        return str(obj.last_status) if obj.last_status else obj.error_kind


class DeadLetterDetailSerializer(DeadLetterSerializer):
    payload = serializers.SerializerMethodField()
    payload_escaped = serializers.SerializerMethodField(
        help_text="The payload was stored before the ingress refused NaN, Infinity and lone "
        'surrogates: those are shown as strings ("NaN", "\\ud800"), not as sent. A replay '
        "sends the payload as stored."
    )

    class Meta(DeadLetterSerializer.Meta):
        fields = [
            *DeadLetterSerializer.Meta.fields,
            "payload",
            "payload_escaped",
            "metadata",
            "history",
        ]
        read_only_fields = fields

    def _readable_payload(self, obj) -> tuple[dict | None, bool]:
        cached = getattr(obj, "_readable_payload", None)
        if cached is None:
            try:
                text = secrets.decrypt(
                    tenant_id=self.context["tenant_id"], token=obj.payload_encrypted
                )
            except secrets.SecretError:
                cached = (None, False)
            else:
                # Python's parser reads what older ingresses let through; `readable` makes it
                # something the JSON renderer takes (it refuses NaN and lone surrogates).
                cached = jsontext.readable(json.loads(text))
            obj._readable_payload = cached
        return cached

    def get_payload(self, obj) -> dict | None:
        return self._readable_payload(obj)[0]

    def get_payload_escaped(self, obj) -> bool:
        return self._readable_payload(obj)[1]


class SelectionSerializer(StrictSerializer):
    ids = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        max_length=services.MAX_IDS,
        help_text=f"Dead letter ids (at most {services.MAX_IDS}); or give `filter`.",
    )
    filter = serializers.DictField(
        required=False,
        help_text="The list's filters: consumer, producer, event_type, status, error, "
        "error_kind, delivery_id, since, until.",
    )

    def validate(self, attrs):
        if ("ids" in attrs) == ("filter" in attrs):
            raise serializers.ValidationError({"ids": ["Give either ids or filter."]})
        return attrs


class ReplaySerializer(SelectionSerializer):
    dry_run = serializers.BooleanField(required=False, default=False)


class ReplayJobSerializer(serializers.ModelSerializer):
    eta_seconds = serializers.FloatField(read_only=True, allow_null=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = ReplayJob
        fields = [
            "id",
            "consumer_id",
            "consumer_name",
            "status",
            "selection",
            "cursor",
            "total",
            "sent",
            "skipped",
            "failed",
            "progress",
            "rate_per_second",
            "eta_seconds",
            "created_by_email",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_progress(self, obj) -> float:
        return round(obj.done / obj.total, 4) if obj.total else 1.0


def _selection_args(data: dict) -> dict:
    return {"ids": data.get("ids"), "filter": data.get("filter")}


@extend_schema(responses={200: DeadLetterSerializer, **ERRORS})
class DeadLetterViewSet(IdempotentViewSet):
    """Viewers read; developers and admins replay and discard."""

    permission_classes = [IsTenantMember]
    serializer_class = DeadLetterSerializer
    filter_backends = []  # the one dead-letter filter (selectors.clean_filter) instead
    idempotent_actions = ("replay", "discard")

    def get_queryset(self):
        return DeadLetter.objects.defer("payload_encrypted", "history", "metadata")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        context["tenant_id"] = str(self.request.tenant.pk)
        return context

    def list(self, request):
        params = {k: v for k, v in request.query_params.items() if k not in PAGING_PARAMS}
        filters = selectors.clean_filter(params, field="")
        qs = selectors.letters_filtered(filters, self.get_queryset()).order_by(
            "-dead_lettered_at", "-id"
        )
        # Plain rows, built by hand: DRF's field-by-field serializer was most of the time
        # of a page of 100 (DeadLetterSerializer documents the same shape).
        page = self.paginate_queryset(qs.values(*LIST_FIELDS))
        names = _consumer_names(row["consumer_id"] for row in page)
        for row in page:
            row["consumer_name"] = names.get(row["consumer_id"], "")
            row["failure"] = str(row["last_status"]) if row["last_status"] else row["error_kind"]
            row["last_job"] = row.pop("last_job_id")
        return self.get_paginated_response(page)

    @extend_schema(responses={200: DeadLetterDetailSerializer, **ERRORS})
    def retrieve(self, request, pk=None):
        letter = self.get_object()
        letter = DeadLetter.objects.get(pk=letter.pk)
        context = self.get_serializer_context()
        context["consumer_names"] = _consumer_names([letter.consumer_id])
        return Response(DeadLetterDetailSerializer(letter, context=context).data)

    @extend_schema(
        responses={
            200: inline_serializer(
                "DeadLetterGroups",
                {"groups": serializers.ListField(child=serializers.DictField())},
            ),
            **ERRORS,
        }
    )
    @action(detail=False, methods=["get"])
    def groups(self, request):
        """Pending letters by consumer × failure (HTTP status or error kind) × event type."""
        groups = selectors.letter_groups()
        names = _consumer_names(g["consumer_id"] for g in groups)
        for group in groups:
            group["consumer_name"] = names.get(group["consumer_id"], "")
        return Response({"groups": groups})

    @extend_schema(
        request=ReplaySerializer,
        responses={
            200: OpenApiResponse(description="dry run: {count, by_consumer}"),
            202: OpenApiResponse(description="{jobs, count, skipped}"),
            **ERRORS,
        },
    )
    @action(detail=False, methods=["post"])
    def replay(self, request):
        """Replays a selection (ids or filter): one job per consumer, or a dry-run count."""
        body = ReplaySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if data["dry_run"]:
            outcome = services.replay_preview(**_selection_args(data))
            return Response(
                {
                    "count": outcome.count,
                    "by_consumer": outcome.by_consumer,
                    "skipped": outcome.skipped,
                }
            )
        outcome = services.replay_start(
            tenant=request.tenant, actor=request.user, **_selection_args(data)
        )
        return Response(
            {
                "count": outcome.count,
                "jobs": ReplayJobSerializer(outcome.jobs, many=True).data,
                "skipped": outcome.skipped,
            },
            status=status.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        request=SelectionSerializer,
        responses={200: OpenApiResponse(description="{count}"), **ERRORS},
    )
    @action(detail=False, methods=["post"])
    def discard(self, request):
        body = SelectionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        count = services.letters_discard(actor=request.user, **_selection_args(body.validated_data))
        return Response({"count": count})


@extend_schema(responses={200: ReplayJobSerializer, **ERRORS})
class ReplayJobViewSet(IdempotentViewSet):
    permission_classes = [IsTenantMember]
    serializer_class = ReplayJobSerializer
    filter_backends = []
    idempotent_actions = ("cancel",)

    def get_queryset(self):
        qs = ReplayJob.objects.all()
        status_filter = self.request.query_params.get("status")
        if status_filter:
            qs = qs.filter(status__in=status_filter.split(","))
        return qs

    @extend_schema(request=None, responses={200: ReplayJobSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Stops the job between batches; the letters it did not send are pending again."""
        job = services.replay_job_cancel(actor=request.user, job=self.get_object())
        return Response(ReplayJobSerializer(job).data)


class DlqAlertsSerializer(StrictSerializer):
    backlog = serializers.IntegerField(
        min_value=1, max_value=10_000_000, allow_null=True, required=False
    )
    age_minutes = serializers.IntegerField(
        min_value=1, max_value=60 * 24 * 90, allow_null=True, required=False
    )
    emails_enabled = serializers.BooleanField(required=False)


def _alerts_body(tenant) -> dict:
    state = TenantDlqState.objects.filter(tenant=tenant).first()
    limits = alerts.thresholds(tenant, state)
    return {
        "backlog": limits["backlog"],
        "age_minutes": limits["age_minutes"],
        "emails_enabled": limits["emails_enabled"],
        "backlog_is_default": not (state and state.alert_backlog),
        "age_minutes_is_default": not (state and state.alert_age_minutes),
        "alerting": bool(state and state.alerting),
        "reason": state.alert_reason if state else "",
        "current_backlog": state.backlog if state else 0,
        "oldest_at": state.oldest_at if state else None,
        "measured_at": state.measured_at if state else None,
    }


class DlqAlertsView(APIView):
    """The tenant's DLQ alert thresholds (null = the tier's default) and state. Every member
    reads; tenant admins change them."""

    permission_classes = [IsTenantAdminOrReadOnly]

    @extend_schema(responses={200: OpenApiResponse(description="thresholds and state"), **ERRORS})
    def get(self, request):
        return Response(
            _alerts_body(Tenant.objects.select_related("tier").get(pk=request.tenant.pk))
        )

    @extend_schema(
        request=DlqAlertsSerializer,
        responses={200: OpenApiResponse(description="thresholds and state"), **ERRORS},
    )
    def patch(self, request):
        body = DlqAlertsSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        tenant = Tenant.objects.select_related("tier").get(pk=request.tenant.pk)
        alerts.settings_update(
            tenant=tenant,
            actor=request.user,
            backlog=data.get("backlog", ...),
            age_minutes=data.get("age_minutes", ...),
            emails_enabled=data.get("emails_enabled", ...),
        )
        alerts.evaluate(tenant=tenant)
        return Response(_alerts_body(tenant))


# --- quarantine (public host) ------------------------------------------------------------


class QuarantineSerializer(serializers.ModelSerializer):
    assigned_tenant = serializers.UUIDField(
        source="assigned_tenant_id", read_only=True, allow_null=True
    )

    class Meta:
        model = QuarantinedMessage
        fields = [
            "id",
            "message_id",
            "reason",
            "tenant_hint",
            "status",
            "body",
            "attributes",
            "received_at",
            "resolved_at",
            "resolved_by_email",
            "assigned_tenant",
        ]
        read_only_fields = fields


class AssignSerializer(StrictSerializer):
    tenant = serializers.SlugField(help_text="The tenant's slug.")


@extend_schema(responses={200: QuarantineSerializer, **ERRORS})
class QuarantineViewSet(IdempotentViewSet):
    """DLQ messages that could not be placed in a tenant, with their raw body and why.
    Operators and support read; operators discard or assign."""

    permission_classes = [IsOperatorOrSupportReadOnly]
    serializer_class = QuarantineSerializer
    filter_backends = []
    idempotent_actions = ("discard", "assign")

    def get_queryset(self):
        qs = QuarantinedMessage.objects.all()
        wanted = self.request.query_params.get("status")
        if wanted:
            if wanted not in QuarantineStatus.values:
                raise ApplicationError("Invalid filter.", fields={"status": ["Unknown status."]})
            qs = qs.filter(status=wanted)
        return qs

    @extend_schema(request=None, responses={200: QuarantineSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def discard(self, request, pk=None):
        entry = quarantine.quarantine_discard(entry=self.get_object(), actor=request.user)
        return Response(QuarantineSerializer(entry).data)

    @extend_schema(request=AssignSerializer, responses={200: QuarantineSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        body = AssignSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        entry = self.get_object()
        tenant = Tenant.objects.filter(slug=body.validated_data["tenant"]).first()
        if tenant is None:
            raise ApplicationError("Unknown tenant.", fields={"tenant": ["Unknown tenant."]})
        entry = quarantine.quarantine_assign(entry=entry, tenant=tenant, actor=request.user)
        return Response(QuarantineSerializer(entry).data)
