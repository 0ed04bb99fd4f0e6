"""A secret shown once (a new API key) never sits readable in the session table."""

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from tests.helpers import host_of

pytestmark = pytest.mark.django_db

SHOWN = 'data-testid="one-time-secret"'


@pytest.fixture
def browser(world):
    client = Client(HTTP_HOST=host_of(world.a))
    client.force_login(world.developer_a)
    return client


def _session_rows_text() -> str:
    return " ".join(str(s.get_decoded()) for s in Session.objects.all())


def _create_producer(browser):
    return browser.post(
        "/config/",
        {"form": "producer", "producer-name": "shop", "producer-kind": "https"},
    )


def _shown_key(html: str) -> str:
    start = html.index("ebk_", html.index(SHOWN))
    return html[start : start + 47].split("<")[0].split('"')[0]


def test_a_new_key_is_in_the_session_table_only_as_ciphertext_before_it_is_shown(browser):
    redirected = _create_producer(browser)
    assert redirected.status_code == 302

    assert "ebk_" not in _session_rows_text()  # not readable before the page shows it

    shown = browser.get("/config/").content.decode()
    key = _shown_key(shown)
    assert key.startswith("ebk_") and key not in _session_rows_text()
    assert SHOWN not in browser.get("/config/").content.decode()  # once


def test_another_browser_with_the_session_but_not_the_key_cookie_sees_nothing(world, browser):
    _create_producer(browser)
    thief = Client(HTTP_HOST=host_of(world.a))
    thief.cookies["sessionid"] = browser.cookies["sessionid"].value
    assert SHOWN not in thief.get("/config/").content.decode()


def test_a_rotated_key_is_shown_once_too(world, browser):
    from django_tenants.utils import tenant_context

    from broker.models import Producer

    _create_producer(browser)
    browser.get("/config/")
    with tenant_context(world.a):
        producer = Producer.objects.get(name="shop")
    rotated = browser.post(f"/config/producer/{producer.pk}/rotate-key/")
    assert rotated.status_code == 302
    assert "ebk_" not in _session_rows_text()
    assert SHOWN in browser.get("/config/").content.decode()
