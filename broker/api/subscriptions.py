"""Subscriptions and the filter tester."""

import django_filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api import StrictSerializer
from core.errors import ApplicationError
from tenants.permissions import IsAnyMember

from .. import services
from ..models import (
    Consumer,
    OnHeadFailure,
    Producer,
    Subscription,
)
from ._common import ERRORS, ConfigViewSet, length_of


class SubscriptionSerializer(serializers.ModelSerializer):
    class Meta:
        model = Subscription
        fields = [
            "id",
            "name",
            "consumer",
            "event_type",
            "producer",
            "filter",
            "enabled",
            "description",
            "ordered",
            "ordering_key_path",
            "on_head_failure",
            "version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class SubscriptionWriteSerializer(StrictSerializer):
    name = serializers.CharField(
        max_length=length_of(Subscription, "name"),
        required=False,
        help_text="Unique in the tenant; default `<consumer name>.<event type>`.",
    )
    # Querysets are evaluated in the request's schema: another tenant's id does not exist here.
    consumer = serializers.PrimaryKeyRelatedField(queryset=Consumer.objects.all())
    event_type = serializers.CharField(max_length=length_of(Subscription, "event_type"))
    producer = serializers.PrimaryKeyRelatedField(
        queryset=Producer.objects.all(), required=False, allow_null=True
    )
    filter = serializers.JSONField(required=False)
    enabled = serializers.BooleanField(required=False)
    description = serializers.CharField(
        max_length=length_of(Subscription, "description"), required=False, allow_blank=True
    )
    ordered = serializers.BooleanField(
        required=False,
        help_text="Deliver the events of one key one at a time, in the order accepted.",
    )
    ordering_key_path = serializers.CharField(
        max_length=length_of(Subscription, "ordering_key_path"),
        required=False,
        allow_blank=True,
        help_text="Dotted path into the event (`data.order_id`); empty: the envelope's "
        "`ordering_key`.",
    )
    on_head_failure = serializers.ChoiceField(
        choices=OnHeadFailure.choices,
        required=False,
        help_text="When a key's head fails for good: `skip` (dead-letter it) or `hold` the key.",
    )


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
    ordering_fields = ["created_at", "event_type", "name", "updated_at"]
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
        return Response(
            services.subscription_filter_test(
                pattern=pattern, event=data["event"], event_type=event_type
            )
        )
