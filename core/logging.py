import logging

from django.db import connection

from core.context import current_request_id


class ContextFilter(logging.Filter):
    """Stamps every log record with the active tenant schema and request id."""

    def filter(self, record):
        record.schema = getattr(connection, "schema_name", "-")
        record.request_id = current_request_id() or "-"
        return True
