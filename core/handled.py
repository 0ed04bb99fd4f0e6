"""An error the code handles and goes on from (a page that stays up without the data plane's
table, one tenant's failure in a job over every tenant) is never silent: a log line with its
traceback, and a count on /metrics, `broker_handled_errors_total{where}` (`where` names the
place, a bounded set: never a tenant, user or URL)."""

import logging

from prometheus_client import Counter

HANDLED_ERRORS = Counter(
    "broker_handled_errors_total",
    "Errors handled without failing the request or job, by where they were handled.",
    ["where"],
)


def handled(logger: logging.Logger, where: str, message: str, *args, level=logging.ERROR) -> None:
    """Call from an `except` block: logs `message` with the exception and counts it."""
    logger.log(level, message, *args, exc_info=True)
    HANDLED_ERRORS.labels(where).inc()
