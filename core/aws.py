"""The one place that builds boto3 clients for the control plane.

In development and tests AWS_ENDPOINT_URL points at the moto server; in production it is
unset and boto3 uses the default credential chain.
"""

import functools
import json

import boto3
from botocore.config import Config
from django.conf import settings

from broker.functions.local.iam import record_from_env

_CONFIG = Config(
    retries={"max_attempts": 4, "mode": "standard"},
    connect_timeout=3,
    read_timeout=10,
    # Our own code builds every request; botocore's client-side check costs ~1 ms a call.
    parameter_validation=False,
)


@functools.lru_cache(maxsize=16)
def _client(service: str, endpoint_url: str | None, region: str):
    # AWS_CALL_LOG set (tests, local runs): each call recorded for the IAM check against
    # deploy/portal-policy.json (broker/functions/local/iam.py).
    return record_from_env(
        boto3.session.Session().client(
            service, endpoint_url=endpoint_url, region_name=region, config=_CONFIG
        ),
        principal="portal",
    )


def client(service: str):
    return _client(service, settings.AWS_ENDPOINT_URL, settings.AWS_REGION)


def reset_clients():
    """Forget cached clients (tests switch between moto in-process and the moto server)."""
    _client.cache_clear()


def dynamodb():
    return client("dynamodb")


def sqs():
    return client("sqs")


# --- names -------------------------------------------------------------------------------


def central_dlq_name() -> str:
    return f"{settings.SQS_QUEUE_PREFIX}-dlq"


def shared_delivery_queue_names() -> list[str]:
    return [
        f"{settings.SQS_QUEUE_PREFIX}-delivery-{i:02d}"
        for i in range(settings.SHARED_DELIVERY_QUEUES)
    ]


def silo_queue_name(tenant_id) -> str:
    return f"{settings.SQS_QUEUE_PREFIX}-silo-{tenant_id}"


# Ordered subscriptions (docs/data-plane.md, "Ordering"): FIFO queues, whose names end in
# ".fifo", and a FIFO dead-letter queue (a FIFO queue redrives only to a FIFO one).


def central_fifo_dlq_name() -> str:
    return f"{settings.SQS_QUEUE_PREFIX}-dlq.fifo"


def shared_ordered_queue_names() -> list[str]:
    """The pool's FIFO delivery queues (the template's OrderedQueue00 …)."""
    return [
        f"{settings.SQS_QUEUE_PREFIX}-ordered-{i:02d}.fifo"
        for i in range(settings.SHARED_ORDERED_QUEUES)
    ]


def silo_ordered_queue_name(tenant_id) -> str:
    return f"{silo_queue_name(tenant_id)}.fifo"


# --- SQS -------------------------------------------------------------------------------

# Every queue we create says its message limit, as the template's do: 256 KiB, which the
# ingress's size check counts on (broker/functions/shared/messages.py keeps every delivery
# message, envelope and failure metadata included, within it).
MAX_MESSAGE_BYTES = 262_144


def queue_url(name: str) -> str:
    return sqs().get_queue_url(QueueName=name)["QueueUrl"]


def queue_arn(url: str) -> str:
    attrs = sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attrs["Attributes"]["QueueArn"]


def delivery_queue_create(*, name: str) -> str:
    """A delivery queue the egress reads (a silo tenant's), with the attributes of the
    template's shared ones: the visibility timeout six times the egress's timeout (AWS refuses
    a mapping below one time, advises six), 14 days' retention, 256 KiB messages, and a redrive
    to the central DLQ after DELIVERY_REDRIVE_MAX_RECEIVE_COUNT receives: a safety net for a
    message no invocation finishes, independent of a consumer's retry attempts (the egress
    dead-letters after the last attempt itself). Returns the existing queue's URL if there."""
    dlq = queue_arn(queue_url(central_dlq_name()))
    attributes = {
        "VisibilityTimeout": str(settings.DELIVERY_VISIBILITY_TIMEOUT),
        "MessageRetentionPeriod": "1209600",
        "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
        "SqsManagedSseEnabled": "true",
        "RedrivePolicy": json.dumps(
            {
                "deadLetterTargetArn": dlq,
                "maxReceiveCount": str(settings.DELIVERY_REDRIVE_MAX_RECEIVE_COUNT),
            }
        ),
    }
    return sqs().create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def ordered_queue_create(*, name: str) -> str:
    """A FIFO delivery queue the egress reads (a silo tenant's ordered one), with the attributes
    of the template's shared ones: high-throughput FIFO (deduplication and throughput per
    message group), the silo queue's visibility and retention, and a redrive to the central
    FIFO DLQ after ORDERED_REDRIVE_MAX_RECEIVE_COUNT receives (high: an ordered delivery waits
    by its visibility, a receive each time). Returns the existing queue's URL if there."""
    dlq = queue_arn(queue_url(central_fifo_dlq_name()))
    attributes = {
        "FifoQueue": "true",
        "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId",
        "VisibilityTimeout": str(settings.DELIVERY_VISIBILITY_TIMEOUT),
        "MessageRetentionPeriod": "1209600",
        "MaximumMessageSize": str(MAX_MESSAGE_BYTES),
        "SqsManagedSseEnabled": "true",
        "RedrivePolicy": json.dumps(
            {
                "deadLetterTargetArn": dlq,
                "maxReceiveCount": str(settings.ORDERED_REDRIVE_MAX_RECEIVE_COUNT),
            }
        ),
    }
    return sqs().create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def queue_create(*, name: str) -> str:
    """A plain queue (the demo's tenant queues), 256 KiB messages."""
    attributes = {"MaximumMessageSize": str(MAX_MESSAGE_BYTES)}
    return sqs().create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def queue_delete(*, url: str) -> bool:
    try:
        sqs().delete_queue(QueueUrl=url)
    except sqs().exceptions.QueueDoesNotExist:
        return False
    return True


