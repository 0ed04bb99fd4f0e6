"""Request context carried by log lines and audit events (set by the web middleware)."""

import contextvars

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> contextvars.Token:
    return _request_id.set(value)


def reset_request_id(token: contextvars.Token) -> None:
    _request_id.reset(token)


_user_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("user_id", default=None)


def current_user_id() -> str | None:
    return _user_id.get()


def set_user_id(value: str | None) -> contextvars.Token:
    return _user_id.set(value)


def reset_user_id(token: contextvars.Token) -> None:
    _user_id.reset(token)
