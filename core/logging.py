"""The one logging filter and the one JSON line, for every line the web and the worker write:
the application's, Django's, and gunicorn's own access and error lines
(portal/gunicorn_conf.py), so that a log file is one JSON object a line.

Every line carries `request_id`, `tenant` (the schema) and `user` ("-" where there is none),
and no secret: API keys, signing secrets, bearer tokens, password-like pairs, invitation
tokens in paths and secret query values are masked (core/redact.py), in the message and in
the extras a structured formatter prints.
"""

import logging

from django.conf import settings
from django.db import connection
from pythonjsonlogger.json import JsonFormatter

from core.context import current_request_id, current_user_id
from core.redact import redact

CONTEXT = ("request_id", "tenant", "user")
# Where the web middleware leaves a request's context in the WSGI environ, for the server's
# access line, which is written after the request's own context is gone.
LOG_CONTEXT_KEY = "portal.log_context"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(tenant)s %(user)s"
PLAIN_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [tenant=%(tenant)s req=%(request_id)s] %(message)s"
)


def json_formatter() -> JsonFormatter:
    return JsonFormatter(
        JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}
    )


def plain_formatter() -> logging.Formatter:
    return logging.Formatter(PLAIN_FORMAT)


def _tenant() -> str:
    # gunicorn's master logs before (or without) Django's settings: no schema to name then.
    if not settings.configured:
        return "-"
    return getattr(connection, "schema_name", None) or "-"


class ContextFilter(logging.Filter):
    """Stamps the request id, tenant and user of the running request or task on a record that
    does not carry them already (gunicorn's access lines bring their own), and masks secrets."""

    def filter(self, record):
        context = {
            "request_id": current_request_id() or "-",
            "tenant": _tenant() if not hasattr(record, "tenant") else None,
            "user": current_user_id() or "-",
        }
        # django.request logs "Not Found" and errors after the middleware has returned.
        request = getattr(record, "request", None)
        if request is not None and not isinstance(request, str):
            if context["request_id"] == "-":
                context["request_id"] = getattr(request, "id", None) or "-"
            user = getattr(request, "user", None)
            if context["user"] == "-" and user is not None and user.is_authenticated:
                context["user"] = str(user.pk)
        for name in CONTEXT:
            if getattr(record, name, None) in (None, ""):
                setattr(record, name, context[name] or "-")
        _mask(record)
        return True


def _mask(record) -> None:
    message = record.getMessage()
    masked = redact(message)
    if masked != message:
        record.msg, record.args = masked, None
    # Structured formatters also print extras: django.request's `request` among them.
    for name, value in list(vars(record).items()):
        if name in _STANDARD or name in ("msg", "args"):
            continue
        text = value if isinstance(value, str) else None
        if text is None and hasattr(value, "get_full_path"):
            text = repr(value)
        if text is not None and redact(text) != text:
            setattr(record, name, redact(text))


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}
