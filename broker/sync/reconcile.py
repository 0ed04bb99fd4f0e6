"""Reconciler and full resync: make DynamoDB match PostgreSQL for a tenant, and count drift.

Both hold the tenant's exclusive writer lock (relays wait), read what DynamoDB holds (the
tenant's partition and, through a sparse index, its APIKEY items), walk PostgreSQL in chunks,
and write only what differs, in BatchWriteItem calls of 25:

- missing: no item, or an item older than the object's version → written;
- altered: same version, different content (someone edited the table) → the object's version
  is bumped in PostgreSQL and the item written at the new version, so that later relay writes
  (newer versions) still pass their condition;
- ahead: the table holds a newer version than PostgreSQL (a restored database) → same repair;
- extra: a live item no object stands for → tombstoned at its version + 1.

A full pass (the periodic reconcile job over every tenant) reads the whole table first, in one
parallel Scan, instead of two Query calls per tenant: each tenant is then compared, under its
lock, with its part of that snapshot; only a tenant whose snapshot differs from PostgreSQL is
read again (its partition and API keys, under the lock) and repaired as above. A snapshot
that matches PostgreSQL under the lock needs no repair: versions only grow, so a relay write
after the Scan would have made PostgreSQL differ from it. What the snapshot can miss is an
item edited by hand between the Scan and the tenant's turn: the next pass finds it.

The per-item version condition is enforced here, against what was read under the lock,
instead of by DynamoDB: a conditional write costs one call per item (TransactWriteItems is
all-or-nothing and copies the table per call on the emulator), a batch write 1/25th of one.
The TENANT item is written with a DynamoDB condition as well (the relay writes it too).
"""

import hashlib
import json
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from django.db import connection
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, schema_context

from tenants.models import Tenant
from tenants.services import onboarding

from . import contract, dynamo, locks, mappings, registry
from .models import OutboxEntry, SyncJob, SyncState

logger = logging.getLogger(__name__)

CHUNK = 500
# BatchWriteItem calls in flight at once (the HTTP round trips overlap).
WRITERS = 4
SCAN_SEGMENTS = 4
COUNT_SCHEMAS = 500
LIVE_TENANT_STATUSES = ("active", "suspended")


