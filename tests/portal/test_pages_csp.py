"""Every page carries a Content-Security-Policy that allows no inline script, and in headless
Chromium the pages still work under it (charts draw, a form that asks first submits, the API
docs render) without a single violation reported by the browser."""

import os
import shutil

import pytest
from django.test import Client
from playwright.sync_api import expect

from tests.helpers import host_of
from tests.portal.test_pages_a11y import browser, demo_data, sign_in  # noqa: F401 (fixture)
from tests.portal.test_pages_browser import CHROMIUM

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# Runs before any script of the page (Playwright injects it; the policy does not apply to it):
# every violation the browser reports is kept for the test to read.
LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + e.sourceFile + ":" + e.lineNumber);
});
"""


# Each chart's y axis: its labels, the widest one's width as the canvas measures it in the
# axis's font, and the room uPlot gave them (the axis less its ticks and gap).
AXES = """() => {
  const out = {};
  const ctx = document.createElement("canvas").getContext("2d");
  document.querySelectorAll("#charts [id^=chart-]").forEach((el) => {
    const u = el.uplot;
    if (!u) return;
    const axis = u.axes[1];
    ctx.font = axis.font[0];
    const labels = (axis._values || []).map(String);
    const widest = Math.max(0, ...labels.map((v) => ctx.measureText(v).width / devicePixelRatio));
    out[el.id] = {labels, widest, room: axis._size - axis.ticks.size - axis.gap};
  });
  return out;
}"""


def script_src(policy: str) -> str:
    return next(d for d in policy.split(";") if d.strip().startswith("script-src")).strip()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/api/docs/", "/healthz", "/api/v1/tenants/"])
def test_every_answer_carries_a_policy_without_inline_scripts(world, path):
    for host in (host_of(), host_of(world.a)):
        response = Client(HTTP_HOST=host).get(path)
        policy = response.headers["Content-Security-Policy"]
        assert script_src(policy) == "script-src 'self'", policy
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


def watch(page, seen: list):
    page.add_init_script(LISTEN)
    page.on(
        "console",
        lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return page


def violations(page, seen):
    return seen + page.evaluate("() => window.__csp || []")


@pytest.mark.browser
@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian chromium is not installed")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_pages_work_under_the_policy_and_report_no_violation(live_server, settings, browser):  # noqa: F811
    port = live_server.url.rsplit(":", 1)[1]
    settings.PORTAL_PORT = port
    # The dedicated tier's daily quota (100,000,000) gives the widest y-axis labels.
    tenant, producer, consumer, subscription = demo_data("initrode", tier="dedicated")
    public, tenant_base = f"http://localhost:{port}", f"http://initrode.localhost:{port}"
    problems, seen = {}, []

    anonymous = watch(browser.new_context().new_page(), seen)
    anonymous.goto(f"{public}/api/docs/")
    anonymous.wait_for_selector(".swagger-ui .opblock", timeout=15_000)
    problems["api-docs"] = violations(anonymous, [])

    operator = watch(browser.new_context().new_page(), seen)
    sign_in(operator, public, "root@platform.test")
    for path in ("/", f"/console/tenants/{tenant.pk}/", "/console/dlq/", "/admin/"):
        operator.goto(public + path)
        operator.wait_for_load_state("networkidle")
        problems[path] = violations(operator, [])

    admin = watch(browser.new_context().new_page(), seen)
    sign_in(admin, tenant_base, "hank@globex.test")
    admin.goto(f"{tenant_base}/")
    expect(admin.locator("#charts-status")).to_contain_text("Charts updated", timeout=15_000)
    assert admin.locator("#charts canvas").count() >= 4
    axes = admin.evaluate(AXES)
    assert len(axes) == 4
    assert "100,000,000" in axes["chart-today"]["labels"], axes["chart-today"]
    assert {k: a for k, a in axes.items() if a["widest"] > a["room"]} == {}
    assert "100,000,000" in admin.locator("#stat-today").inner_text()
    problems["dashboard"] = violations(admin, [])
    for path in ("/config/", f"/consumers/{consumer.pk}/", "/deliveries/msg_demo00/"):
        admin.goto(tenant_base + path)
        admin.wait_for_load_state("networkidle")
        problems[path] = violations(admin, [])

    # A form that asks first (data-confirm, once an inline onsubmit): dismissed, nothing
    # happens; accepted, the producer is deleted.
    admin.goto(f"{tenant_base}/config/")
    delete = f"form[action='/config/producer/{producer.pk}/delete/'] button"
    admin.once("dialog", lambda dialog: dialog.dismiss())
    admin.click(delete)
    assert "web-shop" in admin.locator("[data-testid=producers]").inner_text()
    admin.once("dialog", lambda dialog: dialog.accept())
    admin.click(delete)
    admin.wait_for_load_state("networkidle")
    assert "web-shop" not in admin.locator("[data-testid=producers]").inner_text()
    problems["config-delete"] = violations(admin, [])

    assert {k: v for k, v in problems.items() if v} == {}
    assert seen == []
