"""gunicorn settings of `make run` and of `bench/load.py` (a starting point for production).

    gunicorn -c python:portal.gunicorn_conf portal.wsgi

Database connections are bounded. Django opens at most one connection per thread that serves
a request and, with CONN_MAX_AGE > 0, keeps it open for that thread's next request (closing it
after CONN_MAX_AGE seconds, or at once when it broke). A gthread worker serves requests from a
fixed pool of `threads`, so the web tier never holds more than

    WEB_WORKERS × WEB_THREADS  connections (default 3 × 4 = 12)

and gunicorn refuses to start when that product exceeds WEB_DB_MAX_CONNECTIONS (default 16),
the share of PostgreSQL's `max_connections` (100 by default) given to the web tier. The rest
goes to the Celery worker (its concurrency, + 1), beat (1), management commands and psql.
Requests beyond the thread pool wait in the listen backlog instead of opening connections.
(runserver, by contrast, opens a thread and a connection per request and leaves idle
connections behind: that is how six clients once exhausted PostgreSQL.) No `max_requests`:
recycling a worker would briefly run the old and the new side by side, doubling the bound.
"""

import os
import traceback

from gunicorn import glogging
from prometheus_client import multiprocess

from core.logging import LOG_CONTEXT_KEY, ContextFilter, json_formatter, plain_formatter
from core.redact import redact

bind = f"{os.environ.get('WEB_HOST', '127.0.0.1')}:{os.environ.get('WEB_PORT', '8000')}"
worker_class = "gthread"
workers = int(os.environ.get("WEB_WORKERS", "3"))
threads = int(os.environ.get("WEB_THREADS", "4"))
db_connection_bound = int(os.environ.get("WEB_DB_MAX_CONNECTIONS", "16"))
if workers * threads > db_connection_bound:
    raise SystemExit(
        f"WEB_WORKERS × WEB_THREADS = {workers * threads} database connections, above "
        f"WEB_DB_MAX_CONNECTIONS = {db_connection_bound}: lower one or raise the bound "
        "(and PostgreSQL's max_connections with it)."
    )

timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
backlog = 2048
accesslog = os.environ.get("WEB_ACCESS_LOG", "-")
errorlog = "-"
# The path only (no query string), the status, the size and the time in ms.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'


class RedactingLogger(glogging.Logger):
    """gunicorn's own lines in the application's format (core/logging.py): one JSON object a
    line (unless LOG_FORMAT=plain) with `request_id`, `tenant` and `user`, so that web.log, which
    holds both, reads as one stream. An access line takes them from the request
    (portal/middleware.py leaves them in the WSGI environ) and adds the method, path (no query
    string), status, size and duration as fields.

    Access lines carry no secret whatever the format: an invitation link's token is masked in
    every value (path, request line, Referer, headers), as are secret query values. gunicorn
    writes these lines itself, so Django's logging filter sees them only through this class."""

    def setup(self, cfg):
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                plain = os.environ.get("LOG_FORMAT", "json") == "plain"
                handler.setFormatter(plain_formatter() if plain else json_formatter())
                handler.addFilter(ContextFilter())

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            name: redact(value) if isinstance(value, str) else value
            for name, value in atoms.items()
        }

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        context = environ.get(LOG_CONTEXT_KEY) or {}
        fields = {
            "request_id": context.get("request_id") or _response_request_id(resp) or "-",
            "tenant": context.get("tenant") or "-",
            "user": context.get("user") or "-",
            "method": atoms.get("m"),
            "path": atoms.get("U"),
            "status": atoms.get("s"),
            "size": atoms.get("B"),
            "duration_ms": atoms.get("M"),
        }
        try:
            self.access_log.info(
                self.cfg.access_log_format, self.atoms_wrapper_class(atoms), extra=fields
            )
        except Exception:
            self.error(traceback.format_exc())


def _response_request_id(resp) -> str | None:
    """A response the middleware answered (an unknown host, say) still says its request id."""
    for name, value in getattr(resp, "headers", None) or []:
        if name.lower() == "x-request-id":
            return value
    return None


logger_class = RedactingLogger
proc_name = "portal-web"


def child_exit(server, worker):
    """prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR, portal/observability/metrics.py):
    a dead worker's live gauges leave the sums."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
