"""Consumers and their signing secrets."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api import StrictSerializer

from .. import services
from ..models import (
    Consumer,
    ConsumerAuth,
    Kind,
)
from ..services import consumers as consumer_services
from ._common import ERRORS, ConfigViewSet, RotateSerializer, length_of


class ConsumerSerializer(serializers.ModelSerializer):
    has_auth_secret = serializers.SerializerMethodField()
    # A string, not a URL: an sqs consumer has none ("").
    url = serializers.CharField(read_only=True, help_text="https consumers; empty for sqs")
    previous_signing_secret_valid_until = serializers.DateTimeField(
        source="previous_signing_secret_expires_at", read_only=True, allow_null=True
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
            "rate_limit_per_second",
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
    name = serializers.CharField(max_length=length_of(Consumer, "name"))
    kind = serializers.ChoiceField(choices=Kind.choices)
    url = serializers.CharField(
        max_length=length_of(Consumer, "url"), required=False, allow_blank=True
    )
    queue_arn = serializers.CharField(
        max_length=length_of(Consumer, "queue_arn"), required=False, allow_blank=True
    )
    enabled = serializers.BooleanField(required=False)
    description = serializers.CharField(
        max_length=length_of(Consumer, "description"), required=False, allow_blank=True
    )
    auth_type = serializers.ChoiceField(choices=ConsumerAuth.choices, required=False)
    auth_username = serializers.CharField(
        max_length=length_of(Consumer, "auth_username"),
        required=False,
        allow_blank=True,
        help_text="Header name (auth `header`) or user name (auth `basic`).",
    )
    auth_secret = serializers.CharField(
        max_length=consumer_services.MAX_AUTH_SECRET_LENGTH,
        required=False,
        write_only=True,
        trim_whitespace=False,
        help_text="Header value, password or bearer token. Write-only; stored encrypted.",
    )
    timeout_ms = serializers.IntegerField(required=False)
    delivery_concurrency = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    retry_policy = serializers.JSONField(required=False)
    rate_limit_per_second = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="Deliveries per second at most (null: no limit); up to the tier's "
        "`max_consumer_rate_per_second`.",
    )


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
