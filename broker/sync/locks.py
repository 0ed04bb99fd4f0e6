"""Per-tenant writer locks (PostgreSQL advisory locks).

The relay writes with a version condition on every item and may run many at once: it takes the
tenant's lock in shared mode, and only tries (a locked tenant's rows wait a moment). A full
resync or a reconcile writes a tenant's items in batches without a per-item condition (it
checks versions itself, against what it read), so it holds the lock exclusively: no relay can
write a newer version of the tenant's items between its read and its write.
"""

from core import locks

NAME = "dynamo-writer"


def try_shared_in_transaction(tenant_id) -> bool:
    return locks.try_xact_lock_shared(NAME, tenant_id)


def exclusive(tenant_id):
    """Waits for the relays writing this tenant to finish, then keeps them out."""
    return locks.session_lock(NAME, tenant_id)
