"""docs/ingress-openapi.yaml is a valid OpenAPI document and says what the ingress does."""

from pathlib import Path

import jsonschema
import yaml
from openapi_spec_validator import validate

from broker.functions.ingress import errors
from tests.helpers.functions import post

SPEC = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "docs" / "ingress-openapi.yaml").read_text()
)


def test_the_openapi_document_is_valid():
    validate(SPEC)


def test_it_lists_every_error_code_the_ingress_answers():
    codes = SPEC["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]
    assert set(codes["enum"]) == set(errors.STATUS)


def test_answers_match_the_documented_schemas(dataplane):
    t = dataplane.tenant()
    key = t.api_key(t.producer())
    resolver_schema = {"components": SPEC["components"]}
    event = {"type": "order.created", "id": "o-1", "time": "2026-11-30T10:00:00Z", "data": {}}
    jsonschema.validate(event, {**resolver_schema, "$ref": "#/components/schemas/Event"})
    status, body, _ = post(body=event, key=key)
    assert status == 202
    jsonschema.validate(body, {**resolver_schema, "$ref": "#/components/schemas/Accepted"})
    status, body, _ = post(body={"type": "Bad"}, key=key)
    assert status == 400
    jsonschema.validate(body, {**resolver_schema, "$ref": "#/components/schemas/Error"})
