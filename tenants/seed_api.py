"""The control-plane endpoints of the serverless-silos reference (shared/seeds/002), with its
exact request and response shapes, served on the public host for operators.

Statuses map to the reference's vocabulary where it has one (active is "running"); a
tenant's "resources" are what provisioning created for it, in CloudFormation's
stack-resource shape.
"""

from django.utils.text import slugify
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import StrictSerializer
from core.errors import ApplicationError
from tenants import roles
from tenants.permissions import IsOperator, IsOperatorOrSupportReadOnly, _role

from . import selectors, services
from .models import DeploymentModel, Tier

SEED_STATUS = {"active": "running"}


class SeedTenant(serializers.Serializer):
    tenantName = serializers.CharField()  # noqa: N815 (the seed's field names)
    status = serializers.CharField()
    tenantId = serializers.UUIDField()  # noqa: N815
    created = serializers.CharField()
    deploymentType = serializers.CharField()  # noqa: N815
    tenantSafeName = serializers.CharField()  # noqa: N815


class SeedResource(serializers.Serializer):
    LogicalResourceId = serializers.CharField()  # noqa: N815
    PhysicalResourceId = serializers.CharField()  # noqa: N815
    ResourceType = serializers.CharField()  # noqa: N815
    ResourceStatus = serializers.CharField()  # noqa: N815
    LastUpdatedTimestamp = serializers.CharField()  # noqa: N815
    DriftInformation = serializers.DictField()  # noqa: N815


def seed_tenant(tenant) -> dict:
    return {
        "tenantName": tenant.name,
        "status": SEED_STATUS.get(tenant.status, tenant.status),
        "tenantId": str(tenant.pk),
        "created": f"{tenant.created_at.timestamp():.6f}",
        "deploymentType": tenant.deployment_model,
        "tenantSafeName": tenant.schema_name,
    }


class IsOperatorOrSupportForReads(IsOperatorOrSupportReadOnly):
    """tenant-info is a POST that only reads: support may call it."""

    def has_permission(self, request, view):
        return _role(request) in (roles.OPERATOR, roles.SUPPORT)


class SeedTenantsView(APIView):
    permission_classes = [IsOperatorOrSupportReadOnly]

    @extend_schema(responses=SeedTenant(many=True), tags=["seed"])
    def get(self, request):
        return Response([seed_tenant(t) for t in selectors.tenant_list().order_by("created_at")])


class OnboardingBody(StrictSerializer):
    tenantName = serializers.CharField(max_length=100)  # noqa: N815 (the seed's field names)
    deploymentType = serializers.ChoiceField(choices=DeploymentModel.values)  # noqa: N815
    adminEmail = serializers.EmailField(required=False)  # noqa: N815


class SeedOnboardingView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(request=OnboardingBody, responses={202: SeedTenant}, tags=["seed"])
    def post(self, request):
        body = OnboardingBody(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        tier = Tier.objects.filter(
            deployment_model=data["deploymentType"], is_default_for_model=True
        ).first()
        if tier is None:
            raise ApplicationError(
                "No default tier for this deployment type.",
                fields={"deploymentType": ["No default tier is configured for it."]},
            )
        tenant = services.tenant_onboard(
            name=data["tenantName"],
            slug=slugify(data["tenantName"].replace("_", "-"))[:50].strip("-"),
            tier=tier.name,
            admin_email=data.get("adminEmail", ""),
            actor=request.user,
        )
        return Response(seed_tenant(tenant), status=status.HTTP_202_ACCEPTED)


class DeleteBody(StrictSerializer):
    tenantName = serializers.CharField()  # noqa: N815
    tenantId = serializers.UUIDField()  # noqa: N815


class SeedDeleteView(APIView):
    permission_classes = [IsOperator]

    @extend_schema(request=DeleteBody, responses={202: SeedTenant}, tags=["seed"])
    def post(self, request):
        body = DeleteBody(data=request.data)
        body.is_valid(raise_exception=True)
        tenant = selectors.tenant_get(tenant_id=body.validated_data["tenantId"])
        # Both must name the same tenant: a mistyped id cannot delete someone else.
        if tenant is None or tenant.name != body.validated_data["tenantName"]:
            raise NotFound()
        tenant = services.tenant_offboard(tenant=tenant, actor=request.user)
        return Response(seed_tenant(tenant), status=status.HTTP_202_ACCEPTED)


class InfoBody(StrictSerializer):
    tenantId = serializers.UUIDField()  # noqa: N815


def _resource(logical, physical, rtype, rstatus, when, drift="NOT_CHECKED") -> dict:
    return {
        "LogicalResourceId": logical,
        "PhysicalResourceId": physical,
        "ResourceType": rtype,
        "LastUpdatedTimestamp": str(when),
        "ResourceStatus": rstatus,
        "DriftInformation": {"StackResourceDriftStatus": drift},
    }


def tenant_resources(tenant) -> list[dict]:
    """What provisioning created for the tenant, as CloudFormation stack resources."""
    done = {
        "provisioning": "CREATE_IN_PROGRESS",
        "failed": "CREATE_FAILED",
        "offboarding": "DELETE_IN_PROGRESS",
        "deleted": "DELETE_COMPLETE",
    }
    rstatus = done.get(tenant.status, "CREATE_COMPLETE")
    when = tenant.updated_at
    out = [
        _resource("TenantSchema", tenant.schema_name, "Custom::PostgresSchema", rstatus, when),
        _resource(
            "TenantConfigItem",
            f"TENANT#{tenant.pk}",
            "Custom::DynamoDBItem",
            rstatus,
            when,
            "IN_SYNC" if tenant.synced_version >= tenant.version else "MODIFIED",
        ),
    ]
    for domain in tenant.domains.all():
        out.append(_resource("TenantDomain", domain.domain, "Custom::TenantDomain", rstatus, when))
    for i, url in enumerate(tenant.delivery_queues):
        if url == tenant.silo_queue_url:
            out.append(_resource("SiloDeliveryQueue", url, "AWS::SQS::Queue", rstatus, when))
        else:
            out.append(
                _resource(
                    f"SharedDeliveryQueue{i}", url, "Custom::SharedQueueAssignment", rstatus, when
                )
            )
    return out


class SeedTenantInfoView(APIView):
    permission_classes = [IsOperatorOrSupportForReads]

    @extend_schema(request=InfoBody, responses=SeedResource(many=True), tags=["seed"])
    def post(self, request):
        body = InfoBody(data=request.data)
        body.is_valid(raise_exception=True)
        tenant = selectors.tenant_get(tenant_id=body.validated_data["tenantId"])
        if tenant is None:
            raise NotFound()
        return Response(tenant_resources(tenant))
