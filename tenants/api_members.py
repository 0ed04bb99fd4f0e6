"""Tenant API (tenant host): who am I, and member management for tenant admins."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import SafeLookupMixin, StrictSerializer
from tenants import roles
from tenants.permissions import IsAnyMember, IsTenantAdminOrReadOnly

from . import selectors, services
from .api import InvitationSerializer, InviteSerializer, MemberSerializer
from .models import Membership, TenantRole


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    full_name = serializers.CharField()
    role = serializers.CharField()
    tenant = serializers.DictField()


class MeView(APIView):
    """The caller, their role here and the tenant's tier and effective quotas."""

    permission_classes = [IsAnyMember]

    @extend_schema(responses=MeSerializer)
    def get(self, request):
        tenant = request.tenant
        return Response(
            {
                "id": request.user.pk,
                "email": request.user.email,
                "full_name": request.user.full_name,
                "role": roles.resolve_role(request._request),
                "tenant": {
                    "id": str(tenant.pk),
                    "slug": tenant.slug,
                    "name": tenant.name,
                    "status": tenant.status,
                    "tier": tenant.tier.name,
                    "deployment_model": tenant.tier.deployment_model,
                    "effective_quotas": tenant.effective_quotas(),
                },
            }
        )


class RoleSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=TenantRole.choices)


class MemberViewSet(
    SafeLookupMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Members of this tenant. Every member reads; tenant admins invite, re-role and remove."""

    permission_classes = [IsTenantAdminOrReadOnly]
    serializer_class = MemberSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Membership.objects.none()
        # The only way to a membership: scoped to the tenant of the host.
        return selectors.membership_list(tenant=self.request.tenant)

    @extend_schema(request=InviteSerializer, responses={201: InvitationSerializer})
    def create(self, request):
        body = InviteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        invitation = services.member_invite(
            tenant=request.tenant, invited_by=request.user, **body.validated_data
        )
        return Response(InvitationSerializer(invitation).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=RoleSerializer, responses=MemberSerializer)
    def partial_update(self, request, pk=None):
        membership = self.get_object()
        body = RoleSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership = services.membership_change_role(
            membership=membership, role=body.validated_data["role"], actor=request.user
        )
        return Response(MemberSerializer(membership).data)

    def perform_destroy(self, instance):
        services.membership_remove(membership=instance, actor=self.request.user)
