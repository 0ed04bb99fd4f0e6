"""Building blocks shared by the operator and tenant APIs.

Input is strict by default: every request body goes through a `StrictSerializer` (or has
`StrictInputMixin` mixed in), which refuses fields it does not know and values of the wrong
JSON type before any field sees them. DRF's fields coerce (`0` → `"0"` for a CharField, `0` →
`False` for a BooleanField, `"5"` → `5` for an IntegerField); here a wrong type is a 400.
"""

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.exceptions import ValidationError as ApiValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.relations import ManyRelatedField, PrimaryKeyRelatedField

_STRING = "Expected a string."
_INTEGER = "Expected an integer."
_NUMBER = "Expected a number."
_BOOLEAN = "Expected true or false."
_LIST = "Expected a list."
_OBJECT = "Expected an object."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice_types(field) -> tuple[type, ...]:
    kinds = {type(key) for key in field.choices}
    return tuple(kinds) if kinds and str not in kinds else (str,)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Scalar fields: the JSON types each takes (first match wins; BooleanField is no IntegerField).
_SCALARS = (
    (serializers.BooleanField, lambda v: isinstance(v, bool), _BOOLEAN),
    (serializers.IntegerField, _is_int, _INTEGER),
    (serializers.FloatField | serializers.DecimalField, _is_number, _NUMBER),
)


def _list_errors(field, value):
    if not isinstance(value, list):
        return [_LIST]
    child = getattr(field, "child", None)
    if child is None:  # a list of nested serializers or related objects checks its own items
        return None
    errors = {i: e for i, v in enumerate(value) if (e := type_errors(child, v))}
    return errors or None


def _object_errors(field, value):
    if not isinstance(value, dict):
        return [_OBJECT]
    if not isinstance(field, serializers.DictField):
        return None  # a nested serializer checks its own fields
    errors = {k: e for k, v in value.items() if (e := type_errors(field.child, v))}
    return errors or None


def _has_integer_pk(field) -> bool:
    model = getattr(field.queryset, "model", None)
    return model is not None and isinstance(model._meta.pk, models.IntegerField)


def type_errors(field, value):
    """What is wrong with the JSON type of `value` for `field`, or None. Nested lists and
    objects are checked element by element; a nested serializer checks its own fields."""
    if value is None or isinstance(field, serializers.JSONField):
        return None  # allow_null (or its absence) is the field's own rule
    for classes, accepts, message in _SCALARS:
        if isinstance(field, classes):
            return None if accepts(value) else [message]
    if isinstance(
        field,
        serializers.ListSerializer
        | ManyRelatedField
        | serializers.ListField
        | serializers.MultipleChoiceField,
    ):
        return _list_errors(field, value)
    if isinstance(field, serializers.DictField | serializers.Serializer):
        return _object_errors(field, value)
    if isinstance(field, serializers.ChoiceField):
        return None if isinstance(value, _choice_types(field)) else [_STRING]
    if isinstance(field, PrimaryKeyRelatedField) and _has_integer_pk(field):
        return None if _is_int(value) or isinstance(value, str) else [_INTEGER]
    # CharField and its kin (e-mail, slug, URL, regex), UUID, date and time fields, related
    # objects by UUID or slug: strings.
    return None if isinstance(value, str) else [_STRING]


class StrictInputMixin:
    """Refuses fields it does not know (a typo in a request body is an error, not a no-op)
    and values of another JSON type than the field's (never coerced)."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name: f for name, f in self.fields.items() if not f.read_only}
            errors = {name: ["Unknown field."] for name in sorted(set(data) - set(writable))}
            for name, value in data.items():
                if name in writable and (problem := type_errors(writable[name], value)):
                    errors[name] = problem
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class StrictSerializer(StrictInputMixin, serializers.Serializer):
    """The base of every request body of the API."""


def query_choice(request, name: str, choices) -> str | None:
    """The query parameter `name` if given, one of `choices`; absent → None, anything else
    (an empty value too) → 400. A filter that ignored a value it does not know would answer
    everything as if it matched."""
    value = request.query_params.get(name)
    if value is None:
        return None
    if value not in choices:
        raise ApiValidationError({name: [f"One of: {', '.join(choices)}."]})
    return value


class StrictFormatNegotiation(DefaultContentNegotiation):
    """DRF's content negotiation, except that a `?format=` given empty is refused (404) like
    any format the view does not render, as the schema's enum for it says; DRF alone ignored
    it and answered 200 (schemathesis found it: tests/portal/test_api_contract.py)."""

    def select_renderer(self, request, renderers, format_suffix=None):
        name = self.settings.URL_FORMAT_OVERRIDE
        if format_suffix is None and name and request.query_params.get(name) == "":
            raise Http404("No renderer for an empty format.")
        return super().select_renderer(request, renderers, format_suffix)


class Pagination(PageNumberPagination):
    """`?page=` and `?page_size=` (1 to 200): anything else in them is a 400, not a default."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not re.fullmatch(r"[1-9][0-9]{0,5}", raw) or int(raw) > self.max_page_size:
            raise ApiValidationError(
                {self.page_size_query_param: [f"An integer from 1 to {self.max_page_size}."]}
            )
        return int(raw)

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if raw == "last" or re.fullmatch(r"[1-9][0-9]{0,8}", raw):
            return raw
        raise ApiValidationError({self.page_query_param: ["A page number from 1."]})

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
            elif parameter["name"] == self.page_query_param:
                parameter["schema"].update(minimum=1)
        return parameters


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
