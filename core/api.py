"""Building blocks shared by the operator and tenant APIs."""

from django.core.exceptions import ValidationError
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not know: a typo in a request body is an error, not a no-op."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name for name, f in self.fields.items() if not f.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


class SafeLookupMixin:
    """A malformed id in the URL is a 404 like any other unknown object, not a 400 or 500."""

    def get_object(self):
        try:
            return super().get_object()
        except (ValidationError, ValueError, TypeError):
            raise NotFound()


# The error shape of core/errors.py, as the API schema documents it.
ERROR = OpenApiResponse(
    response=inline_serializer(
        "Error",
        {
            "error": inline_serializer(
                "ErrorBody",
                {
                    "code": serializers.CharField(),
                    "message": serializers.CharField(),
                    "fields": serializers.DictField(),
                },
            )
        },
    ),
    description='`{"error": {"code", "message", "fields"}}`; `fields` maps a field to messages.',
)
