"""The outbox relay: mirrors committed configuration changes into DynamoDB.

Rows are claimed with FOR UPDATE SKIP LOCKED, so any number of relays drain the outbox
together without waiting on each other. Each object is written from its current state (a late
relay writes the newest version, never the payload of the change that queued it) with the
condition `attribute_not_exists(PK) OR version < :v`. A failed write leaves its rows in the
outbox with a backoff (`available_at`) and never holds up other objects or tenants.
"""

import json
import logging
import random
from collections import defaultdict
from datetime import timedelta

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import schema_context

from broker.functions.shared import held
from core import aws
from tenants.models import Tenant

from . import contract, dynamo, locks, mappings, registry
from .models import OutboxEntry, SyncState

# Every object type the relay writes (the rest, if any, are dropped).
RELAYED = frozenset(contract.OBJECT_TYPES)

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
# A tenant being resynced or reconciled is written by that job alone; its rows wait this long.
LOCKED_TENANT_DELAY = timedelta(seconds=2)
GONE = ("offboarding", "deleted")


def backoff(attempts: int) -> timedelta:
    """Exponential with full jitter, capped."""
    ceiling = min(settings.SYNC_RELAY_MAX_BACKOFF_SECONDS, 2 ** min(attempts, 16))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))  # noqa: S311


def build_items(tenant, object_type: str, object_id: str, rows) -> list[dict]:
    """The items that make DynamoDB match the object's current state (inside its schema).

    The object's item at its current version when it exists; tombstones for the keys the
    queued changes made obsolete (a deleted object, a route whose event type changed), each
    at the version of the change that made it obsolete."""
    items, current = [], set()
    if object_type == contract.TENANT:
        obj = tenant  # the tenant itself (public schema), as the caller read it
    else:
        obj = registry.MODELS[object_type].objects.filter(pk=object_id).first()
    if obj is not None:
        for item in contract.build_all(object_type, obj, tenant=tenant):
            items.append(item)
            current.add((item["PK"], item["SK"]))
    stale: dict[tuple[str, str], int] = {}
    for row in rows:
        for pk, sk in row.stale_keys:
            if (pk, sk) not in current:
                stale[(pk, sk)] = max(stale.get((pk, sk), 0), row.version)
    items.extend(contract.tombstone(pk=pk, sk=sk, version=v) for (pk, sk), v in stale.items())
    return items


def _record_successes(successes: list[tuple]) -> None:
    """One upsert for the batch: (tenant_id, object_type, object_id, version, items).

    A state never goes back: an older success (a slow relay) does not overwrite a newer one."""
    if not successes:
        return
    table = SyncState._meta.db_table
    now = timezone.now()
    values, params = [], []
    for tenant_id, object_type, object_id, version, items in successes:
        live = [[i["PK"], i["SK"]] for i in items if not i.get("deleted")]
        deleted = bool(items) and not live
        values.append("(%s, %s, %s, %s, %s, %s, %s::jsonb, %s, '', 0, %s)")
        params += [tenant_id, object_type, object_id, version, version, now]
        params += [json.dumps(live), deleted, now]
    sql = f"""
        INSERT INTO {table} (tenant_id, object_type, object_id, version, synced_version,
            synced_at, item_keys, deleted, last_error, attempts, updated_at)
        VALUES {", ".join(values)}
        ON CONFLICT (tenant_id, object_type, object_id) DO UPDATE SET
            version = GREATEST({table}.version, EXCLUDED.version),
            synced_version = EXCLUDED.synced_version,
            synced_at = EXCLUDED.synced_at,
            item_keys = EXCLUDED.item_keys,
            deleted = EXCLUDED.deleted,
            last_error = '',
            attempts = 0,
            updated_at = EXCLUDED.updated_at
        WHERE {table}.synced_version <= EXCLUDED.synced_version
    """  # noqa: S608 (the table name is ours; values are parameters)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    for tenant_id, object_type, _, _, items in successes:
        if object_type == contract.TENANT and items and not items[0].get("deleted"):
            Tenant.objects.filter(pk=tenant_id, synced_version__lt=items[0]["version"]).update(
                synced_version=items[0]["version"]
            )


def _record_failure(tenant_id, object_type, object_id, version, error: str) -> None:
    state, _ = SyncState.objects.get_or_create(
        tenant_id=tenant_id,
        object_type=object_type,
        object_id=object_id,
        defaults={"version": version},
    )
    SyncState.objects.filter(pk=state.pk).update(
        version=max(state.version, version),
        last_error=error[:2000],
        attempts=F("attempts") + 1,
        updated_at=timezone.now(),  # update() skips auto_now: the time of this refusal
    )


