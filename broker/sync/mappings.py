"""Lambda event source mappings of a tenant's own queues: what AWS needs so that the functions
read them. The template maps the shared delivery queues; these are the rest:

- a silo tenant's delivery queue and its FIFO queue (ordered subscriptions) → the egress
  (EGRESS_FUNCTION_ARN), MaximumConcurrency = the tenant's delivery concurrency;
- each SQS producer's source queue → the SQS producer function (SQS_PRODUCER_FUNCTION_ARN).

A mapping is enabled while the tenant is active (and, for a source queue, its producer is
enabled): suspending a tenant disables them, so its queues keep their messages unread; deleting
the producer or offboarding the tenant deletes them. They are written where the configuration
is mirrored: the relay calls `sync_items` after writing an object's items, so a refused
mapping fails that object's sync (retried with backoff, shown in the tenant's sync status as
any refused write is), and the reconciler calls `reconcile_tenant`, which repairs a missing or
changed mapping and records its state as the `mapping` object of the tenant's sync states.
"""

import logging

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context

from broker.functions.shared import contract as shared_contract
from core import aws

from . import contract, registry
from .models import SyncState

logger = logging.getLogger(__name__)

MAPPING = "mapping"  # the sync-state object type of a tenant's mappings
SOURCE_CONCURRENCY = 2  # AWS's least MaximumConcurrency; one producer's queue needs no more


def _function_arn(setting: str, output: str, what: str) -> str:
    """The function ARN a setting holds; unset is an error people see, never a skip."""
    value = getattr(settings, setting)
    if not value:
        raise aws.MappingError(
            f"{setting} is not set: {what} cannot be mapped (set it from the data plane "
            f"stack's {output} output)."
        )
    return value


def _egress_arn() -> str:
    return _function_arn("EGRESS_FUNCTION_ARN", "EgressFunctionArn", "the silo queue")


def _source_arn() -> str:
    return _function_arn(
        "SQS_PRODUCER_FUNCTION_ARN", "SqsProducerFunctionArn", "SQS producers' queues"
    )


def silo_mapping(tenant) -> str | None:
    """Creates or updates the silo queue's mapping; None for a pool tenant."""
    if not tenant.silo_queue_url:
        return None
    return aws.mapping_ensure(
        queue_arn=aws.queue_arn(tenant.silo_queue_url),
        function_arn=_egress_arn(),
        max_concurrency=tenant.effective_quotas()["delivery_concurrency"],
        enabled=tenant.status == "active",
    )


def silo_ordered_mapping(tenant) -> str | None:
    """A silo tenant's FIFO queue (created here when missing: tenants onboarded before ordered
    delivery have none) and its mapping, as the silo queue's; None for a pool tenant."""
    if not tenant.silo_queue_url:
        return None
    url = aws.ordered_queue_create(name=aws.silo_ordered_queue_name(tenant.pk))
    return aws.mapping_ensure(
        queue_arn=aws.queue_arn(url),
        function_arn=_egress_arn(),
        max_concurrency=tenant.effective_quotas()["delivery_concurrency"],
        enabled=tenant.status == "active",
    )


def source_mapping(tenant, *, queue_arn: str, producer_enabled: bool) -> str:
    return aws.mapping_ensure(
        queue_arn=queue_arn,
        function_arn=_source_arn(),
        max_concurrency=SOURCE_CONCURRENCY,
        enabled=tenant.status == "active" and producer_enabled,
    )


def sync_items(tenant, items: list[dict]) -> None:
    """After the relay wrote an object's items: the TENANT item maps the silo queue and sets
    every mapping's state from the tenant's status; a live source-queue item maps its queue, a
    tombstoned one (the producer deleted, or its queue changed) unmaps it. Raises on refusal."""
    producer_enabled = {
        str(i.get("producer_id")): bool(i.get("enabled", True))
        for i in items
        if i.get("type") == "producer" and not i.get("deleted")
    }
    for item in items:
        if item["SK"] == shared_contract.TENANT_SK and not item.get("deleted"):
            reconcile_tenant(tenant, record=False, strict=True)
            return
    for item in items:
        if item["SK"] != shared_contract.SOURCE_QUEUE_SK:
            continue
        queue_arn = item["PK"][len(shared_contract.source_queue_pk("")) :]
        if item.get("deleted"):
            aws.mapping_delete(queue_arn=queue_arn)
        else:
            source_mapping(
                tenant,
                queue_arn=queue_arn,
                producer_enabled=producer_enabled.get(str(item.get("producer_id")), True),
            )


def _live_sources(tenant) -> list[tuple[str, bool]]:
    with schema_context(tenant.schema_name):
        return list(
            registry.MODELS[contract.PRODUCER]
            .objects.filter(kind="sqs")
            .exclude(source_queue_arn="")
            .values_list("source_queue_arn", "enabled")
        )


def reconcile_tenant(tenant, *, record: bool = True, strict: bool = False) -> dict:
    """Makes every mapping of the tenant as wanted; returns counts by outcome. With `record`
    the outcome is the tenant's `mapping` sync state (failing with the error until repaired).
    With `strict` the first refusal raises (the relay's caller retries the whole object)."""
    counts = {"created": 0, "updated": 0, "unchanged": 0, "failed": 0}
    errors = []
    jobs = [lambda: silo_mapping(tenant), lambda: silo_ordered_mapping(tenant)]
    for queue_arn, enabled in _live_sources(tenant):
        jobs.append(
            lambda q=queue_arn, e=enabled: source_mapping(tenant, queue_arn=q, producer_enabled=e)
        )
    for job in jobs:
        try:
            outcome = job()
        except (aws.MappingError, BotoCoreError, ClientError) as exc:
            if strict:
                raise
            counts["failed"] += 1
            errors.append(f"{type(exc).__name__}: {exc}")
            logger.warning("mapping of tenant %s refused: %s", tenant.pk, exc)
            continue
        if outcome:
            counts[outcome] += 1
    if record:
        _record(tenant, "\n".join(errors))
    return counts


def _record(tenant, error: str) -> None:
    """The tenant's mappings as one sync state: in sync (version = synced) or failing with
    the error, which the tenant's and the operators' sync status show."""
    state, _ = SyncState.objects.get_or_create(
        tenant_id=tenant.pk, object_type=MAPPING, object_id="all", defaults={"version": 1}
    )
    version = max(state.version, state.synced_version) + (1 if error else 0)
    SyncState.objects.filter(pk=state.pk).update(
        version=version,
        synced_version=state.synced_version if error else version,
        synced_at=state.synced_at if error else timezone.now(),
        last_error=error[:2000],
        attempts=state.attempts + 1 if error else 0,
        updated_at=timezone.now(),
    )


def remove_tenant(tenant) -> int:
    """Offboarding: every mapping of the tenant's queues deleted; returns how many. The silo
    queue may be gone already, so its mapping is found by the queue's name."""
    removed = 0
    silo = (
        {aws.silo_queue_name(tenant.pk), aws.silo_ordered_queue_name(tenant.pk)}
        if tenant.silo_queue_url
        else set()
    )
    sources = {queue_arn for queue_arn, _ in _live_sources(tenant)}
    for mapping in aws.mappings_all():
        queue_arn = mapping["EventSourceArn"]
        if queue_arn in sources or aws.queue_name_of_arn(queue_arn) in silo:
            aws.lambda_client().delete_event_source_mapping(UUID=mapping["UUID"])
            removed += 1
    return removed
