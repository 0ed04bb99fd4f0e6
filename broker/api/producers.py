"""Producers and their API keys."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api import StrictSerializer

from .. import services
from ..models import (
    ApiKey,
    EventType,
    Kind,
    Producer,
)
from ..services import producers as producer_services
from ._common import ERRORS, ConfigViewSet, RotateSerializer, length_of


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
    name = serializers.CharField(max_length=length_of(Producer, "name"))
    kind = serializers.ChoiceField(choices=Kind.choices)
    enabled = serializers.BooleanField(required=False)
    allowed_event_types = serializers.ListField(
        child=serializers.CharField(max_length=length_of(EventType, "name")),
        required=False,
        max_length=producer_services.MAX_ALLOWED_EVENT_TYPES,
    )
    ingest_rate_per_second = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    ingest_burst = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    source_queue_arn = serializers.CharField(
        max_length=length_of(Producer, "source_queue_arn"), required=False, allow_blank=True
    )
    description = serializers.CharField(
        max_length=length_of(Producer, "description"), required=False, allow_blank=True
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
