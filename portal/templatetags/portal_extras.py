import json

from django import template

register = template.Library()


@register.filter
def pretty_json(value) -> str:
    """A JSON value as indented JSON (filters, payloads), not Python's repr."""
    if value in (None, "", {}):
        return "{}"
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def words(name: str) -> str:
    """`daily_event_quota` → "Daily event quota"."""
    return str(name).replace("_", " ").capitalize()
