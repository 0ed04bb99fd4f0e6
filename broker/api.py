"""Tenant API (tenant host): producers, consumers, subscriptions, event types, audit events.

Every object comes from the active tenant schema (`get_queryset` is the only way in), so an id
of another tenant is a 404 like an unknown one. Writes go through broker.services.
"""

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api import SafeLookupMixin, StrictSerializer
from core.errors import ApplicationError
from core.idempotency import IdempotentMixin
from tenants.permissions import IsAnyMember, IsTenantMember

from . import services
from .functions.shared import patterns
from .models import (
    ApiKey,
    AuditEvent,
    Consumer,
    ConsumerAuth,
    EventType,
    Kind,
    Producer,
    Subscription,
)

ERROR = OpenApiResponse(
    response=inline_serializer(
        "Error",
        {
            "error": inline_serializer(
                "ErrorBody",
                {
                    "code": serializers.CharField(),
                    "message": serializers.CharField(),
                    "fields": serializers.DictField(),
                },
            )
        },
    ),
    description='`{"error": {"code", "message", "fields"}}`; `fields` maps a field to messages.',
)
ERRORS = {400: ERROR, 401: ERROR, 403: ERROR, 404: ERROR, 409: ERROR}


class ConfigViewSet(
    IdempotentMixin,
    SafeLookupMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Viewers read; developers and admins write. PATCH changes the fields it names."""

    permission_classes = [IsTenantMember]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    idempotency_redact = ("api_key", "signing_secret")

    def write_serializer(self, cls, *, partial=False):
        body = cls(data=self.request.data, partial=partial)
        body.is_valid(raise_exception=True)
        return body.validated_data


# --- producers ---------------------------------------------------------------------------


class ApiKeySerializer(serializers.ModelSerializer):
    status = serializers.CharField(read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "prefix", "status", "created_at", "expires_at", "revoked_at"]
        read_only_fields = fields


class ProducerSerializer(serializers.ModelSerializer):
    api_keys = ApiKeySerializer(many=True, read_only=True)

    class Meta:
        model = Producer
        fields = [
            "id",
            "name",
            "kind",
            "enabled",
            "allowed_event_types",
            "ingest_rate_per_second",
            "ingest_burst",
            "source_queue_arn",
            "description",
            "api_keys",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ProducerCreatedSerializer(ProducerSerializer):
    api_key = serializers.CharField(
        read_only=True, help_text="The new API key: shown once, store it now (https producers)."
    )

    class Meta(ProducerSerializer.Meta):
        fields = [*ProducerSerializer.Meta.fields, "api_key"]
        read_only_fields = fields


class ProducerWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=Kind.choices)
    enabled = serializers.BooleanField(required=False)
    allowed_event_types = serializers.ListField(
        child=serializers.CharField(max_length=200), required=False, max_length=50
    )
    ingest_rate_per_second = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    ingest_burst = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    source_queue_arn = serializers.CharField(max_length=256, required=False, allow_blank=True)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)


class RotateSerializer(StrictSerializer):
    grace_seconds = serializers.IntegerField(
        min_value=0,
        max_value=30 * 86_400,
        required=False,
        help_text="How long the keys in use stay valid (default: the platform's grace period).",
    )


class RevokeKeySerializer(StrictSerializer):
    key_id = serializers.UUIDField()


class ProducerFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Producer
        fields = ["kind", "enabled", "name"]


@extend_schema(responses={200: ProducerSerializer, **ERRORS})
class ProducerViewSet(ConfigViewSet):
    serializer_class = ProducerSerializer
    filterset_class = ProducerFilter
    ordering_fields = ["name", "created_at", "updated_at"]
    ordering = ["name"]
    idempotent_actions = ("create", "rotate_key", "revoke_key", "enable", "disable")

    def get_queryset(self):
        return Producer.objects.prefetch_related("api_keys")

    def _out(self, producer, status_code=200, **extra):
        producer = self.get_queryset().get(pk=producer.pk)
        data = ProducerSerializer(producer).data
        data.update(extra)
        return Response(data, status=status_code)

    @extend_schema(
        request=ProducerWriteSerializer, responses={201: ProducerCreatedSerializer, **ERRORS}
    )
    def create(self, request):
        data = self.write_serializer(ProducerWriteSerializer)
        producer, key = services.producer_create(actor=request.user, **data)
        return self._out(producer, status.HTTP_201_CREATED, api_key=key)

    @extend_schema(request=ProducerWriteSerializer, responses={200: ProducerSerializer, **ERRORS})
    def partial_update(self, request, pk=None):
        data = self.write_serializer(ProducerWriteSerializer, partial=True)
        producer = services.producer_update(actor=request.user, producer=self.get_object(), **data)
        return self._out(producer)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        services.producer_delete(actor=request.user, producer=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=RotateSerializer, responses={200: ProducerCreatedSerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path="rotate-key")
    def rotate_key(self, request, pk=None):
        """New API key (shown once); the keys in use keep working for the grace period."""
        data = self.write_serializer(RotateSerializer)
        producer = self.get_object()
        _, key = services.producer_rotate_key(actor=request.user, producer=producer, **data)
        return self._out(producer, api_key=key)

    @extend_schema(request=RevokeKeySerializer, responses={200: ProducerSerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path="revoke-key")
    def revoke_key(self, request, pk=None):
        """Ends one key at once."""
        data = self.write_serializer(RevokeKeySerializer)
        producer = self.get_object()
        services.producer_revoke_key(actor=request.user, producer=producer, key_id=data["key_id"])
        return self._out(producer)

    @extend_schema(request=None, responses={200: ProducerSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        producer = services.producer_update(
            actor=request.user, producer=self.get_object(), enabled=True
        )
        return self._out(producer)

    @extend_schema(request=None, responses={200: ProducerSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        producer = services.producer_update(
            actor=request.user, producer=self.get_object(), enabled=False
        )
        return self._out(producer)


# --- consumers ---------------------------------------------------------------------------


class ConsumerSerializer(serializers.ModelSerializer):
    has_auth_secret = serializers.SerializerMethodField()
    previous_signing_secret_valid_until = serializers.DateTimeField(
        source="previous_signing_secret_expires_at", read_only=True
    )

    class Meta:
        model = Consumer
        fields = [
            "id",
            "name",
            "kind",
            "url",
            "queue_arn",
            "enabled",
            "description",
            "auth_type",
            "auth_username",
            "has_auth_secret",
            "previous_signing_secret_valid_until",
            "timeout_ms",
            "delivery_concurrency",
            "retry_policy",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_has_auth_secret(self, obj) -> bool:
        return bool(obj.auth_secret_encrypted)


class ConsumerCreatedSerializer(ConsumerSerializer):
    signing_secret = serializers.CharField(
        read_only=True, help_text="The signing secret (https consumers): shown once."
    )

    class Meta(ConsumerSerializer.Meta):
        fields = [*ConsumerSerializer.Meta.fields, "signing_secret"]
        read_only_fields = fields


class ConsumerWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=Kind.choices)
    url = serializers.CharField(max_length=2048, required=False, allow_blank=True)
    queue_arn = serializers.CharField(max_length=256, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    auth_type = serializers.ChoiceField(choices=ConsumerAuth.choices, required=False)
    auth_username = serializers.CharField(
        max_length=256,
        required=False,
        allow_blank=True,
        help_text="Header name (auth `header`) or user name (auth `basic`).",
    )
    auth_secret = serializers.CharField(
        max_length=4096,
        required=False,
        write_only=True,
        trim_whitespace=False,
        help_text="Header value, password or bearer token. Write-only; stored encrypted.",
    )
    timeout_ms = serializers.IntegerField(required=False)
    delivery_concurrency = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    retry_policy = serializers.JSONField(required=False)


class ConsumerFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Consumer
        fields = ["kind", "enabled", "name"]


@extend_schema(responses={200: ConsumerSerializer, **ERRORS})
class ConsumerViewSet(ConfigViewSet):
    serializer_class = ConsumerSerializer
    filterset_class = ConsumerFilter
    ordering_fields = ["name", "created_at", "updated_at"]
    ordering = ["name"]
    idempotent_actions = ("create", "rotate_signing_secret", "enable", "disable")

    def get_queryset(self):
        return Consumer.objects.all()

    @extend_schema(
        request=ConsumerWriteSerializer, responses={201: ConsumerCreatedSerializer, **ERRORS}
    )
    def create(self, request):
        data = self.write_serializer(ConsumerWriteSerializer)
        consumer, secret = services.consumer_create(actor=request.user, **data)
        body = ConsumerSerializer(consumer).data
        body["signing_secret"] = secret
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=ConsumerWriteSerializer, responses={200: ConsumerSerializer, **ERRORS})
    def partial_update(self, request, pk=None):
        data = self.write_serializer(ConsumerWriteSerializer, partial=True)
        consumer = services.consumer_update(actor=request.user, consumer=self.get_object(), **data)
        return Response(ConsumerSerializer(consumer).data)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        services.consumer_delete(actor=request.user, consumer=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=RotateSerializer, responses={200: ConsumerCreatedSerializer, **ERRORS})
    @action(detail=True, methods=["post"], url_path="rotate-signing-secret")
    def rotate_signing_secret(self, request, pk=None):
        """New signing secret (shown once); the previous one signs too for the grace period."""
        data = self.write_serializer(RotateSerializer)
        consumer, secret = services.consumer_rotate_signing_secret(
            actor=request.user, consumer=self.get_object(), **data
        )
        body = ConsumerSerializer(consumer).data
        body["signing_secret"] = secret
        return Response(body)

    @extend_schema(request=None, responses={200: ConsumerSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        consumer = services.consumer_update(
            actor=request.user, consumer=self.get_object(), enabled=True
        )
        return Response(ConsumerSerializer(consumer).data)

    @extend_schema(request=None, responses={200: ConsumerSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        consumer = services.consumer_update(
            actor=request.user, consumer=self.get_object(), enabled=False
        )
        return Response(ConsumerSerializer(consumer).data)


# --- subscriptions -----------------------------------------------------------------------


class SubscriptionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Subscription
        fields = [
            "id",
            "consumer",
            "event_type",
            "producer",
            "filter",
            "enabled",
            "description",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class SubscriptionWriteSerializer(StrictSerializer):
    # Querysets are evaluated in the request's schema: another tenant's id does not exist here.
    consumer = serializers.PrimaryKeyRelatedField(queryset=Consumer.objects.all())
    event_type = serializers.CharField(max_length=200)
    producer = serializers.PrimaryKeyRelatedField(
        queryset=Producer.objects.all(), required=False, allow_null=True
    )
    filter = serializers.JSONField(required=False)
    enabled = serializers.BooleanField(required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)


class TestFilterSerializer(StrictSerializer):
    filter = serializers.JSONField(
        required=False, help_text="An EventBridge-style pattern; or give `subscription`."
    )
    subscription = serializers.UUIDField(required=False)
    event_type = serializers.CharField(
        required=False, help_text="An event type pattern to test as well (`order.*`)."
    )
    event = serializers.JSONField(help_text="A sample event: {type, data, ...}.")

    def validate(self, attrs):
        if ("filter" in attrs) == ("subscription" in attrs):
            raise serializers.ValidationError(
                {"filter": ["Give a filter or a subscription (one of them)."]}
            )
        if not isinstance(attrs["event"], dict):
            raise serializers.ValidationError({"event": ["A JSON object."]})
        return attrs


class SubscriptionFilter(django_filters.FilterSet):
    class Meta:
        model = Subscription
        fields = ["consumer", "producer", "event_type", "enabled"]


@extend_schema(responses={200: SubscriptionSerializer, **ERRORS})
class SubscriptionViewSet(ConfigViewSet):
    serializer_class = SubscriptionSerializer
    filterset_class = SubscriptionFilter
    ordering_fields = ["created_at", "event_type", "updated_at"]
    ordering = ["created_at"]
    idempotent_actions = ("create",)

    def get_queryset(self):
        return Subscription.objects.all()

    def get_permissions(self):
        # Testing a filter changes nothing: viewers may do it too.
        if self.action == "test_filter":
            return [IsAnyMember()]
        return super().get_permissions()

    @extend_schema(
        request=SubscriptionWriteSerializer, responses={201: SubscriptionSerializer, **ERRORS}
    )
    def create(self, request):
        data = self.write_serializer(SubscriptionWriteSerializer)
        sub = services.subscription_create(actor=request.user, **data)
        return Response(SubscriptionSerializer(sub).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=SubscriptionWriteSerializer, responses={200: SubscriptionSerializer, **ERRORS}
    )
    def partial_update(self, request, pk=None):
        data = self.write_serializer(SubscriptionWriteSerializer, partial=True)
        sub = services.subscription_update(
            actor=request.user, subscription=self.get_object(), **data
        )
        return Response(SubscriptionSerializer(sub).data)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        services.subscription_delete(actor=request.user, subscription=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=TestFilterSerializer,
        responses={
            200: inline_serializer(
                "FilterTestResult",
                {
                    "matches": serializers.BooleanField(),
                    "event_type_matches": serializers.BooleanField(allow_null=True),
                    "filter_matches": serializers.BooleanField(),
                    "reasons": serializers.ListField(child=serializers.DictField()),
                },
            ),
            **ERRORS,
        },
    )
    @action(detail=False, methods=["post"], url_path="test-filter")
    def test_filter(self, request):
        """Says whether a sample event matches a filter (or a subscription), and why."""
        data = self.write_serializer(TestFilterSerializer)
        event_type = data.get("event_type")
        if "subscription" in data:
            sub = Subscription.objects.filter(pk=data["subscription"]).first()
            if sub is None:
                raise ApplicationError(
                    "Invalid input.", fields={"subscription": ["Unknown subscription."]}
                )
            pattern, event_type = sub.filter, event_type or sub.event_type
        else:
            pattern = data["filter"]
        errors = {}
        try:
            patterns.validate_filter(pattern)
        except patterns.PatternError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors["filter"] = [f"{path}: {exc}" if path else str(exc)]
        if event_type:
            try:
                patterns.validate_event_type_pattern(event_type)
            except patterns.PatternError as exc:
                errors["event_type"] = [str(exc)]
        if errors:
            raise ApplicationError("Invalid input.", fields=errors)
        event = data["event"]
        result = patterns.explain(pattern, event)
        type_ok = None
        if event_type:
            type_ok = patterns.event_type_matches(event_type, str(event.get("type", "")))
        return Response(
            {
                "matches": bool(result["matches"]) and type_ok is not False,
                "event_type_matches": type_ok,
                "filter_matches": bool(result["matches"]),
                "reasons": result["reasons"],
            }
        )


# --- event types -------------------------------------------------------------------------


class EventTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = EventType
        fields = ["id", "name", "description", "schema", "version", "created_at", "updated_at"]
        read_only_fields = fields


class EventTypeWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    schema = serializers.JSONField(required=False, allow_null=True)


class EventTypeFilter(django_filters.FilterSet):
    name = django_filters.CharFilter(lookup_expr="startswith")

    class Meta:
        model = EventType
        fields = ["name"]


@extend_schema(responses={200: EventTypeSerializer, **ERRORS})
class EventTypeViewSet(ConfigViewSet):
    serializer_class = EventTypeSerializer
    filterset_class = EventTypeFilter
    ordering_fields = ["name", "created_at"]
    ordering = ["name"]
    idempotent_actions = ("create",)

    def get_queryset(self):
        return EventType.objects.all()

    @extend_schema(request=EventTypeWriteSerializer, responses={201: EventTypeSerializer, **ERRORS})
    def create(self, request):
        data = self.write_serializer(EventTypeWriteSerializer)
        event_type = services.event_type_create(actor=request.user, **data)
        return Response(EventTypeSerializer(event_type).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=EventTypeWriteSerializer, responses={200: EventTypeSerializer, **ERRORS})
    def partial_update(self, request, pk=None):
        data = self.write_serializer(EventTypeWriteSerializer, partial=True)
        event_type = services.event_type_update(
            actor=request.user, event_type=self.get_object(), **data
        )
        return Response(EventTypeSerializer(event_type).data)

    @extend_schema(responses={204: None, **ERRORS})
    def destroy(self, request, pk=None):
        services.event_type_delete(actor=request.user, event_type=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- audit events ------------------------------------------------------------------------


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "actor_email",
            "action",
            "object_type",
            "object_id",
            "diff",
            "request_id",
            "created_at",
        ]
        read_only_fields = fields


class AuditEventFilter(django_filters.FilterSet):
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "object_type", "object_id", "actor_email", "since", "until"]


@extend_schema(responses={200: AuditEventSerializer, **ERRORS})
class AuditEventViewSet(
    SafeLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Every configuration change in this tenant: who, what, when; secrets masked."""

    permission_classes = [IsTenantMember]
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    ordering_fields = ["created_at"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return AuditEvent.objects.all()
