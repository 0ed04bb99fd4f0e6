"""boto3 clients for the data plane, built once per process (per endpoint) and reused."""

import functools
import json

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


# DynamoDB's item calls, whose JSON body is their parameters as they are (see PlainJSONBody).
_PLAIN_JSON_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchGetItem",
        "BatchWriteItem",
        "Query",
        "TransactWriteItems",
    }
)


class PlainJSONBody:
    """botocore's serializer of a DynamoDB client, with a short way for the item calls.

    DynamoDB speaks JSON, and its item calls' parameters are already in its wire format
    (AttributeValue maps of strings, lists and maps): botocore's serializer walks the input
    shape member by member only to build the same structure again, and for the egress's
    delivery records (three items of a dozen attributes per delivery) that walk was the largest
    share of its CPU per delivery (bench/dataplane.py; docs/data-plane.md, "Measured"). Here the
    body is `json.dumps` of the parameters, the rest of the request (method, headers, URL)
    botocore's own. Whatever `json` cannot write as it is (bytes of a binary attribute, a
    datetime, a Decimal) takes botocore's way, as does every other operation.
    tests/functions/test_aws_serializer.py checks the bodies against botocore's."""

    def __init__(self, inner):
        self._inner = inner

    def serialize_to_request(self, parameters, operation_model):
        if operation_model.name in _PLAIN_JSON_OPERATIONS:
            try:
                body = json.dumps(parameters).encode("utf-8")
            except (TypeError, ValueError):
                pass
            else:
                request = self._inner.serialize_to_request({}, operation_model)
                request["body"] = body
                return request
        return self._inner.serialize_to_request(parameters, operation_model)


class TableEndpoints:
    """botocore's endpoint resolver of a DynamoDB client, remembering its answer per operation
    and table for the item calls.

    botocore resolves the endpoint of every call from the service's rule set: it gathers the
    rule set's parameters (region, FIPS, dual stack, the endpoint URL, the account, and the
    table's name or ARN for DynamoDB) and runs the rules, ~0.3 ms of CPU a call, a tenth of
    the egress's own cost per delivery. For an item call those parameters are the client's
    own (fixed for its life) and the names of the tables it names, so the answer is the same
    for the same operation and tables, and kept (at most `MAX` answers). Calls naming no table
    this way (TransactWriteItems, every other operation) are resolved as before."""

    MAX = 256

    def __init__(self, inner):
        self._inner = inner
        self._known: dict[tuple, object] = {}

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def construct_endpoint(self, operation_model, call_args, request_context):
        name = operation_model.name
        tables = None
        if name in _PLAIN_JSON_OPERATIONS and call_args:
            if "TableName" in call_args:
                tables = (call_args["TableName"],)
            elif "RequestItems" in call_args:
                tables = tuple(sorted(call_args["RequestItems"]))
        if tables is None:
            return self._inner.construct_endpoint(operation_model, call_args, request_context)
        key = (name, tables)
        known = self._known.get(key)
        if known is None:
            known = self._inner.construct_endpoint(operation_model, call_args, request_context)
            if len(self._known) < self.MAX:
                self._known[key] = known
        return known


@functools.lru_cache(maxsize=16)
def _client(service: str, endpoint_url: str | None, region: str):
    client = boto3.session.Session().client(
        service, endpoint_url=endpoint_url, region_name=region, config=_CONFIG
    )
    if service == "dynamodb":
        client._serializer = PlainJSONBody(client._serializer)  # noqa: SLF001
        if client._ruleset_resolver is not None:  # noqa: SLF001
            client._ruleset_resolver = TableEndpoints(client._ruleset_resolver)  # noqa: SLF001
    # AWS_CALL_LOG set (never in Lambda): each call recorded for the IAM check (local/iam.py).
    return record_from_env(client)


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
