"""Configuration as code: export, plan, apply, revisions, diff, rollback (docs/config-as-code.md).

Roles: every member reads revisions and diffs; developers and admins export and plan; only
admins apply and roll back.
"""

import yaml
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import StrictSerializer
from core.errors import ApplicationError
from tenants import roles
from tenants.permissions import IsAnyMember, IsTenantMember

from ..configcode import plan as config_plan
from ..configcode import revisions, schema
from ..configcode.models import ConfigRevision
from ._common import ERRORS


class YAMLRenderer(BaseRenderer):
    """`Accept: application/yaml` (DRF keeps `?format=` for itself)."""

    media_type = "application/yaml"
    format = "yaml"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        return yaml.safe_dump(
            data, sort_keys=False, allow_unicode=True, default_flow_style=False
        ).encode()


RENDERERS = [JSONRenderer, YAMLRenderer]


def _role_in(*allowed):
    class HasRole(BasePermission):
        def has_permission(self, request, view):
            return roles.resolve_role(getattr(request, "_request", request)) in allowed

    return HasRole


Planner = _role_in(roles.ADMIN, roles.DEVELOPER)
Admin = _role_in(roles.ADMIN)

DOCUMENT = schema.OPENAPI
CHANGE = inline_serializer(
    "ConfigChange",
    {
        "action": serializers.ChoiceField(choices=["create", "update", "delete"]),
        "object_type": serializers.CharField(),
        "name": serializers.CharField(),
        "previous_name": serializers.CharField(required=False),
        "fields": serializers.DictField(help_text="{field: [before, after]}"),
        "notes": serializers.ListField(child=serializers.CharField()),
        "traffic": serializers.DictField(
            required=False,
            help_text="A changed filter: {sample, old_filter_matches, new_filter_matches, "
            "unreadable, leaves_out}, or {error}.",
        ),
    },
)
PLAN = inline_serializer(
    "ConfigPlan",
    {
        "base_revision": serializers.IntegerField(),
        "hash": serializers.CharField(),
        "changes": serializers.ListField(child=CHANGE),
    },
)
APPLIED = inline_serializer(
    "ConfigApplied",
    {
        "revision": serializers.IntegerField(),
        "changes": serializers.IntegerField(),
        "secrets": serializers.ListField(
            child=serializers.DictField(),
            help_text="New API keys and signing secrets, shown once: "
            "{object_type, name, field, value}.",
        ),
    },
)


class ApplySerializer(StrictSerializer):
    document = serializers.JSONField()
    plan = serializers.CharField(max_length=64, help_text="The plan's hash.")


class RollbackSerializer(StrictSerializer):
    revision = serializers.IntegerField(min_value=1)
    dry_run = serializers.BooleanField(required=False, default=False)
    plan = serializers.CharField(
        max_length=64, required=False, help_text="The dry run's hash: 409 if it went stale."
    )


class ExportView(APIView):
    """The tenant's configuration as one document: JSON, or YAML (`Accept: application/yaml`)."""

    permission_classes = [Planner]
    renderer_classes = RENDERERS

    @extend_schema(responses={200: DOCUMENT, **ERRORS})
    def get(self, request):
        return Response(config_plan.document.export_document())


class PlanView(APIView):
    """What applying the document in the body would change (nothing is saved)."""

    permission_classes = [IsTenantMember, Planner]

    @extend_schema(request={"application/json": DOCUMENT}, responses={200: PLAN, **ERRORS})
    def post(self, request):
        return Response(config_plan.make_plan(request.data))


class ApplyView(APIView):
    """Makes a plan's changes in one transaction; 409 when the configuration changed since."""

    permission_classes = [IsTenantMember, Admin]

    @extend_schema(request=ApplySerializer, responses={200: APPLIED, **ERRORS})
    def post(self, request):
        body = ApplySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = config_plan.apply(
            body.validated_data["document"], plan=body.validated_data["plan"], actor=request.user
        )
        return Response(result)


class RollbackView(APIView):
    """Back to a revision: the plan (`dry_run`), or its apply as a new revision."""

    permission_classes = [IsTenantMember, Planner]

    @extend_schema(
        request=RollbackSerializer,
        responses={
            200: inline_serializer(
                "ConfigRollback",
                {
                    "base_revision": serializers.IntegerField(required=False),
                    "hash": serializers.CharField(required=False),
                    "changes": serializers.JSONField(help_text="The plan's changes, or a count."),
                    "revision": serializers.IntegerField(required=False),
                    "secrets": serializers.ListField(child=serializers.DictField(), required=False),
                },
            ),
            **ERRORS,
        },
    )
    def post(self, request):
        body = RollbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if not data["dry_run"] and not Admin().has_permission(request, self):
            self.permission_denied(request, message="Only tenant admins roll back.")
        return Response(
            config_plan.rollback(
                revision=data["revision"],
                dry_run=data["dry_run"],
                plan=data.get("plan"),
                actor=request.user,
            )
        )


class RevisionSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_email", help_text="The actor's e-mail.")

    class Meta:
        model = ConfigRevision
        fields = ["number", "created_at", "actor", "summary", "objects_changed"]
        read_only_fields = fields


class RevisionListView(generics.ListAPIView):
    """Every revision, newest first."""

    permission_classes = [IsAnyMember]
    serializer_class = RevisionSerializer
    filter_backends = []

    def get_queryset(self):
        return ConfigRevision.objects.order_by("-number")

    @extend_schema(responses={200: RevisionSerializer(many=True), **ERRORS})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class RevisionDocumentView(APIView):
    """The configuration document as revision `number` left it."""

    permission_classes = [IsAnyMember]
    renderer_classes = RENDERERS

    @extend_schema(responses={200: DOCUMENT, **ERRORS})
    def get(self, request, number: int):
        if not ConfigRevision.objects.filter(number=number).exists():
            raise NotFound()
        return Response(revisions.document_at(number))


def _revision_param(request, name: str, default: int | None, head: int) -> int:
    raw = request.query_params.get(name)
    if raw is None and default is not None:
        return default
    if raw is None or not raw.isdigit() or not 0 <= int(raw) <= head:
        raise ApplicationError(
            "Invalid input.", fields={name: [f"A revision from 0 (empty) to {head}."]}
        )
    return int(raw)


class DiffView(APIView):
    """What changed between two revisions (0 is the empty configuration)."""

    permission_classes = [IsAnyMember]

    @extend_schema(
        parameters=[
            OpenApiParameter("from", int, required=True),
            OpenApiParameter("to", int, description="Default: the latest revision."),
        ],
        responses={
            200: inline_serializer(
                "ConfigDiff",
                {
                    "from": serializers.IntegerField(),
                    "to": serializers.IntegerField(),
                    "added": serializers.ListField(child=serializers.DictField()),
                    "removed": serializers.ListField(child=serializers.DictField()),
                    "changed": serializers.ListField(child=serializers.DictField()),
                },
            ),
            **ERRORS,
        },
    )
    def get(self, request):
        head = revisions.head()
        start = _revision_param(request, "from", None, head)
        end = _revision_param(request, "to", head, head)
        return Response({"from": start, "to": end, **config_plan.diff_revisions(start, end)})
