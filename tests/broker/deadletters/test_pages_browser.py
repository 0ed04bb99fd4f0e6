"""The dead-letter journey in a real headless Chromium against a live server: a tenant admin
finds the failed deliveries, reads one (payload, copy), replays all with the preview count and
a confirmation, and watches the job's progress bar finish."""

import pytest
from django_tenants.utils import tenant_context
from playwright.sync_api import expect

from broker import services as broker_services
from broker.deadletters import runner
from broker.deadletters.models import DeadLetter, ReplayJob
from portal.celery import app
from tenants.models import Membership
from tests.helpers import PASSWORD, PUBLIC_URL, make_user, onboard
from tests.helpers.deadletters import dead_letter, dlq_url, ingest_all, purge, send_to_dlq
from tests.portal.test_pages_browser import (  # noqa: F401 (fixtures)
    browser,  # noqa: F811
    pytestmark,
)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_admin_reads_a_dead_letter_and_replays_every_one_with_a_confirmation(
    live_server,
    settings,
    browser,  # noqa: F811
    fake_dns,
):
    port = live_server.url.rsplit(":", 1)[1]
    settings.PORTAL_PORT = port
    tenant = onboard("dl-browser", tier="dedicated")
    admin = make_user("admin@dl-browser.test")
    Membership.objects.create(user=admin, tenant=tenant, role="admin")
    with tenant_context(tenant):
        consumer, _ = broker_services.consumer_create(
            actor=admin, name="billing-hook", kind="https", url=PUBLIC_URL
        )
    purge(dlq_url())
    send_to_dlq(*[dead_letter(tenant, consumer.pk, data={"invoice": "INV-7"}) for _ in range(12)])
    ingest_all()
    [queue] = tenant.delivery_queues
    purge(queue)

    page = browser.new_page()
    base = f"http://dl-browser.localhost:{port}"
    page.goto(f"{base}/login/?next=/dead-letters/")
    page.fill("#id_email", admin.email)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dead-letters/")
    groups = page.locator("[data-testid=groups] tbody tr")
    assert groups.count() == 1
    assert "billing-hook" in groups.first.inner_text() and "12" in groups.first.inner_text()

    page.locator("[data-testid=letters] tbody tr a").first.click()
    payload = page.locator("[data-testid=payload]")
    assert '"invoice": "INV-7"' in payload.inner_text()
    page.click("[data-testid=copy]")
    expect(page.locator("[data-testid=copy]")).to_have_text("Copied")
    page.go_back()

    page.click("[data-testid=replay]")
    assert page.locator("[data-testid=confirm-count]").inner_text() == "12"
    with tenant_context(tenant):
        assert not ReplayJob.objects.exists()
    app.conf.task_always_eager = False  # the job waits, so the page can watch it run
    try:
        page.click("[data-testid=confirm]")
        page.wait_for_url(f"{base}/replay-jobs/")
    finally:
        app.conf.task_always_eager = True
        app.control.purge()
    assert page.locator("[data-testid=jobs] [data-field=status]").inner_text() == "queued"
    with tenant_context(tenant):
        job = ReplayJob.objects.get()
        assert runner.replay_job_run(tenant=tenant, job_id=job.pk) == "completed"
    # The page polls while the job is active and reloads when it finishes.
    # expect() polls from Playwright's own world (the page's CSP allows no eval).
    expect(page.locator("[data-testid=jobs] [data-field=status]")).to_have_text(
        "completed", timeout=15_000
    )
    assert page.locator("[data-field=progress]").get_attribute("value") == "12"
    with tenant_context(tenant):
        assert DeadLetter.objects.filter(status="replayed").count() == 12
