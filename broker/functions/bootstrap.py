"""Creates the data plane's own DynamoDB tables, idempotently (local runs, tests, bootstrap_aws).

In AWS the SAM template in deploy/ creates the same tables; keep both in step.
"""

from botocore.exceptions import ClientError

from broker.functions import aws, settings


def _create(ddb, name: str, *, key_schema, attributes, ttl_attribute: str) -> bool:
    try:
        ddb.describe_table(TableName=name)
        return False
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=attributes,
        KeySchema=key_schema,
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})
    ddb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl_attribute}
    )
    return True


def create_tables(
    *, client=None, dataplane_table: str | None = None, idempotency_table: str | None = None
) -> list[str]:
    """The data-plane table (PK/SK, TTL `ttl`) and the egress idempotency table (Powertools'
    layout: key `id`, TTL `expiration`). Returns the names of the tables it created.

    The portal's `bootstrap_aws` passes its own client and table names (from Django settings);
    the runner and the functions' tests use the data plane's settings."""
    s = settings.get()
    ddb = client or aws.dynamodb()
    dataplane_table = dataplane_table or s.dataplane_table
    idempotency_table = idempotency_table or s.idempotency_table
    created = []
    if _create(
        ddb,
        dataplane_table,
        key_schema=[
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
        attributes=[
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
        ],
        ttl_attribute="ttl",
    ):
        created.append(dataplane_table)
    if _create(
        ddb,
        idempotency_table,
        key_schema=[{"AttributeName": "id", "KeyType": "HASH"}],
        attributes=[{"AttributeName": "id", "AttributeType": "S"}],
        ttl_attribute="expiration",
    ):
        created.append(idempotency_table)
    return created
