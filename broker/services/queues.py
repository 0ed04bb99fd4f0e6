"""Queue ARNs must be the tenant's own: an SQS producer's source queue or an SQS consumer's
queue may not be one of the platform's queues, nor a queue another tenant already uses.

Platform queues are named `<SQS_QUEUE_PREFIX>-…` (shared delivery queues, silo queues,
the central DLQ, the data plane's own queues). Queues in use are recorded as `QueueClaim`
rows in the public schema, written in the same transaction as the producer or consumer; a
transaction-scoped advisory lock per ARN makes check-then-claim safe between tenants saving
at the same moment.

Tenants' queues must be named with TENANT_QUEUE_PREFIX (the data plane's roles allow only
those). Within a tenant: one producer per source queue (the ingress finds the producer by the
queue's ARN), and a queue is never both a producer's source and a consumer's target (events
would loop). Several consumers of a tenant may share a queue.
"""

from django.conf import settings

from broker.functions.shared import arn
from broker.sync.models import QueueClaim
from core import locks

from ._common import current_tenant

PRODUCER, CONSUMER = "producer", "consumer"


def _lock(queue_arn: str) -> None:
    locks.xact_lock("queue-arn", queue_arn)


def is_platform_queue(queue_arn: str) -> bool:
    try:
        name = arn.parse_sqs_arn(queue_arn).name
    except arn.ArnError:
        return False
    return name.startswith(f"{settings.SQS_QUEUE_PREFIX}-")


def queue_arn_problem(queue_arn: str, *, role: str, obj) -> str | None:
    """Why the queue is not the tenant's to use (None: it is). Call inside the save's
    transaction: it takes the ARN's lock until commit."""
    try:
        arn.parse_sqs_arn(queue_arn)
    except arn.ArnError:
        return None  # the ARN's own check reports it
    if is_platform_queue(queue_arn):
        return "This is one of the platform's own queues."
    prefix = settings.TENANT_QUEUE_PREFIX
    if prefix and not arn.parse_sqs_arn(queue_arn).name.startswith(prefix):
        # The functions' roles allow no other queue (the stack's TenantQueuePrefix): a queue
        # named otherwise would be accepted here and refused by AWS at every delivery.
        return (
            f"The queue's name must start with {prefix!r}: the data plane may only use "
            "tenant queues named so."
        )
    _lock(queue_arn)
    tenant = current_tenant()
    claims = (
        QueueClaim.objects.filter(queue_arn=queue_arn)
        .exclude(tenant__status="deleted")
        .exclude(tenant=tenant, object_type=role, object_id=str(obj.pk))
    )
    for claim in claims:
        if claim.tenant_id != tenant.pk:
            return "Another tenant already uses this queue."
        if claim.object_type != role:
            return (
                "A producer of yours reads this queue and a consumer sends to it: events "
                "would loop."
            )
        if role == PRODUCER:
            return "Another producer of yours already reads this queue."
        # consumers of one tenant may share a queue
    return None


def claim(*, role: str, obj, queue_arn: str) -> None:
    """Records (or moves, or drops when empty) the object's queue."""
    tenant = current_tenant()
    if not queue_arn:
        release(role=role, obj=obj)
        return
    QueueClaim.objects.update_or_create(
        tenant=tenant,
        object_type=role,
        object_id=str(obj.pk),
        defaults={"queue_arn": queue_arn},
    )


def release(*, role: str, obj) -> None:
    QueueClaim.objects.filter(
        tenant=current_tenant(), object_type=role, object_id=str(obj.pk)
    ).delete()
