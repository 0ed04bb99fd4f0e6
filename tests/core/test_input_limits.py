"""Odd or hostile request bodies get the usual 400 error shape, never a 500 or an HTML page."""

import json

import pytest

from tests.helpers import HostClient, host_of

pytestmark = pytest.mark.django_db


def _error(response, status):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def _post_raw(client, path, raw: str | bytes):
    return client.post(path, raw, content_type="application/json")


def test_deeply_nested_json_is_a_400_even_on_the_anonymous_token_endpoint(world):
    client = HostClient(host_of(world.a))
    deep = "[" * 100_000 + "]" * 100_000
    error = _error(_post_raw(client, "/api/v1/auth/token/", deep), 400)
    assert error["code"] == "parse_error"
    assert "nest" in error["message"].lower()


def test_moderately_nested_json_beyond_the_limit_is_a_400(world, api):
    client = api(world.developer_a, world.a)
    nested = {"a": 1}
    for _ in range(80):
        nested = {"x": nested}
    response = client.post(
        "/api/v1/subscriptions/test-filter/",
        {"filter": nested, "event": {"type": "x"}},
        format="json",
    )
    assert _error(response, 400)["code"] == "parse_error"


@pytest.mark.parametrize(
    "path,raw",
    [
        ("/api/v1/event-types/", '{"name": "order.nul", "schema": {"title": "a\\u0000b"}}'),
        ("/api/v1/event-types/", '{"name": "order.key", "schema": {"a\\u0000": 1}}'),
        ("/api/v1/event-types/", '{"name": "order.sur", "schema": {"title": "a\\ud800"}}'),
        ("/api/v1/subscriptions/test-filter/", '{"filter": {"a": ["\\udfff"]}, "event": {}}'),
        ("/api/v1/producers/", '{"name": "sh\\u0000op", "kind": "https"}'),
    ],
    ids=[
        "nul-in-a-schema",
        "nul-in-a-key",
        "surrogate-in-a-schema",
        "surrogate-in-a-filter",
        "nul-in-a-name",
    ],
)
def test_null_bytes_and_lone_surrogates_in_json_are_a_400(world, api, path, raw):
    client = api(world.admin_a, world.a)
    error = _error(_post_raw(client, path, raw), 400)
    assert error["code"] == "parse_error"


def test_a_paired_surrogate_escape_is_an_ordinary_character(world, api):
    client = api(world.developer_a, world.a)
    response = _post_raw(
        client, "/api/v1/producers/", '{"name": "shop-\\ud83d\\ude00", "kind": "https"}'
    )
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "shop-\N{GRINNING FACE}"


def test_a_number_too_large_for_a_float_is_a_400(world, api):
    client = api(world.developer_a, world.a)
    response = _post_raw(client, "/api/v1/subscriptions/test-filter/", '{"filter": 1e400}')
    assert _error(response, 400)["code"] == "parse_error"


@pytest.mark.parametrize("tenant_host", [True, False], ids=["tenant-host", "public-host"])
def test_an_unknown_api_route_answers_the_json_error_shape(world, tenant_host):
    client = HostClient(host_of(world.a if tenant_host else None))
    error = _error(client.get("/api/v1/no-such-thing/"), 404)
    assert error["code"] == "not_found"


def test_an_unknown_page_is_still_an_html_404(world):
    response = HostClient(host_of(world.a)).get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_body_above_the_upload_limit_answers_413_in_the_json_error_shape(world, api):
    client = api(world.developer_a, world.a)
    big = json.dumps({"name": "shop", "kind": "https", "pad": "x" * 2_600_000})
    error = _error(_post_raw(client, "/api/v1/producers/", big), 413)
    assert error["code"] == "request_too_large"


def test_a_form_above_the_upload_limit_is_a_413_not_a_400(world):
    response = HostClient(host_of(world.a)).post(
        "/login/",
        "username=a%40b.c&password=" + "x" * 2_600_000,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 413


def test_a_body_of_another_media_type_on_the_api_answers_the_json_error_shape(world):
    response = HostClient(host_of(world.a)).post(
        "/api/v1/auth/token/", "email=a%40b.c", content_type="application/x-www-form-urlencoded"
    )
    assert _error(response, 415)["code"] == "unsupported_media_type"
