"""Secrets that travel in URLs, masked before a URL reaches a log line.

Plain regular expressions (no Django): the web server's access log (portal/gunicorn_conf.py)
runs them in gunicorn, outside Django, and the logging filter (core/logging.py) inside it.
"""

import re

# Paths whose last part is a bearer secret: an invitation link's token.
SECRET_PATHS = re.compile(r"(/invitations/)[^/\s\"?]+")
# Query parameters whose value is a secret (?token=…, ?api_key=…, &signature=…), whether the
# text starts at the query string (gunicorn's QUERY_STRING) or holds a whole URL.
SECRET_QUERY_VALUES = re.compile(
    r"((?:^|[?&])[\w.-]*(?:token|secret|signature|password|key)[\w.-]*=)[^&\s\"#]*",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """The text with invitation tokens in paths and secret query values replaced."""
    text = SECRET_PATHS.sub(r"\1[redacted]", text)
    return SECRET_QUERY_VALUES.sub(r"\1[redacted]", text)


def contains_secret(text: str) -> bool:
    return bool(SECRET_PATHS.search(text) or SECRET_QUERY_VALUES.search(text))
