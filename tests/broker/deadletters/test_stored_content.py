"""Dead letters whose payload holds what the ingress now refuses (NaN, infinities, lone
surrogates: queued before the change) are shown by `GET /api/v1/dead-letters/{id}/` without a
500: escaped, with `payload_escaped`."""

import math

import pytest
from django_tenants.utils import tenant_context

from broker.deadletters.models import DeadLetter
from tests.helpers.deadletters import dead_letter, ingest_all, send_to_dlq

pytestmark = pytest.mark.django_db


def _letter_id(tenant) -> str:
    with tenant_context(tenant):
        return str(DeadLetter.objects.get().pk)


def test_a_payload_with_nan_and_a_lone_surrogate_is_shown_escaped_and_flagged(
    world, api, dlq, consumer_a
):
    data = {"n": math.nan, "inf": -math.inf, "s": "\udfff!", "keep": "注文"}
    send_to_dlq(dead_letter(world.a, consumer_a.pk, data=data))
    ingest_all()
    response = api(world.viewer_a, world.a).get(f"/api/v1/dead-letters/{_letter_id(world.a)}/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["payload_escaped"] is True
    assert body["payload"]["data"] == {
        "n": "NaN",
        "inf": "-Infinity",
        "s": "\\udfff!",
        "keep": "注文",
    }


def test_an_ordinary_payload_is_not_flagged(world, api, dlq, consumer_a):
    send_to_dlq(dead_letter(world.a, consumer_a.pk, data={"sku": "A-1"}))
    ingest_all()
    body = api(world.viewer_a, world.a).get(f"/api/v1/dead-letters/{_letter_id(world.a)}/").json()
    assert body["payload_escaped"] is False
    assert body["payload"]["data"] == {"sku": "A-1"}
