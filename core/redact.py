"""Secrets masked before text reaches a log line: those that travel in URLs (an invitation
link's token, secret query values) and those a message may quote (API keys, signing secrets,
bearer tokens, password-like pairs).

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


# Producer API keys, signing secrets, bearer tokens and password-like key=value pairs.
SECRET_VALUES = re.compile(
    r"(?P<key>\bebk_|\bwhsec_)[A-Za-z0-9+/=_-]{6,}"
    r"|(?P<bearer>\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}"
    r"|(?P<pair>\b(?:password|secret|token|api_key|authorization)[\"']?\s*[:=]\s*[\"']?)(?:Bearer\s+)?[^\s\"',}]+",
    re.IGNORECASE,
)


def _keep_prefix(match) -> str:
    prefix = match.group("key") or match.group("bearer") or match.group("pair") or ""
    return f"{prefix}[redacted]"


def redact(text: str) -> str:
    """The text with every secret above replaced by `[redacted]` (what names it is kept)."""
    text = SECRET_PATHS.sub(r"\1[redacted]", text)
    text = SECRET_QUERY_VALUES.sub(r"\1[redacted]", text)
    return SECRET_VALUES.sub(_keep_prefix, text)
