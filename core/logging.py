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
        return True
