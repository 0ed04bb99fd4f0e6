"""What broker's API viewsets share: the error schema and the viewset bases."""

from rest_framework import mixins, serializers, viewsets

from core.api import ERROR, SafeLookupMixin, StrictSerializer
from core.idempotency import IdempotentMixin
from tenants.permissions import IsTenantMember

ERRORS = {400: ERROR, 401: ERROR, 403: ERROR, 404: ERROR, 409: ERROR}


def length_of(model, field: str) -> int:
    """The column's length: a body's field is refused at the API at the size the table holds,
    so a limit is stated once (the model, or the service's constant), never in a serializer."""
    return model._meta.get_field(field).max_length


class ReadOnlyViewSet(
    SafeLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """List and retrieve from `get_queryset` only; a malformed id is a 404 like an unknown one.
    Writes are the subclass's own actions."""


class IdempotentViewSet(IdempotentMixin, ReadOnlyViewSet):
    """A read-only viewset whose POST actions honour an `Idempotency-Key`."""


class ConfigViewSet(IdempotentViewSet):
    """Viewers read; developers and admins write. PATCH changes the fields it names."""

    permission_classes = [IsTenantMember]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    idempotency_redact = ("api_key", "signing_secret")

    def write_serializer(self, cls, *, partial=False):
        body = cls(data=self.request.data, partial=partial)
        body.is_valid(raise_exception=True)
        return body.validated_data


class RotateSerializer(StrictSerializer):
    grace_seconds = serializers.IntegerField(
        min_value=0,
        max_value=30 * 86_400,
        required=False,
        help_text="How long the keys in use stay valid (default: the platform's grace period).",
    )
