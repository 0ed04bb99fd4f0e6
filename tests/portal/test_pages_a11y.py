"""Every page in headless Chromium at desktop and phone width: axe-core finds no serious or
critical violation, nothing scrolls sideways at 390 px, and a screenshot of each is kept
under var/screenshots/ (the README's pictures are the console's and the dashboard's)."""

import os
import pprint
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django_tenants.utils import tenant_context

from broker import services
from broker.functions.shared import records
from tenants.models import Membership
from tests import dataplane_items as dp
from tests.helpers import PASSWORD, make_user, onboard
from tests.portal.test_pages_browser import ARGS, CHROMIUM

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

AXE = Path(__file__).parent / "assets" / "axe.min.js"
SHOTS = Path(django_settings.BASE_DIR) / "var" / "screenshots"
# The README's pictures are rewritten only when asked (UPDATE_README_IMAGES=1 make test ...):
# a test run leaves the checkout as it found it.
README_IMAGES = Path(django_settings.BASE_DIR) / "docs" / "img"
UPDATE_README_IMAGES = os.environ.get("UPDATE_README_IMAGES") == "1"
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
QUEUE = "arn:aws:sqs:eu-west-1:123456789012:warehouse"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian chromium is not installed"),
]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def demo_data(slug="globex", tier="standard"):
    """A tenant with a producer, a consumer, a subscription, and deliveries to chart. Browser
    tests each take their own slug: a schema another one left would make onboarding refuse it."""
    tenant = onboard(slug, tier=tier)
    admin = make_user("hank@globex.test", full_name="Hank Scorpio")
    Membership.objects.create(user=admin, tenant=tenant, role="admin")
    make_user("root@platform.test", platform_role="operator")
    with tenant_context(tenant):
        producer, _ = services.producer_create(
            actor=admin, name="web-shop", kind="https", allowed_event_types=["order.*"]
        )
        consumer, _ = services.consumer_create(
            actor=admin, name="warehouse", kind="sqs", queue_arn=QUEUE
        )
        subscription = services.subscription_create(
            actor=admin,
            consumer=consumer,
            event_type="order.*",
            filter={"data": {"total": [{"numeric": [">", 100]}]}},
        )
    now = datetime.now(UTC)
    dp.clear()
    for minute in range(0, 24 * 60, 7):
        at = now - timedelta(minutes=minute)
        ok, failed = 40 + minute % 13, (minute % 17 == 0) * 6
        dp.tenant_minute(
            tenant,
            at,
            ingested=ok + failed,
            routed=ok + failed,
            delivered=ok,
            failed=failed,
            dead=int(minute % 170 == 0),
        )
        dp.consumer_minute(
            tenant, consumer.pk, at, ok=ok, failed=failed, latencies=[20] * ok + [700] * failed
        )
    dp.events_today(tenant, 5200)
    for i in range(12):
        dp.attempt(
            tenant,
            consumer.pk,
            delivery_id=f"msg_demo{i:02d}",
            at=now - timedelta(minutes=3 * i),
            status=records.OK if i % 4 else records.RETRYING,
            http_status=200 if i % 4 else 503,
            latency_ms=35 + i,
            error="" if i % 4 else "503 Service Unavailable",
        )
    return tenant, producer, consumer, subscription


def sign_in(page, base, email):
    page.goto(f"{base}/login/")
    page.fill("#id_email", email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def check(page, name, viewport):
    page.wait_for_load_state("networkidle")
    # Evaluated through the DevTools protocol: a <script> tag added to the page would be
    # refused by its Content-Security-Policy (no inline script).
    page.evaluate(AXE.read_text())
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target)}))"
    )
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}-{viewport}.png"), full_page=True)
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    return bad, overflow


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_every_page_passes_axe_and_fits_a_phone(live_server, settings, browser):
    port = live_server.url.rsplit(":", 1)[1]
    settings.PORTAL_PORT = port
    tenant, producer, consumer, subscription = demo_data()
    public, tenant_base = f"http://localhost:{port}", f"http://globex.localhost:{port}"
    pages = {
        "public": [("login", "/login/")],
        "operator": [("console", "/"), ("console-tenant", f"/console/tenants/{tenant.pk}/")],
        "tenant": [
            ("dashboard", "/"),
            ("config", "/config/"),
            ("consumer", f"/consumers/{consumer.pk}/"),
            ("delivery", "/deliveries/msg_demo00/"),
            ("producer-edit", f"/config/producer/{producer.pk}/edit/"),
            ("consumer-edit", f"/config/consumer/{consumer.pk}/edit/"),
            ("subscription-edit", f"/config/subscription/{subscription.pk}/edit/"),
            ("invitation-unusable", "/invitations/not-a-real-token/"),
        ],
    }
    try:
        problems = run_pages(browser, public, tenant_base, pages)
    finally:
        dp.clear()
    assert problems == {}, pprint.pformat(problems)


def run_pages(browser, public, tenant_base, pages) -> dict:
    problems = {}
    for viewport, size in VIEWPORTS.items():
        context = browser.new_context(viewport=size)
        anonymous = context.new_page()
        for name, path in pages["public"]:
            anonymous.goto(public + path)
            bad, overflow = check(anonymous, name, viewport)
            if bad or overflow > 0:
                problems[(name, viewport)] = (bad, overflow)
        operator = browser.new_context(viewport=size).new_page()
        sign_in(operator, public, "root@platform.test")
        for name, path in pages["operator"]:
            operator.goto(public + path)
            bad, overflow = check(operator, name, viewport)
            if bad or overflow > 0:
                problems[(name, viewport)] = (bad, overflow)
            if name == "console" and viewport == "desktop" and UPDATE_README_IMAGES:
                README_IMAGES.mkdir(parents=True, exist_ok=True)
                operator.screenshot(path=str(README_IMAGES / "console.png"))
        admin = browser.new_context(viewport=size).new_page()
        sign_in(admin, tenant_base, "hank@globex.test")
        for name, path in pages["tenant"]:
            admin.goto(tenant_base + path)
            bad, overflow = check(admin, name, viewport)
            if bad or overflow > 0:
                problems[(name, viewport)] = (bad, overflow)
            if name == "dashboard":
                text = admin.locator("#charts-status").inner_text()
                assert text.startswith("Charts updated"), text
                assert admin.locator("#charts canvas").count() >= 4
                if viewport == "desktop" and UPDATE_README_IMAGES:
                    README_IMAGES.mkdir(parents=True, exist_ok=True)
                    admin.screenshot(path=str(README_IMAGES / "dashboard.png"))
    return problems
