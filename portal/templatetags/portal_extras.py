import json

from django import template

register = template.Library()


@register.filter
def pretty_json(value) -> str:
    """A JSON value as indented JSON (filters, payloads), not Python's repr."""
    if value in (None, "", {}):
        return "{}"
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


# Written as initials wherever they appear in a name.
ACRONYMS = {"api": "API", "dlq": "DLQ", "sqs": "SQS", "url": "URL", "id": "ID", "ms": "ms"}


@register.filter
def words(name: str) -> str:
    """`daily_event_quota` → "Daily event quota", `dlq_retention_days` → "DLQ retention
    days", `api_requests_per_minute` → "API requests per minute"."""
    parts = str(name).split("_")
    out = [ACRONYMS.get(p.lower(), p.lower()) for p in parts if p]
    if out and out[0] == out[0].lower():
        out[0] = out[0].capitalize()
    return " ".join(out)
