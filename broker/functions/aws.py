"""boto3 clients for the data plane, built once per process (per endpoint) and reused."""

import functools

import boto3
from botocore.config import Config

from broker.functions import settings
from broker.functions.local.iam import record_from_env

_CONFIG = Config(
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=2,
    read_timeout=25,  # above the 20 s long poll
    parameter_validation=False,
    max_pool_connections=32,
)


@functools.lru_cache(maxsize=16)
def _client(service: str, endpoint_url: str | None, region: str):
    # AWS_CALL_LOG set (never in Lambda): each call recorded for the IAM check (local/iam.py).
    return record_from_env(
        boto3.session.Session().client(
            service, endpoint_url=endpoint_url, region_name=region, config=_CONFIG
        )
    )


def client(service: str):
    s = settings.get()
    return _client(service, s.endpoint_url, s.region)


def reset_clients() -> None:
    _client.cache_clear()


def dynamodb():
    return client("dynamodb")


def sqs():
    return client("sqs")


def kms():
    return client("kms")
