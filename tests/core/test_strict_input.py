"""Input of the wrong type is a 400 and is never coerced, in bodies and in query strings; the
schema says that request bodies take no field beyond those listed."""

import json

import pytest
import yaml
from django.test import Client
from rest_framework import serializers

from core.api import StrictSerializer
from tests.helpers import host_of

pytestmark = pytest.mark.django_db


class Sample(StrictSerializer):
    name = serializers.CharField(required=False)
    count = serializers.IntegerField(required=False)
    ratio = serializers.FloatField(required=False)
    on = serializers.BooleanField(required=False)
    tags = serializers.ListField(child=serializers.CharField(), required=False)
    limits = serializers.DictField(child=serializers.IntegerField(allow_null=True), required=False)
    kind = serializers.ChoiceField(choices=["a", "b"], required=False)
    at = serializers.DateTimeField(required=False)
    anything = serializers.JSONField(required=False)


@pytest.mark.parametrize(
    "body",
    [
        {"name": 0},
        {"name": True},
        {"name": ["x"]},
        {"count": "5"},
        {"count": True},
        {"count": 1.0},
        {"ratio": "1.5"},
        {"ratio": False},
        {"on": 0},
        {"on": "true"},
        {"on": None},
        {"tags": "a"},
        {"tags": ["a", 1]},
        {"limits": [1]},
        {"limits": {"x": "1"}},
        {"kind": 1},
        {"at": 1700000000},
    ],
)
def test_a_value_of_another_json_type_is_refused_not_coerced(body):
    serializer = Sample(data=body)
    assert not serializer.is_valid()
    assert set(serializer.errors) == set(body)


def test_values_of_the_right_type_pass_and_json_fields_take_anything():
    body = {
        "name": "x",
        "count": 3,
        "ratio": 1,
        "on": False,
        "tags": ["a"],
        "limits": {"x": None, "y": 2},
        "kind": "a",
        "at": "2026-12-01T00:00:00Z",
        "anything": [0, "1", {"a": None}],
    }
    serializer = Sample(data=body)
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data["name"] == "x" and serializer.validated_data["on"] is False


def test_a_number_as_a_description_is_a_400_and_nothing_is_saved(world, api):
    client = api(world.admin_a, world.a)
    response = client.post(
        "/api/v1/producers/", {"name": "typed", "kind": "https", "description": 0}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"description": ["Expected a string."]}
    assert client.get("/api/v1/producers/?name=typed").json()["count"] == 0


def test_zero_is_not_false_for_a_boolean(world, api):
    client = api(world.admin_a, world.a)
    response = client.patch("/api/v1/dlq-alerts/", {"emails_enabled": 0}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"emails_enabled": ["Expected true or false."]}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/producers/?page_size=null",
        "/api/v1/producers/?page_size=0",
        "/api/v1/producers/?page_size=201",
        "/api/v1/producers/?page=abc",
        "/api/v1/consumers/?enabled=1",
        "/api/v1/consumers/?enabled=",
        "/api/v1/consumers/?kind=",
        "/api/v1/consumers/?ordering=secret",
        "/api/v1/sync-status/?status=AAA",
        "/api/v1/sync-status/?status=",
    ],
)
def test_a_query_value_the_list_does_not_know_is_a_400_not_ignored(world, api, path):
    response = api(world.viewer_a, world.a).get(path)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "invalid"


def test_the_operators_list_filters_refuse_what_they_do_not_know(world, api):
    client = api(world.operator)
    assert client.get("/api/v1/tenants/?status=sleeping").status_code == 400
    assert client.get("/api/v1/tenants/?page_size=null").status_code == 400
    assert client.get("/api/v1/tenants/?status=active&page_size=200").status_code == 200


def _schema(host):
    response = Client(HTTP_HOST=host).get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


@pytest.mark.parametrize("tenant_host", [False, True])
def test_every_request_body_of_the_api_is_declared_closed(world, tenant_host):
    doc = _schema(host_of(world.a) if tenant_host else host_of())
    components = doc["components"]["schemas"]
    bodies = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            content = (op.get("requestBody") or {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if not schema or "$ref" not in schema:
                continue
            bodies += 1
            name = schema["$ref"].rsplit("/", 1)[1]
            assert components[name].get("additionalProperties") is False, (method, path, name)
    assert bodies > 5


def test_the_page_size_is_documented_with_its_bounds(world):
    doc = _schema(host_of(world.a))
    params = {p["name"]: p for p in doc["paths"]["/api/v1/producers/"]["get"]["parameters"]}
    assert params["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 200}
    assert "400" in doc["paths"]["/api/v1/producers/"]["get"]["responses"]


def test_the_sign_in_refuses_an_unknown_field_and_a_number_as_password(world):
    from tests.helpers import PASSWORD, HostClient

    client = HostClient(host_of())
    url = "/api/v1/auth/token/"
    body = {"email": world.support.email, "password": PASSWORD}
    assert client.post(url, {**body, "remember": True}, format="json").status_code == 400
    assert client.post(url, {**body, "password": 1}, format="json").status_code == 400
    assert client.post(url, body, format="json").status_code == 200


# A value of another JSON type for each declared type.
WRONG = {"string": 0, "integer": "1", "number": "1.5", "boolean": 0, "array": "x", "object": "x"}


def _declared_type(prop, components):
    for key in ("allOf", "oneOf"):
        if key in prop:
            prop = prop[key][0]
    if "$ref" in prop:
        prop = components[prop["$ref"].rsplit("/", 1)[1]]
    return prop.get("type")


def _wrong_typed_bodies(doc):
    """(method, path, field, value) for every field of every request body of an operation
    without path parameters: the field alone, with a value of another JSON type."""
    components = doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        if "{" in path:
            continue
        for method, op in item.items():
            content = (op.get("requestBody") or {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref")
            if not ref:
                continue
            body = components[ref.rsplit("/", 1)[1]]
            for field, prop in body.get("properties", {}).items():
                kind = _declared_type(prop, components)
                if kind in WRONG:
                    yield method, path, field, WRONG[kind]


@pytest.mark.parametrize("tenant_host", [False, True])
def test_every_body_field_of_the_schema_refuses_a_value_of_another_type(world, api, tenant_host):
    from core import throttling

    doc = _schema(host_of(world.a) if tenant_host else host_of())
    client = api(world.admin_a, world.a) if tenant_host else api(world.operator)
    cases = list(_wrong_typed_bodies(doc))
    assert len(cases) > 10
    coerced = []
    for method, path, field, value in cases:
        throttling.reset(world.a.pk)
        response = client.generic(
            method.upper(), path, json.dumps({field: value}), content_type="application/json"
        )
        fields = response.json().get("error", {}).get("fields", {}) if response.content else {}
        if response.status_code != 400 or not str(fields.get(field, "")).startswith("['Expected"):
            coerced.append((method, path, field, value, response.status_code, fields.get(field)))
    assert coerced == []
