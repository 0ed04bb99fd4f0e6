"""Creates the control plane's own AWS resource, idempotently: the DynamoDB config table (the
contract the functions read).

Everything else the data plane needs (its tables, the central DLQ, the shared delivery queues
and their event source mappings, the functions and their roles) belongs to the stack of
deploy/template.yaml, deployed by CloudFormation; nothing here creates it (docs/data-plane.md,
"Deploying"). Works unchanged against real AWS (default credential chain) and against the moto
server (AWS_ENDPOINT_URL)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from core import aws

# Sparse index over APIKEY items only (they live outside the tenant's partition): lets the
# reconciler and offboarding find every key item of a tenant without a scan.
APIKEY_INDEX_KEY = "apikey_tenant_id"
APIKEY_INDEX = {
    "IndexName": "apikeys-by-tenant",
    "KeySchema": [{"AttributeName": APIKEY_INDEX_KEY, "KeyType": "HASH"}],
    "Projection": {"ProjectionType": "KEYS_ONLY"},
}


def bootstrap_aws(*, stdout=None) -> dict:
    ddb = aws.dynamodb()
    table = settings.DYNAMODB_CONFIG_TABLE
    created = []
    try:
        ddb.describe_table(TableName=table)
    except ddb.exceptions.ResourceNotFoundException:
        ddb.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
                {"AttributeName": APIKEY_INDEX_KEY, "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[APIKEY_INDEX],
            BillingMode="PAY_PER_REQUEST",
        )
        ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1})
        created.append(f"dynamodb:{table}")
    indexes = ddb.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])
    if not any(i["IndexName"] == APIKEY_INDEX["IndexName"] for i in indexes):
        ddb.update_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": APIKEY_INDEX_KEY, "AttributeType": "S"}],
            GlobalSecondaryIndexUpdates=[{"Create": APIKEY_INDEX}],
        )
        created.append(f"dynamodb:{table}/{APIKEY_INDEX['IndexName']}")
    ttl = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ddb.update_time_to_live(
            TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
        )
    return {"table": table, "created": created}


class Command(BaseCommand):
    help = "Create the control plane's DynamoDB config table (the data plane's stack has the rest)."

    def handle(self, *args, **options):
        result = bootstrap_aws()
        done = ", ".join(result["created"]) or "nothing to create"
        self.stdout.write(f"AWS ready: config table {result['table']} ({done})")
