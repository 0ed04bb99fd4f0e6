"""The done-when journey, in a real headless Chromium against a live server: an operator
onboards a tenant through the admin; the tenant's admin accepts the invitation on the tenant
host and invites a member, who joins."""

import os
import shutil

import pytest

from tenants.models import Tenant
from tests.helpers import PASSWORD, make_user

# synchronous test code, so Django's async-safety guard does not apply.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not shutil.which(CHROMIUM),
        reason="Debian chromium is not installed (make test installs it)",
    ),
]


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


def link_in(mail) -> str:
    return next(w for w in mail.body.split() if "/invitations/" in w)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_operator_onboards_in_the_admin_and_the_tenant_admin_invites_a_member(
    live_server, settings, mailoutbox, browser, tmp_path
):
    port = live_server.url.rsplit(":", 1)[1]
    settings.PORTAL_PORT = port
    make_user("root@platform.test", platform_role="operator")

    operator = browser.new_page()
    operator.goto(f"http://localhost:{port}/admin/tenants/tenant/add/")
    assert "/login/" in operator.url
    operator.fill("#id_email", "root@platform.test")
    operator.fill("#id_password", PASSWORD)
    operator.click("button[type=submit]")
    operator.fill("#id_name", "Initech")
    operator.fill("#id_slug", "initech")
    operator.select_option("#id_tier", label="standard")
    operator.fill("#id_admin_email", "peter@initech.test")
    operator.click("input[name=_save]")
    assert operator.locator(".messagelist").inner_text().startswith("The tenant")
    assert Tenant.objects.get(slug="initech").status == "active"

    operator.goto(f"http://localhost:{port}/")
    row = operator.locator("[data-testid=tenant-table] tr", has_text="initech")
    assert "active" in row.inner_text()

    admin = browser.new_context().new_page()
    admin.goto(link_in(mailoutbox[-1]))
    assert admin.url.startswith(f"http://initech.localhost:{port}/invitations/")
    admin.fill("#id_full_name", "Peter Gibbons")
    admin.fill("#id_password", "Tps-Reports-2026")
    admin.click("button[type=submit]")
    assert "peter@initech.test · admin" in admin.locator("[data-testid=whoami]").inner_text()

    admin.fill("#id_email", "milton@initech.test")
    admin.select_option("#id_role", "viewer")
    admin.click("text=Send invitation")
    assert "Invitation sent to milton@initech.test" in admin.locator(".messages").inner_text()
    assert "milton@initech.test" in admin.locator("[data-testid=invitations]").inner_text()

    member = browser.new_context().new_page()
    member.goto(link_in(mailoutbox[-1]))
    member.fill("#id_password", "Red-Stapler-2026")
    member.click("button[type=submit]")
    assert "milton@initech.test · viewer" in member.locator("[data-testid=whoami]").inner_text()
    assert member.locator("text=Send invitation").count() == 0  # viewers cannot invite

    admin.reload()
    assert "milton@initech.test" in admin.locator("[data-testid=members]").inner_text()
    assert "No producers yet." in admin.locator("[data-testid=producers]").inner_text()

    # The admin adds a producer on the configuration page: its key is shown once; the
    # dashboard then shows it, in sync (the relay runs on commit, eagerly here).
    admin.click("text=Configuration")
    admin.fill("#id_producer-name", "web-shop")
    admin.select_option("#id_producer-kind", "https")
    admin.fill("#id_producer-allowed_event_types", "order.*")
    admin.click("text=Add producer")
    assert "ebk_" in admin.locator("[data-testid=one-time-secret]").inner_text()
    assert "web-shop" in admin.locator("[data-testid=producers]").inner_text()
    admin.click("text=Dashboard")
    producers = admin.locator("[data-testid=producers]").inner_text()
    assert "web-shop" in producers and "(active)" in producers
    assert "0 pending, 0 failing" in admin.locator("[data-testid=sync-summary]").inner_text()
    admin.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    # A member of initech signing in on the public host gets no console.
    other = browser.new_context().new_page()
    other.goto(f"http://localhost:{port}/login/")
    other.fill("#id_email", "peter@initech.test")
    other.fill("#id_password", "Tps-Reports-2026")
    other.click("button[type=submit]")
    assert "no access here" in other.content()
