"""What every log line carries, web and worker alike: request id, tenant (schema) and user,
and secrets masked out of the message (JSON output is configured in settings.LOGGING)."""

import logging
import re

from django.db import connection

from core.context import current_request_id, current_user_id

# Producer API keys, signing secrets, bearer tokens and password-like key=value pairs.
_SECRETS = re.compile(
    r"(?P<key>\bebk_|\bwhsec_)[A-Za-z0-9+/=_-]{6,}"
    r"|(?P<bearer>\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|(?P<pair>\b(?:password|secret|token|api_key|authorization)[\"']?\s*[:=]\s*[\"']?)(?:Bearer\s+)?[^\s\"',}]+",
    re.IGNORECASE,
)


def mask(text: str) -> str:
    def _sub(match):
        prefix = match.group("key") or match.group("bearer") or match.group("pair") or ""
        return f"{prefix}[redacted]"

    return _SECRETS.sub(_sub, text)


class LogContextFilter(logging.Filter):
    def filter(self, record):
        record.tenant = getattr(connection, "schema_name", None) or "-"
        record.request_id = current_request_id() or "-"
        record.user = current_user_id() or "-"
        # django.request logs "Not Found" and errors after the middleware has returned.
        request = getattr(record, "request", None)
        if request is not None and not isinstance(request, str):
            if record.request_id == "-":
                record.request_id = getattr(request, "id", None) or "-"
            user = getattr(request, "user", None)
            if record.user == "-" and user is not None and user.is_authenticated:
                record.user = str(user.pk)
        message = record.getMessage()
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
