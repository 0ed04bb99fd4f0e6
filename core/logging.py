import logging

from django.db import connection

from core.context import current_request_id
from core.redact import contains_secret, redact


class ContextFilter(logging.Filter):
    """Stamps every log record with the active tenant schema and request id."""

    def filter(self, record):
        record.schema = getattr(connection, "schema_name", "-")
        record.request_id = current_request_id() or "-"
        return True


class RedactSecretPathsFilter(logging.Filter):
    """Logs (access lines, "Not Found: <path>" warnings) never carry an invitation token or a
    secret query value (core/redact.py): a log reader could otherwise accept the invitation
    in the invitee's place."""

    def filter(self, record):
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        # Structured formatters also print extras: django.request's `request` among them.
        for name, value in list(vars(record).items()):
            if name in _STANDARD or name in ("msg", "args"):
                continue
            text = value if isinstance(value, str) else None
            if text is None and hasattr(value, "get_full_path"):
                text = repr(value)
            if text is not None and contains_secret(text):
                setattr(record, name, redact(text))
        return True


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}
