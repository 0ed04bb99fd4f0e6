"""The tenant-level hooks broker.sync registers for tenants (tenants/hooks.py).

The relay is the one writer of a tenant's items, the TENANT item included: a tenant change
queues an outbox row in the change's transaction, like any configuration change. A quota
change (tier or overrides) also re-queues every item that copies quotas (producers: rate,
burst, event size; consumers: concurrency), each at a new version so that the conditional
write replaces the stale item. Offboarding tombstones the whole partition under the tenant's
writer lock, and deletes the held events of the tenant's ordered subscriptions.
"""

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from broker.functions.shared import held
from broker.models import Consumer, Producer

from . import contract, dynamo, locks, mappings, relay, tasks
from .models import OutboxEntry

# The objects whose items carry a copy of the tenant's quotas (contract.producer_item,
# contract.consumer_item).
QUOTA_CARRIERS = ((contract.PRODUCER, Producer), (contract.CONSUMER, Consumer))


def queue(tenant, *, quotas_changed: bool = False) -> list[OutboxEntry]:
    """Outbox rows for the TENANT item (and the quota carriers), in the caller's transaction."""
    assert transaction.get_connection().in_atomic_block, "call inside the change's transaction"
    entries = [
        OutboxEntry(
            tenant=tenant,
            object_type=contract.TENANT,
            object_id=str(tenant.pk),
            version=tenant.version,
        )
    ]
    if quotas_changed and schema_exists(tenant.schema_name):
        now = timezone.now()
        with schema_context(tenant.schema_name):
            for object_type, model in QUOTA_CARRIERS:
                model.objects.update(version=F("version") + 1, updated_at=now)
                entries.extend(
                    OutboxEntry(
                        tenant=tenant, object_type=object_type, object_id=str(pk), version=version
                    )
                    for pk, version in model.objects.values_list("pk", "version")
                )
    created = OutboxEntry.objects.bulk_create(entries)
    transaction.on_commit(tasks.kick_relay)
    return created


def publish(tenant) -> None:
    """The TENANT item written now by the relay, inside the caller's transaction (provisioning:
    when DynamoDB refuses, the whole step rolls back and the tenant is marked failed)."""
    queue(tenant)
    relay.relay_now(tenant, contract.TENANT, str(tenant.pk))


def tear_down(tenant) -> int:
    """Tombstones every live item of the tenant (its partition and its APIKEY items), the
    TENANT item last, holding the tenant's writer lock so no relay writes meanwhile; then
    deletes the held events of its subscriptions (`held.discard_tenant`). Returns how many
    items it tombstoned."""
    with locks.exclusive(tenant.pk):
        # Nothing of this tenant is to be mirrored any more (the relay skips it from now on).
        OutboxEntry.objects.filter(tenant=tenant).delete()
        # Lambda stops reading the tenant's queues (silo, SQS producers' sources) first.
        mappings.remove_tenant(tenant)
        count = 0
        items = dynamo.query_partition(contract.tenant_pk(tenant.pk))
        key_items = dynamo.query_index("apikeys-by-tenant", "apikey_tenant_id", str(tenant.pk))
        items.extend(dynamo.batch_get(key_items))
        for item in sorted(items, key=lambda i: i["SK"] == contract.TENANT_SK):
            if item.get("deleted"):
                continue
            version = int(item.get("version", 0)) + 1
            if item["SK"] == contract.TENANT_SK:
                version = max(version, tenant.version)
            if dynamo.put_versioned(
                contract.tombstone(pk=item["PK"], sk=item["SK"], version=version)
            ):
                count += 1
        # The held events of its ordered subscriptions go with the tenant (data-plane table).
        held.discard_tenant(str(tenant.pk))
        return count
