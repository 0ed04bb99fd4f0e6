"""Sync status: the tenant's view (tenant host) and the operator's (public host)."""

import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import Pagination, StrictSerializer, query_choice
from core.errors import ApplicationError
from tenants.models import Tenant
from tenants.permissions import IsAnyMember, IsOperator, IsOperatorOrSupportReadOnly

from . import selectors
from .models import SyncJob, SyncJobKind
from .services import sync_job_start

STATUSES = (selectors.IN_SYNC, selectors.PENDING, selectors.FAILING)


class SyncObjectSerializer(serializers.Serializer):
    object_type = serializers.CharField()
    object_id = serializers.CharField()
    name = serializers.CharField()
    version = serializers.IntegerField()
    synced_version = serializers.IntegerField()
    synced_at = serializers.DateTimeField(allow_null=True)
    status = serializers.ChoiceField(choices=STATUSES)
    pending_since = serializers.DateTimeField(allow_null=True)
    attempts = serializers.IntegerField()
    last_error = serializers.CharField()
    deleted = serializers.BooleanField()


class TenantSyncStatusView(APIView):
    """Where this tenant's configuration stands in DynamoDB: a summary (in sync / pending /
    failing, oldest pending age) and every object, filterable by `status` and `object_type`."""

    permission_classes = [IsAnyMember]

    @extend_schema(
        parameters=[
            OpenApiParameter("status", enum=STATUSES),
            OpenApiParameter("object_type", str),
        ],
        responses=inline_serializer(
            "TenantSyncStatus",
            {
                "summary": serializers.DictField(),
                "count": serializers.IntegerField(),
                "next": serializers.CharField(allow_null=True),
                "previous": serializers.CharField(allow_null=True),
                "results": SyncObjectSerializer(many=True),
            },
        ),
    )
    def get(self, request):
        summary, objects = selectors.tenant_sync_status(request.tenant)
        wanted = query_choice(request, "status", STATUSES)
        if wanted:
            objects = [o for o in objects if o["status"] == wanted]
        kind = request.query_params.get("object_type")
        if kind:
            objects = [o for o in objects if o["object_type"] == kind]
        order = {selectors.FAILING: 0, selectors.PENDING: 1, selectors.IN_SYNC: 2}
        objects.sort(key=lambda o: (order[o["status"]], o["object_type"], o["name"]))
        paginator = Pagination()
        page = paginator.paginate_queryset(objects, request, view=self)
        response = paginator.get_paginated_response(SyncObjectSerializer(page, many=True).data)
        response.data = {"summary": summary, **response.data}
        return response


class SyncJobSerializer(serializers.ModelSerializer):
    tenant = serializers.UUIDField(source="tenant_id", allow_null=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = SyncJob
        fields = [
            "id",
            "kind",
            "tenant",
            "status",
            "total",
            "done",
            "progress",
            "counts",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_progress(self, job) -> float:
        if job.status == "done":
            return 1.0
        return round(min(job.done / job.total, 1.0), 4) if job.total else 0.0


class PlatformSyncView(APIView):
    """Operators: every tenant's sync lag and failing objects (`?tenant=<id>` for one)."""

    permission_classes = [IsOperatorOrSupportReadOnly]

    def get(self, request):
        tenants = Tenant.objects.exclude(schema_name="public").exclude(status="deleted")
        tenant_id = request.query_params.get("tenant")
        if tenant_id:
            # A malformed id is the caller's mistake (400); an unknown one is a 404 below. Any
            # other error is the server's and propagates: logged, counted, a 500.
            try:
                tenant_id = uuid.UUID(tenant_id)
            except ValueError:
                raise ApplicationError("Invalid filter.", fields={"tenant": ["Not a tenant id."]})
            tenants = tenants.filter(pk=tenant_id)
        tenants = list(tenants.order_by("slug"))
        if tenant_id and not tenants:
            raise NotFound()
        return Response(
            {
                "tenants": selectors.platform_sync_overview(tenants),
                "failing_objects": selectors.failing_objects(
                    tenant_id=tenants[0].pk if tenant_id else None
                ),
                "jobs": SyncJobSerializer(SyncJob.objects.all()[:10], many=True).data,
            }
        )


class ResyncSerializer(StrictSerializer):
    tenant = serializers.UUIDField(
        required=False, allow_null=True, help_text="One tenant; all live tenants when absent."
    )
    kind = serializers.ChoiceField(choices=SyncJobKind.choices, default=SyncJobKind.RESYNC)


class ResyncView(APIView):
    """Operators: rewrite a tenant's (or every tenant's) items from PostgreSQL, as a job."""

    permission_classes = [IsOperator]

    @extend_schema(request=ResyncSerializer, responses={202: SyncJobSerializer})
    def post(self, request):
        body = ResyncSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tenant = None
        if body.validated_data.get("tenant"):
            tenant = (
                Tenant.objects.exclude(schema_name="public")
                .filter(pk=body.validated_data["tenant"])
                .first()
            )
            if tenant is None:
                raise NotFound()
        job = sync_job_start(kind=body.validated_data["kind"], tenant=tenant, actor=request.user)
        job.refresh_from_db()
        return Response(SyncJobSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class SyncJobView(APIView):
    permission_classes = [IsOperatorOrSupportReadOnly]

    @extend_schema(responses=SyncJobSerializer)
    def get(self, request, job_id):
        job = SyncJob.objects.filter(pk=job_id).first()
        if job is None:
            raise NotFound()
        return Response(SyncJobSerializer(job).data)
