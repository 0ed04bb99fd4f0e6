"""Operator API (public host): tiers, tenants and their lifecycle, tenant members."""

from pathlib import PurePath

import django_filters
from django.db import models
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.api import SafeLookupMixin, StrictSerializer
from tenants.permissions import IsOperatorOrSupportReadOnly

from . import hooks, selectors, services
from .models import QUOTA_FIELDS, Invitation, Tenant, TenantRole, TenantStatus, Tier


class TierSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tier
        fields = [
            "id",
            "name",
            "description",
            "deployment_model",
            "is_default_for_model",
            *QUOTA_FIELDS,
            "updated_at",
        ]
        read_only_fields = fields


class TierUpdateSerializer(StrictSerializer):
    def get_fields(self):
        return {
            name: serializers.IntegerField(min_value=1, required=False) for name in QUOTA_FIELDS
        }


class TierViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Tiers and their quotas. Operators change quotas; support reads."""

    permission_classes = [IsOperatorOrSupportReadOnly]
    serializer_class = TierSerializer
    queryset = Tier.objects.all()
    lookup_field = "name"
    ordering_fields = ["id", "name"]

    @extend_schema(request=TierUpdateSerializer, responses=TierSerializer)
    def partial_update(self, request, name=None):
        tier = self.get_object()
        body = TierUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tier = services.tier_update(tier=tier, quotas=body.validated_data, actor=request.user)
        return Response(TierSerializer(tier).data)


class TenantSyncSerializer(serializers.Serializer):
    """Where the tenant's DynamoDB mirror stands (broker.sync's records, through a hook)."""

    status = serializers.ChoiceField(
        choices=["ok", "pending", "failing", "not_mirrored"],
        help_text="failing: a write DynamoDB refused is being retried; pending: changes are "
        "queued; not_mirrored: offboarding or deleted, items tombstoned.",
    )
    pending_changes = serializers.IntegerField(help_text="Changes queued, not yet written.")
    failing_objects = serializers.IntegerField(help_text="Objects whose last write failed.")
    last_error = serializers.CharField(help_text="The newest refusal; empty when none.")
    last_error_at = serializers.DateTimeField(allow_null=True)
    attempts = serializers.IntegerField(help_text="Attempts of the object that failed last.")
    since = serializers.DateTimeField(
        allow_null=True, help_text="When the oldest change not yet in DynamoDB was made."
    )


class TenantListSerializer(serializers.ListSerializer):
    def to_representation(self, data):
        tenants = list(data.all() if isinstance(data, models.manager.BaseManager) else data)
        # One look-up for the whole page, not one per tenant.
        self.child.context["sync"] = hooks.tenant_sync_summaries(tenants)
        return super().to_representation(tenants)


class TenantSerializer(serializers.ModelSerializer):
    tier = serializers.SlugRelatedField(slug_field="name", read_only=True)
    deployment_model = serializers.CharField(read_only=True)
    effective_quotas = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    domains = serializers.SerializerMethodField()
    member_count = serializers.IntegerField(read_only=True)
    in_sync = serializers.SerializerMethodField(
        help_text="The TENANT item carries the current version (other objects: see `sync`)."
    )
    sync = serializers.SerializerMethodField()
    offboarding_report = serializers.SerializerMethodField(
        help_text="What the offboarding did, step by step; `export_file` names the export of "
        "the tenant's data (kept on the platform's export volume)."
    )

    class Meta:
        model = Tenant
        list_serializer_class = TenantListSerializer
        fields = [
            "id",
            "name",
            "slug",
            "status",
            "tier",
            "deployment_model",
            "admin_email",
            "schema_name",
            "domains",
            "provisioning_error",
            "delivery_queues",
            "silo_queue_url",
            "quota_overrides",
            "effective_quotas",
            "version",
            "synced_version",
            "in_sync",
            "sync",
            "member_count",
            "offboarding_report",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_domains(self, obj) -> list[str]:
        return [d.domain for d in obj.domains.all()]

    def get_in_sync(self, obj) -> bool:
        return obj.synced_version >= obj.version

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_offboarding_report(self, obj) -> dict | None:
        # The report keeps where the export was written; an answer names the file only, and
        # never shows a server path.
        report = obj.offboarding_report
        if not isinstance(report, dict) or "export_path" not in report:
            return report
        report = dict(report)
        report["export_file"] = PurePath(report.pop("export_path") or "").name
        return report

    @extend_schema_field(TenantSyncSerializer)
    def get_sync(self, obj) -> dict:
        summaries = self.context.get("sync") or {}
        if obj.pk not in summaries:
            summaries = hooks.tenant_sync_summaries([obj])
        return TenantSyncSerializer(summaries[obj.pk]).data


class QuotaOverridesField(serializers.DictField):
    def __init__(self, **kwargs):
        super().__init__(child=serializers.IntegerField(min_value=1, allow_null=True), **kwargs)


class OnboardSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100)
    slug = serializers.CharField(max_length=50)
    tier = serializers.CharField(max_length=32)
    admin_email = serializers.EmailField()
    quota_overrides = QuotaOverridesField(required=False)


class OffboardSerializer(StrictSerializer):
    confirm = serializers.CharField(
        max_length=50, help_text="The tenant's slug: an offboarding cannot be undone."
    )

    def validate_confirm(self, value):
        if value != self.context["tenant"].slug:
            raise serializers.ValidationError("Must be the tenant's slug.")
        return value


class TenantUpdateSerializer(StrictSerializer):
    quota_overrides = QuotaOverridesField(
        help_text="Merged into the tenant's overrides; null removes one."
    )


class TenantFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=TenantStatus.choices)
    tier = django_filters.CharFilter(field_name="tier__name")
    slug = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Tenant
        fields = ["status", "tier", "slug"]


class MemberSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField(source="user.email")
    full_name = serializers.CharField(source="user.full_name")
    role = serializers.ChoiceField(choices=TenantRole.choices)
    created_at = serializers.DateTimeField()


class InvitationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "created_at", "expires_at", "accepted_at"]
        read_only_fields = fields


class InviteSerializer(StrictSerializer):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=TenantRole.choices)


class TenantViewSet(
    SafeLookupMixin, viewsets.GenericViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """Tenants. Create onboards; lifecycle actions are POSTs on the tenant."""

    permission_classes = [IsOperatorOrSupportReadOnly]
    serializer_class = TenantSerializer
    filterset_class = TenantFilter
    ordering_fields = ["created_at", "slug", "status"]
    ordering = ["created_at"]

    def get_queryset(self):
        return selectors.tenant_list()

    def _respond(self, tenant, code=status.HTTP_200_OK):
        return Response(
            TenantSerializer(selectors.tenant_get(tenant_id=tenant.pk)).data, status=code
        )

    @extend_schema(request=OnboardSerializer, responses={202: TenantSerializer})
    def create(self, request):
        body = OnboardSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tenant = services.tenant_onboard(actor=request.user, **body.validated_data)
        return self._respond(tenant, status.HTTP_202_ACCEPTED)

    @extend_schema(request=TenantUpdateSerializer, responses=TenantSerializer)
    def partial_update(self, request, pk=None):
        tenant = self.get_object()
        body = TenantUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tenant = services.tenant_update_quotas(
            tenant=tenant, overrides=body.validated_data["quota_overrides"], actor=request.user
        )
        return self._respond(tenant)

    @extend_schema(request=None, responses=TenantSerializer)
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        return self._respond(services.tenant_suspend(tenant=self.get_object(), actor=request.user))

    @extend_schema(request=None, responses=TenantSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._respond(services.tenant_resume(tenant=self.get_object(), actor=request.user))

    @extend_schema(request=OffboardSerializer, responses={202: TenantSerializer})
    @action(detail=True, methods=["post"])
    def offboard(self, request, pk=None):
        """Deletes the tenant's resources, data and schema: the body must name its slug
        (`{"confirm": "<slug>"}`), or nothing happens (400)."""
        tenant = self.get_object()
        body = OffboardSerializer(data=request.data, context={"tenant": tenant})
        body.is_valid(raise_exception=True)
        tenant = services.tenant_offboard(tenant=tenant, actor=request.user)
        return self._respond(tenant, status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: TenantSerializer})
    @action(detail=True, methods=["post"], url_path="retry-provisioning")
    def retry_provisioning(self, request, pk=None):
        tenant = services.tenant_retry_provisioning(tenant=self.get_object(), actor=request.user)
        return self._respond(tenant, status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: TenantSerializer})
    @action(detail=True, methods=["post"], url_path="resume-offboarding")
    def resume_offboarding(self, request, pk=None):
        """Runs a stopped offboarding again from where it stopped (its steps are idempotent)."""
        tenant = services.tenant_resume_offboarding(tenant=self.get_object(), actor=request.user)
        return self._respond(tenant, status.HTTP_202_ACCEPTED)

    @extend_schema(methods=["GET"], responses=MemberSerializer(many=True))
    @extend_schema(
        methods=["POST"], request=InviteSerializer, responses={201: InvitationSerializer}
    )
    @action(detail=True, methods=["get", "post"])
    def members(self, request, pk=None):
        tenant = self.get_object()
        if request.method == "POST":
            body = InviteSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            invitation = services.member_invite(
                tenant=tenant, invited_by=request.user, **body.validated_data
            )
            return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(selectors.membership_list(tenant=tenant))
        return self.get_paginated_response(MemberSerializer(page, many=True).data)
