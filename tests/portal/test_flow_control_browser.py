"""Issue 18's forms in Chromium: an admin gives a consumer a rate limit and makes an ordered
subscription that holds failed keys; the consumer page then shows both; axe-core finds no
serious or critical violation on the configuration page."""

import shutil

import pytest
from django_tenants.utils import tenant_context

from broker.models import Consumer, Subscription
from tenants.models import Membership
from tests import dataplane_items as dp
from tests.helpers import make_user, onboard
from tests.portal.test_pages_a11y import (  # noqa: F401 (fixtures)
    browser,
    check,
    sign_in,
)
from tests.portal.test_pages_browser import CHROMIUM

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian chromium is not installed"),
]
QUEUE = "arn:aws:sqs:eu-west-1:123456789012:ordered-sink"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_admin_makes_an_ordered_subscription_to_a_rate_limited_consumer(
    live_server,
    settings,
    browser,  # noqa: F811
):
    port = live_server.url.rsplit(":", 1)[1]
    settings.PORTAL_PORT = port
    # Its own slug: a schema left by another browser test would make onboarding refuse it.
    tenant = onboard("vandelay")
    Membership.objects.create(user=make_user("art@vandelay.test"), tenant=tenant, role="admin")
    base = f"http://vandelay.localhost:{port}"
    try:
        page = browser.new_context().new_page()
        sign_in(page, base, "art@vandelay.test")
        page.goto(f"{base}/config/")
        page.fill("#id_consumer-name", "importer")
        page.select_option("#id_consumer-kind", "sqs")
        page.fill("#id_consumer-queue_arn", QUEUE)
        page.fill("#id_consumer-rate_limit_per_second", "3")
        page.click("text=Add consumer")
        assert "importer" in page.locator("[data-testid=consumers]").inner_text()

        form = page.locator("[data-testid=subscription-form]")
        assert "skip" in form.locator("#id_subscription-on_head_failure").input_value()
        page.select_option("#id_subscription-consumer", label="importer")
        page.fill("#id_subscription-event_type", "order.*")
        page.check("#id_subscription-ordered")
        page.fill("#id_subscription-ordering_key_path", "data.order_id")
        page.select_option("#id_subscription-on_head_failure", "hold")
        bad, _ = check(page, "config-ordered", "desktop")
        assert bad == []
        page.click("text=Add subscription")
        row = page.locator("[data-testid=subscriptions] tr", has_text="order.*")
        assert "ordered" in row.inner_text()
        with tenant_context(tenant):
            sub = Subscription.objects.get()
            assert (sub.ordered, sub.ordering_key_path, sub.on_head_failure) == (
                True,
                "data.order_id",
                "hold",
            )
            consumer = Consumer.objects.get()
            assert consumer.rate_limit_per_second == 3

        page.goto(f"{base}/consumers/{consumer.pk}/")
        assert "3 per second" in page.locator("[data-testid=rate-limit]").inner_text()
        subs = page.locator("[data-testid=consumer-subscriptions]").inner_text()
        assert "data.order_id" in subs and "holds the key" in subs
    finally:
        dp.clear()
