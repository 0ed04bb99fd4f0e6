"""Event types and their schemas."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from core.api import StrictSerializer

from .. import services
from ..models import (
    EventType,
)
from ._common import ERRORS, ConfigViewSet, length_of


class EventTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = EventType
        fields = ["id", "name", "description", "schema", "version", "created_at", "updated_at"]
        read_only_fields = fields


class EventTypeWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=length_of(EventType, "name"))
    description = serializers.CharField(
        max_length=length_of(EventType, "description"), required=False, allow_blank=True
    )
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
