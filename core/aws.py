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


# --- SQS -------------------------------------------------------------------------------


def queue_url(name: str) -> str:
    return sqs().get_queue_url(QueueName=name)["QueueUrl"]


def queue_arn(url: str) -> str:
    attrs = sqs().get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attrs["Attributes"]["QueueArn"]


def queue_create(*, name: str, dead_letter_url: str | None = None, max_receive_count: int = 5):
    """Creates the queue or returns the existing one (CreateQueue is idempotent by name)."""
    attributes = {"VisibilityTimeout": "60", "MessageRetentionPeriod": "345600"}
    if dead_letter_url:
        attributes["RedrivePolicy"] = json.dumps(
            {
                "deadLetterTargetArn": queue_arn(dead_letter_url),
                "maxReceiveCount": str(max_receive_count),
            }
        )
    return sqs().create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


def queue_delete(*, url: str) -> bool:
    try:
        sqs().delete_queue(QueueUrl=url)
    except sqs().exceptions.QueueDoesNotExist:
        return False
    return True
