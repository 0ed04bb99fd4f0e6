"""Query-string filters that answer a 400 for what PostgreSQL would refuse with a 500."""

from datetime import timedelta

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter

# PostgreSQL refuses a time zone displacement of 16 hours or more ("out of range").
MAX_UTC_OFFSET = timedelta(hours=15, minutes=59)


class SafeIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time whose UTC offset is within ±15:59."""

    default_error_messages = {
        "offset": "The UTC offset must be between -15:59 and +15:59.",
    }

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        offset = parsed.utcoffset()
        if offset is not None and abs(offset) > MAX_UTC_OFFSET:
            raise forms.ValidationError(self.error_messages["offset"], code="offset")
        return parsed


class SafeIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = SafeIsoDateTimeField


class StrictFilterBackend(DjangoFilterBackend):
    """django-filter reads an empty value, or a boolean it does not know (`?enabled=1.5`), as
    "no filter" and answers everything: here both are a 400, as is any value its form refuses."""

    def get_filterset(self, request, queryset, view):
        filterset = super().get_filterset(request, queryset, view)
        if filterset is None:
            return None
        errors = {}
        for name, values in request.query_params.lists():
            declared = filterset.filters.get(name)
            if declared is None:
                continue
            if any(v == "" for v in values):
                errors[name] = ["A value is required."]
            elif isinstance(declared, django_filters.BooleanFilter) and any(
                v not in ("true", "false") for v in values
            ):
                errors[name] = ["true or false."]
        if errors:
            raise ValidationError(errors)
        return filterset


class StrictOrderingFilter(OrderingFilter):
    """An `?ordering=` naming a field the list cannot be ordered by is a 400 (DRF would fall
    back to the default order without a word)."""

    def get_ordering(self, request, queryset, view):
        raw = request.query_params.get(self.ordering_param)
        if raw is not None:
            terms = [term.strip() for term in raw.split(",")]
            valid = {
                name for name, _ in self.get_valid_fields(queryset, view, {"request": request})
            }
            wrong = [t for t in terms if t.lstrip("-") not in valid]
            if wrong:
                raise ValidationError(
                    {self.ordering_param: [f"One or more of: {', '.join(sorted(valid))}."]}
                )
        return super().get_ordering(request, queryset, view)
