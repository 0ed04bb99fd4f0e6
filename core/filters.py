"""Query-string filters that answer a 400 for what PostgreSQL would refuse with a 500."""

from datetime import timedelta

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField

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
