"""The operator's tenant page in Chromium: from the console row to the page, a suspension
behind its confirmation page, a resync whose progress bar moves while it runs and which the
page reports done; axe-core finds no serious or critical violation on the confirmation page."""

import shutil

import pytest
from playwright.sync_api import expect

from broker.sync import reconcile
from broker.sync.models import SyncJob
from portal.celery import app
from tenants.models import Membership, Tenant
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


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_operator_suspends_after_confirming_and_watches_a_resync_finish(
    live_server,
    settings,
    browser,  # noqa: F811
):
    port = live_server.url.rsplit(":", 1)[1]
    settings.PORTAL_PORT = port
    # Its own slug: a schema left by another browser test would make onboarding refuse it.
    tenant = onboard("umbrella")
    Membership.objects.create(user=make_user("alice@umbrella.test"), tenant=tenant, role="admin")
    make_user("root@platform.test", platform_role="operator")
    base = f"http://localhost:{port}"
    try:
        page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
        sign_in(page, base, "root@platform.test")
        page.click(f"a[href='/console/tenants/{tenant.pk}/']")
        page.wait_for_url(f"{base}/console/tenants/{tenant.pk}/")
        assert "alice@umbrella.test" in page.locator("[data-testid=members]").inner_text()

        page.click("button[data-action=suspend]")
        assert page.locator("[data-testid=confirm-title]").inner_text() == "Suspend umbrella?"
        bad, overflow = check(page, "console-confirm", "phone")
        assert (bad, overflow) == ([], 0)
        assert Tenant.objects.get(pk=tenant.pk).status == "active"  # nothing yet
        page.click("[data-testid=confirm]")
        page.wait_for_url(f"{base}/console/tenants/{tenant.pk}/")
        assert "umbrella: suspend requested." in page.locator(".messages").inner_text()
        assert page.locator("[data-testid=tenant-status]").inner_text() == "suspended"

        app.conf.task_always_eager = False  # the job waits, so the page can watch it run
        try:
            page.click("button[data-action=resync]")
            page.click("[data-testid=confirm]")
            page.wait_for_url(f"{base}/console/tenants/{tenant.pk}/")
        finally:
            app.conf.task_always_eager = True
            app.control.purge()
        job = SyncJob.objects.get(tenant=tenant, kind="resync")
        row = page.locator(f"[data-job='{job.pk}']")
        assert row.locator("[data-field=status]").inner_text() == "queued"
        # The job under way (as reconcile.sync_tenant records it): the bar follows.
        SyncJob.objects.filter(pk=job.pk).update(status="running", total=6, done=3)
        # expect() polls from Playwright's own world: the page's CSP allows no eval, which
        # wait_for_function would need.
        expect(row.locator("[data-field=progress]")).to_have_js_property("value", 3, timeout=15_000)
        assert row.locator("[data-field=counts]").inner_text() == "3 of 6 objects"
        assert "Resync: running" in page.locator("[data-live]").inner_text()
        SyncJob.objects.filter(pk=job.pk).update(status="queued", done=0)
        reconcile.run_job(job.pk)
        expect(row.locator("[data-field=status]")).to_have_text("done", timeout=15_000)
        assert "data-poll" not in page.content()
    finally:
        dp.clear()
