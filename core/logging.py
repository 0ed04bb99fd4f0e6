import logging
import re

from django.db import connection

from core.context import current_request_id


class ContextFilter(logging.Filter):
    """Stamps every log record with the active tenant schema and request id."""

    def filter(self, record):
        record.schema = getattr(connection, "schema_name", "-")
        record.request_id = current_request_id() or "-"
        return True


# Paths whose last part is a bearer secret: an invitation link's token.
_SECRET_PATHS = re.compile(r"(/invitations/)[^/\s\"?]+")


class RedactSecretPathsFilter(logging.Filter):
    """Logs (access lines, "Not Found: <path>" warnings) never carry an invitation token: a
    log reader could otherwise accept the invitation in the invitee's place."""

    def filter(self, record):
        message = record.getMessage()
        redacted = _SECRET_PATHS.sub(r"\1[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        # Structured formatters also print extras: django.request's `request` among them.
        for name, value in list(vars(record).items()):
            if name in _STANDARD or name in ("msg", "args"):
                continue
            text = value if isinstance(value, str) else None
            if text is None and hasattr(value, "get_full_path"):
                text = repr(value)
            if text is not None and _SECRET_PATHS.search(text):
                setattr(record, name, _SECRET_PATHS.sub(r"\1[redacted]", text))
        return True


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}
