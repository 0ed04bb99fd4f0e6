"""The API schema documents itself: a description, one tag per resource, the seed endpoints in
their own group, and the error responses of every operation."""

import pytest
import yaml
from django.test import Client

from tests.helpers import host_of

pytestmark = pytest.mark.django_db


def schema(host):
    response = Client(HTTP_HOST=host).get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, op


def test_tenant_api_operations_are_tagged_by_resource_and_document_their_errors(world):
    doc = schema(host_of(world.a))
    assert "Errors" in doc["info"]["description"] and "Roles" in doc["info"]["description"]
    tags = {op["tags"][0] for _, _, op in operations(doc)}
    assert {"producers", "consumers", "subscriptions", "deliveries"} <= tags
    assert "v1" not in tags
    for path, method, op in operations(doc):
        if path.startswith("/api/v1/auth/"):
            continue
        assert {"401", "403", "404", "429"} <= set(op["responses"]), (path, method)
        if method in ("post", "patch", "put"):
            assert "400" in op["responses"], (path, method)


def test_the_seed_endpoints_have_their_own_group(world):
    doc = schema("localhost")
    seed = {path for path, _, op in operations(doc) if op["tags"] == ["seed"]}
    assert {"/tenants", "/onboarding"} <= seed
