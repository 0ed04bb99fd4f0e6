"""Shared fixtures.

Real PostgreSQL and Redis (from DATABASE_URL / REDIS_URL, started by `make test`); AWS is moto
in-process for the whole session. Tenants are created once per session (schema creation is
slow) and committed; each test runs in a transaction that is rolled back.
"""

import os

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
# boto3 reads AWS_ENDPOINT_URL from the environment when a client gets no endpoint: left set,
# "in-process" moto would silently talk to whatever server the variable names. Tests that
# need a server (live_aws, the e2e tests) pass its address explicitly.
os.environ.pop("AWS_ENDPOINT_URL", None)

import pytest  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from moto import mock_aws  # noqa: E402

from tests import dataplane_items  # noqa: E402
from tests.helpers import (  # noqa: E402
    DNS,
    E2E_PRIVATE_TARGETS,
    ROOT,
    HostClient,
    World,
    deploy_stack,
    free_port,
    host_of,
    make_user,
    onboard,
    token_for,
)

_MOCK = {}


@pytest.fixture(scope="session", autouse=True)
def aws_moto():
    """moto in-process for the session: the data plane's stack deployed from the template, as
    everywhere, and the config table `bootstrap_aws` creates. moto's own SQS → Lambda
    invocation is cut, as in the moto server the scripts start."""
    from broker.functions.local.moto_server import patch_moto
    from core import aws

    patch_moto()
    saved = settings.AWS_ENDPOINT_URL
    settings.AWS_ENDPOINT_URL = None
    # Most tests name tenants' queues freely (`sink`, `warehouse`); the prefix rule has tests of
    # its own (tests/broker/sync/test_mappings.py) and the e2e tests keep it on.
    saved_prefix, settings.TENANT_QUEUE_PREFIX = settings.TENANT_QUEUE_PREFIX, ""
    aws.reset_clients()
    with mock_aws() as mock:
        from portal.management.commands.bootstrap_aws import bootstrap_aws

        deploy_stack()
        bootstrap_aws()
        _MOCK["aws"] = mock
        yield
    settings.TENANT_QUEUE_PREFIX = saved_prefix
    settings.AWS_ENDPOINT_URL = saved
    aws.reset_clients()


@pytest.fixture(scope="session", autouse=True)
def celery_eager():
    """Tasks run inline when enqueued (on commit). Tests of real workers start their own."""
    from portal.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture(scope="session", autouse=True)
def fast_password_hasher():
    """Tests hash passwords with MD5: PBKDF2 at a million iterations cost ~30 s of the suite.
    Production keeps Django's default (PBKDF2); portal/settings.py does not set the hashers."""
    from django.test import override_settings

    override = override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
    override.enable()  # sends setting_changed, which clears Django's hasher caches
    yield
    override.disable()


@pytest.fixture(scope="session", autouse=True)
def _end_stray_database_sessions(django_db_setup, django_db_blocker):
    """At the end of the run, end every other session on the test database (the live server's
    request threads, a worker a test started) or it cannot be dropped. Only then: ending them
    after each test also ended connections the next test still held (under Playwright's sync
    API the test body and its fixtures may hold different ones)."""
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def empty_dataplane():
    """The data plane's tables (delivery records, counters) empty before and after the test."""
    dataplane_items.clear()
    yield
    dataplane_items.clear()


@pytest.fixture(autouse=True)
def _public_schema():
    connection.set_schema_to_public()
    yield
    connection.set_schema_to_public()


@pytest.fixture(scope="session")
def world(django_db_setup, django_db_blocker, aws_moto, celery_eager):
    from tenants.models import Membership

    with django_db_blocker.unblock():
        w = World()
        w.a = onboard("tenant-a")
        w.b = onboard("tenant-b")
        w.operator = make_user("op@platform.test", platform_role="operator")
        w.support = make_user("support@platform.test", platform_role="support")
        w.admin_a = make_user("admin@a.test")
        w.developer_a = make_user("dev@a.test")
        w.viewer_a = make_user("viewer@a.test")
        w.admin_b = make_user("admin@b.test")
        w.outsider = make_user("nobody@x.test")
        for user, tenant, role in [
            (w.admin_a, w.a, "admin"),
            (w.developer_a, w.a, "developer"),
            (w.viewer_a, w.a, "viewer"),
            (w.admin_b, w.b, "admin"),
        ]:
            Membership.objects.create(user=user, tenant=tenant, role=role)
        connection.set_schema_to_public()
    return w


@pytest.fixture
def api(db):
    """api(user, tenant=None) → a client on that tenant's host (or the public host) as user."""

    def make(user=None, tenant=None):
        return HostClient(host_of(tenant), token_for(user, tenant) if user else None)

    return make


@pytest.fixture(scope="session")
def moto_server():
    """A moto server of our own, for tests where other processes (workers) use AWS too."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "broker.functions.local.moto_server", "-H", "127.0.0.1"]
        + ["-p", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1)  # noqa: S310
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the moto server did not start") from None
            time.sleep(0.1)
    # The data plane as `make run` deploys it: the template by CloudFormation. Two pollers a
    # shared queue (the least MaximumConcurrency AWS takes), the e2e receivers' private range,
    # config items cached 1 s (the tests change configuration and send at once).
    deploy_stack(
        endpoint_url=url,
        PoolQueueMaxConcurrency="2",
        ConsumerPrivateTargets=E2E_PRIVATE_TARGETS,
        ConfigCacheTtlSeconds="1",
        ConfigMissTtlSeconds="0.5",
    )
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        # A loaded machine may take longer to unwind the server's state: the session is over.
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def live_aws(moto_server):
    """Switches this process from in-process moto to the moto server (state of each kept)."""
    from core import aws
    from portal.management.commands.bootstrap_aws import bootstrap_aws

    mock = _MOCK["aws"]
    mock.stop(remove_data=False)
    settings.AWS_ENDPOINT_URL = moto_server
    # Against the deployed stack the roles allow tenants' queues of this prefix only.
    saved_prefix, settings.TENANT_QUEUE_PREFIX = settings.TENANT_QUEUE_PREFIX, "tenant-"
    aws.reset_clients()
    try:
        bootstrap_aws()
        yield moto_server
    finally:
        settings.AWS_ENDPOINT_URL = None
        settings.TENANT_QUEUE_PREFIX = saved_prefix
        aws.reset_clients()
        mock.start(reset=False)


@pytest.fixture
def fake_dns(monkeypatch):
    """No network here: consumer hosts resolve from DNS above; IP literals resolve as usual."""
    import socket

    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name in DNS:
            out = []
            for addr in DNS[name]:
                family = socket.AF_INET6 if ":" in addr else socket.AF_INET
                sockaddr = (addr, port or 443, 0, 0) if ":" in addr else (addr, port or 443)
                out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
            return out
        if name and any(c.isalpha() for c in name.replace("0x", "")) and "." in name:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return DNS
