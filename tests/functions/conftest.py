"""Fixtures for the data-plane functions, reusable by every test of broker/functions.

AWS is the session's in-process moto (tests/conftest.py: the data plane's stack deployed, and
the config table `bootstrap_aws` creates). `make test` exports AWS_ENDPOINT_URL for the moto server; the `dataplane` fixture
removes it and reloads the functions' settings, clients and caches, so the functions talk to
the in-process moto like the portal's code does.

Contract items are built by the relay's own builders (`broker.sync.contract`) from stand-in
objects and written straight into the config table, as the relay would write them: the
functions are tested against the real item shapes. Every tenant gets a fresh id (moto's state
lives for the session).
"""

from types import SimpleNamespace

import pytest

from broker.functions import aws, config, settings
from tests.helpers.functions import TenantPlane, create_config_table


@pytest.fixture
def dataplane(monkeypatch):
    """The functions on the in-process moto, with fresh settings, clients and caches."""
    from broker.functions.egress import ratelimit
    from broker.functions.ingress import envelope, limits, routing

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("CONFIG_CACHE_TTL_SECONDS", "60")
    monkeypatch.setenv("CONFIG_MISS_TTL_SECONDS", "5")

    def reset():
        settings.reload()
        aws.reset_clients()
        config.clear()
        limits.reset()
        ratelimit.LIMITER.reset()
        envelope._validators.clear()
        routing._filters.clear()

    reset()
    # boto3 reads AWS_ENDPOINT_URL itself: with it gone, the clients reach the in-process moto
    # (private to this test process), where the tables may not exist yet.
    create_config_table()
    yield SimpleNamespace(tenant=TenantPlane, reset=reset)
    monkeypatch.undo()
    reset()