def _plain(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(type(value))


def fingerprint(item: dict) -> bytes:
    """Content of an item as DynamoDB stores it, without `updated_at`."""
    stored = dynamo.deserialize(dynamo.serialize(item))
    stored.pop("updated_at", None)
    text = json.dumps(stored, sort_keys=True, default=_plain)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def _stored(item: dict) -> tuple[int, bytes, bool]:
    return int(item.get("version", 0)), fingerprint(item), bool(item.get("deleted"))


def _read_actual(tenant) -> dict:
    """(PK, SK) → (version, fingerprint, deleted) of what the table holds for the tenant."""
    items = dynamo.query_partition(contract.tenant_pk(tenant.pk))
    key_items = dynamo.query_index("apikeys-by-tenant", "apikey_tenant_id", str(tenant.pk))
    items.extend(dynamo.batch_get(key_items))
    return {(item["PK"], item["SK"]): _stored(item) for item in items}


def read_snapshot(tenants) -> dict:
    """tenant id → what _read_actual would return, for every tenant, from one parallel Scan
    of the table: the tenant's partition and the API key items naming it."""
    snapshot = {t.pk: {} for t in tenants}
    by_partition = {contract.tenant_pk(t.pk): t.pk for t in tenants}
    by_id = {str(t.pk): t.pk for t in tenants}
    for item in dynamo.scan_all(segments=SCAN_SEGMENTS):
        owner = by_id.get(item.get("apikey_tenant_id")) or by_partition.get(item["PK"])
        if owner is not None:
            snapshot[owner][(item["PK"], item["SK"])] = _stored(item)
    return snapshot


class _Drifted(Exception):
    """The snapshot differs from PostgreSQL: read the tenant's items again."""


def _sync_tenant_item(
    tenant, *, actual: dict, seen: set, counts: Counter, resync: bool, verify: bool = False
) -> None:
    """The TENANT item, written with a DynamoDB condition when it differs (or on a resync)."""
    want = contract.tenant_item(tenant)
    key = (want["PK"], want["SK"])
    seen.add(key)
    have = actual.get(key)
    kind = "missing" if resync else _classify(want, have)
    if kind and verify:
        raise _Drifted
    if kind in ("altered", "ahead"):
        new_version = max(tenant.version, have[0]) + 1
        Tenant.objects.filter(pk=tenant.pk).update(version=new_version)
        tenant.version = new_version
        want = contract.tenant_item(tenant)
    if kind:
        if not resync:
            counts[kind] += 1
        dynamo.put_versioned(want)
        Tenant.objects.filter(pk=tenant.pk, synced_version__lt=tenant.version).update(
            synced_version=tenant.version
        )
    counts["objects"] += 1


def _compare(object_type, obj, tenant, actual, seen, counts, pending, verify=False) -> list[dict]:
    """One object's items against what the table holds: the differing ones go to `pending`;
    an altered or newer item there bumps the object's version (all its items rewritten).
    Returns the object's items as they are now. With `verify` (against a snapshot) any
    difference raises _Drifted instead, before anything is written."""
    wants = contract.build_all(object_type, obj, tenant=tenant)
    haves = [actual.get((w["PK"], w["SK"])) for w in wants]
    kinds = [_classify(w, h) for w, h in zip(wants, haves, strict=True)]
    if verify and any(kinds):
        raise _Drifted
    seen.update((w["PK"], w["SK"]) for w in wants)
    bumped = [h[0] for h, k in zip(haves, kinds, strict=True) if k in ("altered", "ahead")]
    if bumped:
        obj.version = max(obj.version, *bumped) + 1
        type(obj).objects.filter(pk=obj.pk).update(version=obj.version)
        wants = contract.build_all(object_type, obj, tenant=tenant)
    for want, kind in zip(wants, kinds, strict=True):
        if kind:
            counts[kind] += 1
        if kind or bumped:
            pending.append(want)
    return wants


def sync_tenant(
    tenant, *, job: SyncJob | None = None, resync: bool = False, snapshot: dict | None = None
) -> Counter:
    """Makes one tenant's items match PostgreSQL; returns drift counts. Safe to run at any
    time, repeatedly.

    reconcile (default): read the table, compare, write only what differs, tombstone extras.
    With `snapshot` (the tenant's part of read_snapshot), compare with it first: when it
    matches, nothing is read or written; otherwise the tenant is read and repaired as usual.
    resync: write every object's item without reading first (the fast way to rebuild a
    partition); under the exclusive lock the table cannot hold a newer version of any of them
    than PostgreSQL, so this keeps every version guarantee. Extras are left to the reconciler.
    """
    if snapshot is not None and not resync:
        try:
            return _sync(tenant, job=job, resync=False, actual=snapshot)
        except _Drifted:
            logger.info("reconcile of tenant %s: the snapshot differs, reading again", tenant.pk)
    return _sync(tenant, job=job, resync=resync, actual=None)


def _sync(tenant, *, job, resync: bool, actual: dict | None) -> Counter:
    """sync_tenant's pass; `actual` given: a snapshot to verify (raises _Drifted on the
    first difference, before any write)."""
    verify = actual is not None
    counts = Counter()
    with locks.exclusive(tenant.pk):
        tenant = Tenant.objects.select_related("tier").get(pk=tenant.pk)
        if tenant.status not in LIVE_TENANT_STATUSES:
            counts["skipped_tenants"] += 1
            return counts
        if not verify:
            actual = {} if resync else _read_actual(tenant)
        seen = set()

        _sync_tenant_item(
            tenant, actual=actual, seen=seen, counts=counts, resync=resync, verify=verify
        )

        pending: list[dict] = []
        states: list[SyncState] = []
        # Verifying, the job's progress is counted once the tenant passed (a drifted tenant
        # is counted by the pass that repairs it).
        writer = _PipelinedWriter(counts=counts, job=None if verify else job)

        def flush():
            writer.submit(list(pending), list(states))
            pending.clear()
            states.clear()

        now = timezone.now()
        try:
            with schema_context(tenant.schema_name):
                for object_type, model in registry.MODELS.items():
                    for obj in model.objects.order_by("pk").iterator(chunk_size=CHUNK):
                        if resync:
                            wants = contract.build_all(object_type, obj, tenant=tenant)
                            pending.extend(w for w in wants if not w.get("deleted"))
                        else:
                            wants = _compare(
                                object_type, obj, tenant, actual, seen, counts, pending, verify
                            )
                        counts["objects"] += 1
                        states.append(
                            SyncState(
                                tenant_id=tenant.pk,
                                object_type=object_type,
                                object_id=str(obj.pk),
                                version=obj.version,
                                synced_version=obj.version,
                                synced_at=now,
                                item_keys=[
                                    [w["PK"], w["SK"]] for w in wants if not w.get("deleted")
                                ],
                            )
                        )
                        if len(states) >= CHUNK:
                            flush()
            _tombstone_extras(actual, seen, counts, pending, flush, verify=verify)
            flush()
        finally:
            writer.finish()
        if verify and job is not None:
            SyncJob.objects.filter(pk=job.pk).update(done=F("done") + writer.saved)
    counts["drift"] = sum(counts[k] for k in ("missing", "stale", "altered", "ahead", "extra"))
    logger.info("%s of tenant %s: %s", "resync" if resync else "reconcile", tenant.pk, dict(counts))
    return counts


def _tombstone_extras(actual, seen, counts, pending, flush, *, verify: bool) -> None:
    """Live items no object stands for: tombstoned at their version + 1."""
    for key, (version, _, deleted) in actual.items():
        if key not in seen and not deleted:
            if verify:
                raise _Drifted
            counts["extra"] += 1
            pending.append(contract.tombstone(pk=key[0], sk=key[1], version=version + 1))
            if len(pending) >= CHUNK:
                flush()


class _PipelinedWriter:
    """Writes one chunk's items (WRITERS BatchWriteItem calls in flight) while the caller
    reads and builds the next chunk from PostgreSQL; a chunk's sync states are saved once its
    items are written. At most two chunks are in memory."""

    def __init__(self, *, counts: Counter, job):
        self.counts, self.job = counts, job
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.in_flight = None  # (future, states)
        self.saved = 0  # sync states saved

    def submit(self, items: list[dict], states: list) -> None:
        self._settle()
        future = self.pool.submit(dynamo.batch_write, items, workers=WRITERS)
        self.in_flight = (future, states)

    def _settle(self) -> None:
        if self.in_flight is None:
            return
        future, states = self.in_flight
        self.in_flight = None
        self.counts["written"] += future.result()  # a failed write fails the run here
        if states:
            _save_states(states)
            self.saved += len(states)
        if self.job is not None:
            SyncJob.objects.filter(pk=self.job.pk).update(done=F("done") + len(states))

    def finish(self) -> None:
        try:
            self._settle()
        finally:
            self.pool.shutdown(wait=True)


def _classify(want: dict, have) -> str | None:
    """What is wrong with the stored item (None: nothing)."""
    if have is None:
        return None if want.get("deleted") else "missing"
    version, stored, _ = have
    if version < want["version"]:
        return "stale"
    if version > want["version"]:
        return "ahead"
    if stored != fingerprint(want):
        return "altered"
    return None


def _save_states(states: list[SyncState]) -> None:
    SyncState.objects.bulk_create(
        states,
        update_conflicts=True,
        unique_fields=["tenant", "object_type", "object_id"],
        update_fields=[
            "version",
            "synced_version",
            "synced_at",
            "item_keys",
            "last_error",
            "attempts",
            "updated_at",
        ],
    )


# One statement for many schemas (query_to_xml runs the count inside each, as in
# tenants/migrate.py): counting table by table was six round trips a tenant, ~50 s at 10,000.
_COUNT_SQL = """
SELECT coalesce(sum((xpath('/row/n/text()',
        query_to_xml(format(%(count)s, s.name), false, true, '')))[1]::text::bigint), 0)
FROM unnest(%(schemas)s::text[]) AS s(name)
JOIN pg_namespace n ON n.nspname = s.name
"""


def count_objects(schemas: list[str]) -> int:
    """The objects a job will walk: every synced model's rows in every schema, one query per
    500 schemas."""
    if not schemas:
        return 0
    tables = [m._meta.db_table for m in registry.MODELS.values()]
    # The tables are the models' own names; the schema is quoted by format's %I.
    parts = [f"(SELECT count(*) FROM %1$I.{t})" for t in tables]  # noqa: S608
    count = "SELECT " + " + ".join(parts) + " AS n"  # noqa: S608
    total = 0
    with connection.cursor() as cursor:
        # A statement holds a lock on every table it counted until it ends: 500 schemas of 5
        # tables stay well within the lock table (max_locks_per_transaction × connections).
        for start in range(0, len(schemas), COUNT_SCHEMAS):
            chunk = schemas[start : start + COUNT_SCHEMAS]
            cursor.execute(_COUNT_SQL, {"count": count, "schemas": chunk})
            total += int(cursor.fetchone()[0])
    return total


def job_create(*, kind: str, tenant=None, actor=None) -> SyncJob:
    """The one place a resync or reconcile job is created (run it with run_job)."""
    return SyncJob.objects.create(
        kind=kind,
        tenant=tenant,
        requested_by=actor if actor is not None and actor.is_authenticated else None,
    )


def _retry_waiting_changes(tenant) -> None:
    """The tenant's changes waiting out a backoff after a refused write are retried at the
    relay's next run: the resync just showed DynamoDB takes the tenant's items again, so its
    failing objects need not stay failing until their backoff ends."""
    now = timezone.now()
    OutboxEntry.objects.filter(tenant=tenant, available_at__gt=now).update(available_at=now)


def run_job(job_id) -> SyncJob | None:
    """Runs a resync or reconcile job to its end; a redelivered job starts over (harmless)."""
    job = SyncJob.objects.filter(pk=job_id).first()
    if job is None or job.status in ("done", "failed"):
        return job
    tenants = list(
        Tenant.objects.select_related("tier")
        .filter(status__in=LIVE_TENANT_STATUSES, tier__isnull=False)
        .exclude(schema_name=get_public_schema_name())
        .filter(**({"pk": job.tenant_id} if job.tenant_id else {}))
        .order_by("created_at")
    )
    total = count_objects([t.schema_name for t in tenants])
    SyncJob.objects.filter(pk=job.pk).update(
        status="running", total=total, done=0, started_at=timezone.now(), counts={}, error=""
    )
    counts, errors = Counter(), []
    resync = job.kind == "resync"
    # A pass over every tenant reads the table once (read_snapshot), not two calls a tenant.
    snapshot = read_snapshot(tenants) if not resync and not job.tenant_id else None
    for tenant in tenants:
        try:
            counts.update(
                sync_tenant(
                    tenant,
                    job=job,
                    resync=resync,
                    snapshot=snapshot.get(tenant.pk, {}) if snapshot is not None else None,
                )
            )
            # A tenant provisioned before ordered delivery gets its FIFO queues.
            if onboarding.ordered_queues_backfill(tenant):
                counts["ordered_queues_backfilled"] += 1
            # Lambda's event source mappings of the tenant's own queues: a missing or changed
            # one repaired, a refused one recorded (the tenant's sync status shows it).
            mapped = mappings.reconcile_tenant(tenant)
            counts.update({f"mappings_{k}": v for k, v in mapped.items() if v})
            _retry_waiting_changes(tenant)
        except Exception as exc:  # one tenant's failure does not stop the others
            logger.exception("sync job %s: tenant %s failed", job.pk, tenant.pk)
            counts["failed_tenants"] += 1
            errors.append(f"{tenant.slug}: {type(exc).__name__}: {exc}")
        counts["tenants"] += 1
        SyncJob.objects.filter(pk=job.pk).update(counts=dict(counts))
    SyncJob.objects.filter(pk=job.pk).update(
        status="failed" if errors else "done",
        error="\n".join(errors)[:5000],
        counts=dict(counts),
        finished_at=timezone.now(),
    )
    job.refresh_from_db()
    return job