def queue_name_of_arn(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


def queue_url_of_arn(arn: str) -> str:
    parts = arn.split(":")
    return sqs().get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]


# --- Lambda event source mappings ----------------------------------------------------------


class MappingError(Exception):
    """A mapping AWS would refuse, or one that cannot be made (no function ARN configured)."""


def lambda_client():
    return client("lambda")


# AWS's bounds of an SQS mapping's ScalingConfig.MaximumConcurrency.
MIN_MAPPING_CONCURRENCY, MAX_MAPPING_CONCURRENCY = 2, 1000


def mapping_spec(*, max_concurrency: int, enabled: bool, fifo: bool = False) -> dict:
    """What every mapping of ours carries: batches of 10 with no batching window (as the
    template's shared ones; a FIFO queue's mapping has none at all, AWS refuses one), partial
    batch responses, the concurrency clamped to AWS's range."""
    concurrency = min(max(int(max_concurrency), MIN_MAPPING_CONCURRENCY), MAX_MAPPING_CONCURRENCY)
    spec = {
        "BatchSize": 10,
        "MaximumBatchingWindowInSeconds": 0,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": concurrency},
        "Enabled": enabled,
    }
    if fifo:
        del spec["MaximumBatchingWindowInSeconds"]
    return spec


def mappings_of_queue(queue_arn: str) -> list[dict]:
    out, kwargs = [], {}
    while True:
        page = lambda_client().list_event_source_mappings(EventSourceArn=queue_arn, **kwargs)
        out.extend(
            m for m in page.get("EventSourceMappings", []) if m["EventSourceArn"] == queue_arn
        )
        if not page.get("NextMarker"):
            return out
        kwargs = {"Marker": page["NextMarker"]}


def mappings_all() -> list[dict]:
    out, kwargs = [], {}
    while True:
        page = lambda_client().list_event_source_mappings(**kwargs)
        out.extend(page.get("EventSourceMappings", []))
        if not page.get("NextMarker"):
            return out
        kwargs = {"Marker": page["NextMarker"]}


def _function_timeout(function_arn: str) -> int:
    return int(lambda_client().get_function_configuration(FunctionName=function_arn)["Timeout"])


def _check_visibility(queue_arn: str, function_arn: str) -> None:
    """AWS refuses a mapping whose queue's visibility timeout is below the function's timeout
    (moto does not check it, so we do: the same refusal, before AWS would give it)."""
    url = queue_url_of_arn(queue_arn)
    attrs = sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])
    visibility = int(attrs["Attributes"]["VisibilityTimeout"])
    timeout = _function_timeout(function_arn)
    if visibility < timeout:
        raise MappingError(
            f"Queue {queue_name_of_arn(queue_arn)} has a visibility timeout of {visibility} s, "
            f"below the function's timeout ({timeout} s): AWS refuses to map it. Set it to at "
            f"least {timeout} s ({6 * timeout} s advised)."
        )


def mapping_ensure(
    *, queue_arn: str, function_arn: str, max_concurrency: int, enabled: bool
) -> str:
    """Makes the queue's mapping to the function exist as wanted: 'created', 'updated' or
    'unchanged'. Mappings of the queue to another function are deleted (one poller per
    queue)."""
    if not function_arn:
        raise MappingError(
            "No function ARN is configured for this mapping (see docs/data-plane.md)."
        )
    fifo = queue_arn.endswith(".fifo")
    want = mapping_spec(max_concurrency=max_concurrency, enabled=enabled, fifo=fifo)
    found = None
    for mapping in mappings_of_queue(queue_arn):
        if mapping["FunctionArn"] == function_arn and found is None:
            found = mapping
        else:
            lambda_client().delete_event_source_mapping(UUID=mapping["UUID"])
    if found is None:
        _check_visibility(queue_arn, function_arn)
        lambda_client().create_event_source_mapping(
            EventSourceArn=queue_arn, FunctionName=function_arn, **want
        )
        return "created"
    have = {
        "BatchSize": found.get("BatchSize"),
        "MaximumBatchingWindowInSeconds": found.get("MaximumBatchingWindowInSeconds", 0),
        "FunctionResponseTypes": found.get("FunctionResponseTypes") or [],
        "ScalingConfig": found.get("ScalingConfig") or {},
        "Enabled": found.get("State") in ("Enabled", "Enabling", "Updating"),
    }
    if fifo:
        del have["MaximumBatchingWindowInSeconds"]
    if have == want:
        return "unchanged"
    lambda_client().update_event_source_mapping(UUID=found["UUID"], **want)
    return "updated"


def mapping_delete(*, queue_arn: str) -> int:
    """Deletes every mapping of the queue; returns how many."""
    mappings = mappings_of_queue(queue_arn)
    for mapping in mappings:
        lambda_client().delete_event_source_mapping(UUID=mapping["UUID"])
    return len(mappings)
