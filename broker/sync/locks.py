"""Per-tenant writer locks (PostgreSQL advisory locks).

The relay writes with a version condition on every item and may run many at once: it takes the
tenant's lock in shared mode, and only tries (a locked tenant's rows wait a moment). A full
resync or a reconcile writes a tenant's items in batches without a per-item condition (it
checks versions itself, against what it read), so it holds the lock exclusively: no relay can
write a newer version of the tenant's items between its read and its write.
"""

import contextlib
import hashlib

from django.db import connection


def _lock_id(tenant_id) -> int:
    digest = hashlib.sha256(f"dynamo-writer:{tenant_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def try_shared_in_transaction(tenant_id) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock_shared(%s)", [_lock_id(tenant_id)])
        return cursor.fetchone()[0]


@contextlib.contextmanager
def exclusive(tenant_id):
    """Waits for the relays writing this tenant to finish, then keeps them out."""
    lock_id = _lock_id(tenant_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [lock_id])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_id])
