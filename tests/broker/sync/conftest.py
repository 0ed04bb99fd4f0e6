import pytest
from django.conf import settings

from broker.sync import contract, dynamo


@pytest.fixture(autouse=True)
def clean_table(world):
    """Each test starts from a table holding exactly the session tenants' TENANT items.

    PostgreSQL is rolled back after each test, DynamoDB (moto) is not: without this, items of
    one test's objects would be drift in the next."""
    from tenants.models import Tenant

    client = dynamo.aws.dynamodb()
    name = settings.DYNAMODB_CONFIG_TABLE
    pages = client.get_paginator("scan").paginate(TableName=name, ProjectionExpression="PK, SK")
    for page in pages:
        for key in page["Items"]:
            client.delete_item(TableName=name, Key=key)
    for tenant in Tenant.objects.select_related("tier").filter(
        status__in=["active", "suspended"], tier__isnull=False
    ):
        client.put_item(TableName=name, Item=dynamo.serialize(contract.tenant_item(tenant)))
    yield
