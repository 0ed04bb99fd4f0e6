"""Keys and versions of the DynamoDB contract (docs/dynamodb-contract.md), for both sides.

The portal's relay builds items with these keys (`broker.sync.contract`); the data plane reads
them. Readers accept every version in `READABLE_CONTRACTS`, so a rolling deploy of either side
never breaks the other: the writer moves to a new version only once readers know it.
"""

CONTRACT_VERSION = 1
READABLE_CONTRACTS = frozenset({CONTRACT_VERSION, CONTRACT_VERSION - 1} - {0})

TENANT_SK = "TENANT"
APIKEY_SK = "APIKEY"
SOURCE_QUEUE_SK = "SOURCEQUEUE"


def tenant_pk(tenant_id) -> str:
    return f"TENANT#{tenant_id}"


def apikey_pk(key_hash: str) -> str:
    return f"APIKEY#{key_hash}"


def producer_sk(producer_id) -> str:
    return f"PRODUCER#{producer_id}"


def consumer_sk(consumer_id) -> str:
    return f"CONSUMER#{consumer_id}"


def route_sk(event_type: str, subscription_id) -> str:
    return f"ROUTE#{event_type}#{subscription_id}"


ROUTE_PREFIX = "ROUTE#"


def event_type_sk(name: str) -> str:
    return f"EVENTTYPE#{name}"


def source_queue_pk(queue_arn: str) -> str:
    """An SQS producer's source queue → its producer, in one GetItem."""
    return f"SOURCEQUEUE#{queue_arn}"


def is_live(item: dict | None) -> bool:
    """An item a reader may use: present, not a tombstone, of a contract version it knows."""
    if not item or item.get("deleted"):
        return False
    return int(item.get("contract", CONTRACT_VERSION)) in READABLE_CONTRACTS
