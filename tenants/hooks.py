"""How tenants reaches the layers above it without importing them.

tenants sits below broker (core ← tenants ← broker ← portal), yet a tenant's lifecycle has
effects that broker owns: its TENANT item (and every item that copies its quotas) is mirrored
to DynamoDB by broker's outbox relay, its items are tombstoned by broker's sync on
offboarding, member changes land in the tenant's audit log (a broker table in the tenant
schema), and the offboarding export reads the tenant's tables, which are broker's. broker registers one function per hook in its `AppConfig.ready()`; tenants calls the
hooks by name. A missing registration is a configuration error, never a silent no-op.
"""

from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured

# name → what the registered function does (and is called with)
HOOKS = {
    "tenant_changed": "queue the TENANT item (and, when quotas changed, every item carrying "
    "quotas) for the relay, in the caller's transaction: (tenant, *, quotas_changed)",
    "tenant_publish": "write the TENANT item now, through the relay, inside the caller's "
    "transaction; raises if DynamoDB refuses: (tenant)",
    "tenant_sync_summaries": "where each tenant's DynamoDB mirror stands, from the sync's own "
    "records (status ok/pending/failing/not_mirrored, pending changes, failing objects, last "
    "error): (tenants) -> {tenant pk: dict}",
    "tenant_tear_down": "tombstone every DynamoDB item of the tenant and delete its held events; "
    "returns how many items it tombstoned: (tenant)",
    "tenant_audit": "write an audit row in the tenant's own log: (tenant, *, actor, action, "
    "object_type, object_id, before=None, after=None)",
    "tenant_export_objects": "every row of the tenant's schema as serialized data, secrets left "
    "out, for the offboarding export; [] once the schema is gone: (tenant) -> list",
    "tenant_purge_dead_letters": "delete the tenant's dead letters (payloads included, before "
    "the offboarding export is written) and its quarantined DLQ messages; returns a report "
    "dict: (tenant)",
}

_registered: dict[str, Callable] = {}


def register(**functions: Callable) -> None:
    for name, function in functions.items():
        if name not in HOOKS:
            raise ImproperlyConfigured(f"Unknown tenant hook {name!r}; known: {', '.join(HOOKS)}")
        _registered[name] = function


def _hook(name: str) -> Callable:
    try:
        return _registered[name]
    except KeyError:
        raise ImproperlyConfigured(
            f"No {name!r} hook registered: broker and broker.sync must be installed apps."
        ) from None


def tenant_changed(tenant, *, quotas_changed: bool = False) -> None:
    _hook("tenant_changed")(tenant, quotas_changed=quotas_changed)


def tenant_publish(tenant) -> None:
    _hook("tenant_publish")(tenant)


def tenant_sync_summaries(tenants) -> dict:
    return _hook("tenant_sync_summaries")(tenants)


def tenant_tear_down(tenant) -> int:
    return _hook("tenant_tear_down")(tenant)


def tenant_audit(tenant, **kwargs) -> None:
    _hook("tenant_audit")(tenant, **kwargs)


def tenant_export_objects(tenant) -> list:
    return _hook("tenant_export_objects")(tenant)


def tenant_purge_dead_letters(tenant) -> dict:
    return _hook("tenant_purge_dead_letters")(tenant)
