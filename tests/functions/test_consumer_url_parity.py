"""The portal (when a consumer is saved) and the egress (at every attempt) agree on which
consumer URLs may be called: same shared check, same two settings, CONSUMER_HTTP_ALLOWED_HOSTS
and CONSUMER_PRIVATE_TARGETS (make run's demo receiver on 127.0.0.1:8200)."""

import pytest

from broker.functions import settings as functions_settings
from broker.functions.egress import transport
from broker.functions.shared import messages, records, ssrf
from broker.services import consumers
from tests.functions import egress_fixtures

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver

HTTP_HOSTS = "hooks.example.com,intranet.example.com"  # both in tests.helpers.DNS
PRIVATE_TARGETS = "127.0.0.1:8200-8299"


def _reload(monkeypatch) -> None:
    # The data plane's settings re-read from the environment, the previous ones back after.
    monkeypatch.setattr(functions_settings, "_current", functions_settings.Settings())


def _portal_accepts(url: str) -> bool:
    try:
        consumers.check_consumer_url(url)
    except ssrf.UnsafeURL:
        return False
    return True


def _egress_accepts(url: str) -> bool:
    try:
        transport.vet_url(url)
    except ssrf.UnsafeURL:
        return False
    return True


@pytest.mark.parametrize(
    "url, accepted",
    [
        ("http://hooks.example.com/in", True),  # listed for plain http, public address
        ("http://HOOKS.example.com./in", True),  # the same host, written differently
        ("https://hooks.example.com/in", True),
        ("http://receiver.example.net/in", False),  # public, but not listed for http
        ("http://intranet.example.com/in", False),  # listed, but resolves to 10.0.0.5
        ("http://127.0.0.1:8200/webhooks/demo", True),  # make run's demo receiver
        ("http://127.0.0.1:9000/", False),  # loopback outside the private targets
        ("http://localhost:8200/", False),
    ],
)
def test_the_portal_and_the_egress_give_the_same_verdict_on_a_consumer_url(
    url, accepted, settings, monkeypatch, fake_dns
):
    settings.CONSUMER_HTTP_ALLOWED_HOSTS = frozenset(HTTP_HOSTS.split(","))
    settings.CONSUMER_PRIVATE_TARGETS = tuple(PRIVATE_TARGETS.split(","))
    monkeypatch.setenv("CONSUMER_HTTP_ALLOWED_HOSTS", HTTP_HOSTS)
    monkeypatch.setenv("CONSUMER_PRIVATE_TARGETS", PRIVATE_TARGETS)
    _reload(monkeypatch)

    assert (_portal_accepts(url), _egress_accepts(url)) == (accepted, accepted)


def test_a_consumer_on_plain_http_to_a_listed_host_is_delivered(egress, monkeypatch):
    monkeypatch.setenv("CONSUMER_HTTP_ALLOWED_HOSTS", "hooks.example.com")
    _reload(monkeypatch)
    port = egress.receiver.port
    listed = egress.consumer(url=f"http://hooks.example.com:{port}/hook")
    unlisted = egress.consumer(url=f"http://receiver.example.net:{port}/hook")
    connected = []
    real_pool = transport._pool

    def pool(scheme, address, port, hostname):
        # No network here: the vetted public address is played by the receiver on loopback.
        connected.append((scheme, address, port, hostname))
        return real_pool(scheme, "127.0.0.1", port, hostname)

    monkeypatch.setattr(transport, "_pool", pool)

    egress.run(egress.message(listed), egress.message(unlisted))

    (request,) = egress.receiver.received
    assert request.headers["Host"] == f"hooks.example.com:{port}"
    assert connected == [("http", "93.184.215.14", port, "hooks.example.com")]
    log_pk = records.consumer_log_key(egress.tenant.tenant_id, unlisted.pk, "", "", 0, 0)[0]
    (attempt,) = egress.record_items(log_pk)
    assert attempt["error_kind"] == messages.ERROR_SSRF
