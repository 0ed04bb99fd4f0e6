"""The tenant's audit log (read-only)."""

import django_filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

from core.filters import SafeIsoDateTimeFilter
from tenants.permissions import IsTenantMember

from ..models import (
    AuditEvent,
)
from ._common import ERRORS, ReadOnlyViewSet


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
    since = SafeIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = SafeIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditEvent
        fields = ["action", "object_type", "object_id", "actor_email", "since", "until"]


@extend_schema(responses={200: AuditEventSerializer, **ERRORS})
class AuditEventViewSet(ReadOnlyViewSet):
    """Every configuration change in this tenant: who, what, when; secrets masked."""

    permission_classes = [IsTenantMember]
    serializer_class = AuditEventSerializer
    filterset_class = AuditEventFilter
    ordering_fields = ["created_at"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self):
        return AuditEvent.objects.all()
