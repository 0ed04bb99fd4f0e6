"""A dump of the database holds no API key, signing secret or credential in clear."""

import pytest
from django.db import connection

from tests.helpers import PUBLIC_URL

pytestmark = pytest.mark.django_db


def _dump() -> str:
    """Every row of every table in every schema, as text.

    Read through the test's own connection (pg_dump could not see the test's uncommitted
    transaction), which makes it the same content a dump would hold."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        tables = cursor.fetchall()
        parts = []
        for schema, table in tables:
            cursor.execute(f'SELECT t::text FROM "{schema}"."{table}" t')  # noqa: S608
            parts.extend(row[0] for row in cursor.fetchall())
    return "\n".join(parts)


def test_a_database_dump_contains_no_raw_key_or_secret(world, api):
    client = api(world.admin_a, world.a)
    producer = client.post("/api/v1/producers/", {"name": "p", "kind": "https"}, format="json")
    rotated = client.post(
        f"/api/v1/producers/{producer.json()['id']}/rotate-key/", {}, format="json"
    )
    consumer = client.post(
        "/api/v1/consumers/",
        {
            "name": "c",
            "kind": "https",
            "url": PUBLIC_URL,
            "auth_type": "basic",
            "auth_username": "user",
            "auth_secret": "basic-password-in-clear",
        },
        format="json",
    )
    signing = client.post(
        f"/api/v1/consumers/{consumer.json()['id']}/rotate-signing-secret/", {}, format="json"
    )
    secrets = [
        producer.json()["api_key"],
        rotated.json()["api_key"],
        consumer.json()["signing_secret"],
        signing.json()["signing_secret"],
        "basic-password-in-clear",
    ]
    assert all(secrets)

    dump = _dump()

    # the dump holds our rows: the keys' visible prefixes and the encrypted secrets
    assert producer.json()["api_keys"][0]["prefix"] in dump
    assert "user" in dump
    for secret in secrets:
        assert secret not in dump
        # nor the part after the visible prefix
        assert secret[12:] not in dump
