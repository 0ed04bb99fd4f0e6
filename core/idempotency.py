"""`Idempotency-Key` on POST: a retried request gets the first response, not a second object.

The first response to (caller, path, key) is kept in the Redis cache for
IDEMPOTENCY_TTL_SECONDS (24 h; cache keys carry the tenant schema). The same key with the same
body answers it again with `Idempotent-Replayed: true`; with another body → 409. While the
first request runs, a second one → 409. Responses below 500 are kept, 4xx errors included (a
retry of a refused create is refused the same way, even if the state changed in between); a
500 is not, so a retry runs again. Authentication, permission and throttling errors happen
before the key is looked at and are never kept.

One-time secrets (a new API key, a signing secret) are removed before the response is
stored — keeping them in Redis for a day would defeat "shown once" — so a replay answers them
as null.
"""

import hashlib
import json

from django.conf import settings
from django.core.cache import cache
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from core.errors import ApplicationError, error_body

HEADER = "Idempotency-Key"
LOCK_SECONDS = 60


def _body_hash(data) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _valid_key(key: str) -> bool:
    return 1 <= len(key) <= 255 and all(33 <= ord(c) <= 126 for c in key)


class IdempotentMixin:
    """For DRF viewsets: POST actions named in `idempotent_actions` honour the header."""

    idempotent_actions: tuple[str, ...] = ("create",)
    idempotency_redact: tuple[str, ...] = ()

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        key = request.headers.get(HEADER)
        if (
            key is not None
            and request.method == "POST"
            and getattr(self, "action", None) in self.idempotent_actions
        ):
            handler = self.post
            self.post = lambda req, *a, **kw: self._idempotent(handler, key, req, *a, **kw)

    def _idempotent(self, handler, key: str, request, *args, **kwargs):
        if not _valid_key(key):
            raise ApplicationError(
                "Idempotency-Key: 1 to 255 printable ASCII characters.",
                code="invalid_idempotency_key",
            )
        scope = f"{request.user.pk}|{request.path}|{key}"
        cache_key = "idempotency:" + hashlib.sha256(scope.encode()).hexdigest()
        lock_key = cache_key + ":lock"
        body = _body_hash(request.data)
        stored = cache.get(cache_key)
        if stored is None:
            if not cache.add(lock_key, 1, timeout=LOCK_SECONDS):
                return self._conflict(
                    "idempotency_in_progress", "A request with this Idempotency-Key is running."
                )
            # The first request may have stored its response and released the lock between
            # our read and our lock: read again, or the handler would run twice.
            stored = cache.get(cache_key)
            if stored is None:
                try:
                    return self._run_and_store(handler, cache_key, body, request, *args, **kwargs)
                finally:
                    cache.delete(lock_key)
            cache.delete(lock_key)
        if stored["body"] != body:
            return self._conflict(
                "idempotency_key_reused",
                "This Idempotency-Key was used with another request body.",
            )
        return Response(
            stored["data"], status=stored["status"], headers={"Idempotent-Replayed": "true"}
        )

    def _run_and_store(self, handler, cache_key: str, body: str, request, *args, **kwargs):
        try:
            response = handler(request, *args, **kwargs)
        except Exception as exc:
            # A handled error (validation, ApplicationError, 404…) becomes its 4xx response
            # here so that it is kept like any other answer; anything else is re-raised (500).
            response = self.handle_exception(exc)
        if response.status_code < 500:
            data = json.loads(JSONRenderer().render(response.data) or b"null")
            if isinstance(data, dict):
                for field in self.idempotency_redact:
                    if field in data:
                        data[field] = None
            cache.set(
                cache_key,
                {"body": body, "status": response.status_code, "data": data},
                timeout=settings.IDEMPOTENCY_TTL_SECONDS,
            )
        return response

    def _conflict(self, code: str, message: str) -> Response:
        return Response(error_body(code, message), status=409)
