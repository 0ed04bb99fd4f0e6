"""PostgreSQL advisory locks: the one helper every app uses.

A lock is named by `name` and an optional `key` (a tenant id, a job id, an ARN), hashed to
the 64-bit id PostgreSQL locks on. Session locks are released on exit, or when the
connection dies (a killed worker never leaves one behind); transaction locks at commit or
rollback.
"""

import contextlib
import hashlib

from django.db import connection


def lock_id(name: str, key=None) -> int:
    text = name if key is None else f"{name}:{key}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


def _select(sql: str, name: str, key) -> bool | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, [lock_id(name, key)])
        return cursor.fetchone()[0]


@contextlib.contextmanager
def try_session_lock(name: str, key=None):
    """Yields True when this session took the lock, False when someone else holds it."""
    acquired = _select("SELECT pg_try_advisory_lock(%s)", name, key)
    try:
        yield acquired
    finally:
        if acquired:
            _select("SELECT pg_advisory_unlock(%s)", name, key)


@contextlib.contextmanager
def session_lock(name: str, key=None):
    """Waits for the lock, holds it for the block."""
    _select("SELECT pg_advisory_lock(%s)", name, key)
    try:
        yield
    finally:
        _select("SELECT pg_advisory_unlock(%s)", name, key)


def xact_lock(name: str, key=None) -> None:
    """Waits for the lock; holds it until the current transaction ends."""
    _select("SELECT pg_advisory_xact_lock(%s)", name, key)


def try_xact_lock_shared(name: str, key=None) -> bool:
    """Takes the lock in shared mode until the transaction ends; False when held exclusively."""
    return _select("SELECT pg_try_advisory_xact_lock_shared(%s)", name, key)