def after_write(tenant, object_type: str, object_id: str, items: list[dict]) -> None:
    """What follows an object's items written: its event source mappings
    (`mappings.sync_items`), and a deleted subscription's held events discarded with it
    (`held.discard`: its HELD# items and HELDSUM row in the data-plane table; docs/data-plane.md,
    "Holding a key"). Both are idempotent: a failed or repeated sync of the object runs them
    again. Raises on refusal (the object's sync then fails and is retried)."""
    mappings.sync_items(tenant, items)
    if object_type == contract.SUBSCRIPTION and all(i.get("deleted") for i in items):
        held.discard(str(tenant.pk), str(object_id))


def _sync_group(tenant, object_type, object_id, rows) -> tuple[list | None, str]:
    try:
        with schema_context(tenant.schema_name):
            items = build_items(tenant, object_type, object_id, rows)
        for item in items:
            dynamo.put_versioned(item)  # False = already newer there: fine
        after_write(tenant, object_type, object_id, items)
    except (BotoCoreError, ClientError, aws.MappingError) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # a bug must not wedge the outbox: back off, show it, go on
        logger.exception("relay failed to build %s %s", object_type, object_id)
        return None, f"{type(exc).__name__}: {exc}"
    return items, ""


def drain_once(*, batch_size: int = BATCH_SIZE) -> dict:
    """Claims one batch of ready rows and relays them. Returns counts (0 claimed = empty)."""
    counts = {"claimed": 0, "synced": 0, "failed": 0, "deferred": 0}
    with schema_context("public"), transaction.atomic():
        rows = list(
            OutboxEntry.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant__tier")
            .filter(available_at__lte=timezone.now())
            .order_by("id")[:batch_size]
        )
        counts["claimed"] = len(rows)
        if not rows:
            return counts
        groups = defaultdict(list)
        for row in rows:
            groups[(row.tenant_id, row.object_type, row.object_id)].append(row)
        tenants = {row.tenant_id: row.tenant for row in rows}
        done, retry, successes = [], [], []
        writable: dict = {}
        for (tenant_id, object_type, object_id), group in groups.items():
            tenant = tenants.get(tenant_id)
            if tenant is None or tenant.status in GONE or object_type not in RELAYED:
                done.extend(r.pk for r in group)  # offboarding tombstones everything
                continue
            if tenant_id not in writable:
                writable[tenant_id] = locks.try_shared_in_transaction(tenant_id)
            if not writable[tenant_id]:
                counts["deferred"] += len(group)
                OutboxEntry.objects.filter(pk__in=[r.pk for r in group]).update(
                    available_at=timezone.now() + LOCKED_TENANT_DELAY
                )
                continue
            items, error = _sync_group(tenant, object_type, object_id, group)
            if items is not None:
                counts["synced"] += 1
                done.extend(r.pk for r in group)
                version = max(r.version for r in group)
                successes.append((tenant_id, object_type, object_id, version, items))
            else:
                counts["failed"] += 1
                retry.append((group, error))
                _record_failure(
                    tenant_id, object_type, object_id, max(r.version for r in group), error
                )
        _record_successes(successes)
        OutboxEntry.objects.filter(pk__in=done).delete()
        now = timezone.now()
        for group, error in retry:
            attempts = max(r.attempts for r in group) + 1
            OutboxEntry.objects.filter(pk__in=[r.pk for r in group]).update(
                attempts=attempts, last_error=error[:2000], available_at=now + backoff(attempts)
            )
            logger.warning(
                "relay: %s %s of tenant %s failed (attempt %s): %s",
                group[0].object_type,
                group[0].object_id,
                group[0].tenant_id,
                attempts,
                error,
            )
    return counts


def relay_now(tenant, object_type: str, object_id: str) -> list[dict]:
    """Relays one object's queued rows at once, inside the caller's transaction.

    Raises when DynamoDB refuses: the caller's transaction (rows included) then rolls back."""
    assert transaction.get_connection().in_atomic_block, "call inside the change's transaction"
    rows = list(
        OutboxEntry.objects.select_for_update(of=("self",)).filter(
            tenant_id=tenant.pk, object_type=object_type, object_id=object_id
        )
    )
    with schema_context(tenant.schema_name):
        items = build_items(tenant, object_type, object_id, rows)
    for item in items:
        dynamo.put_versioned(item)
    after_write(tenant, object_type, object_id, items)
    version = max((r.version for r in rows), default=0)
    _record_successes([(tenant.pk, object_type, object_id, version, items)])
    OutboxEntry.objects.filter(pk__in=[r.pk for r in rows]).delete()
    return items


def drain(*, max_batches: int = 50, batch_size: int = BATCH_SIZE) -> dict:
    """Drains until the outbox has no ready rows (or max_batches, to bound one task's time)."""
    total = defaultdict(int)
    for _ in range(max_batches):
        counts = drain_once(batch_size=batch_size)
        for key, value in counts.items():
            total[key] += value
        if counts["claimed"] < batch_size or counts["synced"] == 0:
            break
    connection.set_schema_to_public()
    return dict(total)
