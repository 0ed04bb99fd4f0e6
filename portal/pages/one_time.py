"""A secret shown once on the next page (a new API key, a rotated signing secret).

It crosses a redirect, so it is kept between two requests, but never readable from the
session table: the session holds it encrypted, and the key is a short-lived cookie of the
browser that asked for it. Whoever reads django_session (a backup, a support query) gets
ciphertext; the page that shows it drops both halves; unshown, the cookie and the token
expire after TTL_SECONDS.
"""

import json

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

SESSION_KEY = "one_time_secret"
COOKIE = "one_time_key"
TTL_SECONDS = 120


def stash(request, response, *, label: str, value: str) -> None:
    key = Fernet.generate_key()
    token = Fernet(key).encrypt(json.dumps({"label": label, "value": value}).encode())
    request.session[SESSION_KEY] = token.decode()
    response.set_cookie(
        COOKIE,
        key.decode(),
        max_age=TTL_SECONDS,
        path="/",
        httponly=True,
        secure=settings.SESSION_COOKIE_SECURE,
        samesite="Strict",
    )


def take(request) -> dict | None:
    """The stashed secret once (None if none, expired or not this browser's); the session
    forgets it at once, `forget_key` drops the cookie on the response that shows it."""
    token = request.session.pop(SESSION_KEY, None)
    key = request.COOKIES.get(COOKIE)
    if not token or not key:
        return None
    try:
        return json.loads(Fernet(key.encode()).decrypt(token.encode(), ttl=TTL_SECONDS))
    except (InvalidToken, ValueError):
        return None


def forget_key(request, response):
    if COOKIE in request.COOKIES:
        response.delete_cookie(COOKIE, path="/", samesite="Strict")
    return response
