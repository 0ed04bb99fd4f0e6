"""Errors of the ingress, in the portal's error shape: {"error": {"code", "message", "fields"}}.

The shape is copied from `core.errors.error_body` (the data plane cannot import `core`); a test
holds the two equal.
"""

# code → HTTP status
STATUS = {
    "not_found": 404,
    "method_not_allowed": 405,
    "not_authenticated": 401,
    "forbidden": 403,
    "parse_error": 400,
    "invalid": 400,
    "schema_mismatch": 400,
    "too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "quota_exceeded": 429,
    "unavailable": 503,
}


def error_body(code: str, message: str, fields=None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


class IngressError(Exception):
    """A refused request or event. `retry_after` (seconds) becomes a Retry-After header."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        fields=None,
        retry_after: int | None = None,
        retryable: bool | None = None,
    ):
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.retry_after = retry_after
        self._retryable = retryable

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def body(self) -> dict:
        return error_body(self.code, self.message, self.fields)

    @property
    def retryable(self) -> bool:
        """Worth trying again later, unchanged: an SQS producer's message stays in its queue.
        A disabled producer or a suspended tenant may come back; a malformed event never."""
        if self._retryable is not None:
            return self._retryable
        return self.code in ("rate_limited", "quota_exceeded", "unavailable")
