"""Shared fixtures.

Real PostgreSQL and Redis (from DATABASE_URL / REDIS_URL, started by `make test`); AWS is moto
in-process for the whole session. Tenants are created once per session (schema creation is
slow) and committed; each test runs in a transaction that is rolled back.
"""

import os
from pathlib import Path

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
from rest_framework.test import APIClient  # noqa: E402

from tests import dataplane_items  # noqa: E402

PASSWORD = "Correct-Horse-2026!"
ROOT = Path(__file__).resolve().parents[1]
# The private addresses the e2e tests' receivers listen on (the egress may call them).
E2E_PRIVATE_TARGETS = "127.0.0.1:8200-8299"
_MOCK = {}


def stack_parameters(**extra) -> dict:
    """The data plane stack's parameters from the portal's settings, as `make run` passes them."""
    from broker.functions.local.stack import parameters_from_env

    return {
        **parameters_from_env(
            {
                "SQS_QUEUE_PREFIX": settings.SQS_QUEUE_PREFIX,
                "TENANT_QUEUE_PREFIX": settings.TENANT_QUEUE_PREFIX or "tenant-",
                "DYNAMODB_CONFIG_TABLE": settings.DYNAMODB_CONFIG_TABLE,
                "DATAPLANE_TABLE": settings.DATAPLANE_TABLE,
                "IDEMPOTENCY_TABLE": settings.IDEMPOTENCY_TABLE,
            }
        ),
        **extra,
    }


def deploy_stack(*, endpoint_url=None, **parameters) -> dict:
    """Deploys deploy/template.yaml (CloudFormation; in-process moto or the moto server), with
    the portal's Fernet keys in the secret the egress reads, and points the portal's settings at
    its outputs. Returns the outputs."""
    from broker.functions.local.stack import Stack
    from broker.functions.shared import secrets

    keys = secrets.fernet_keys_in_use(
        keys=settings.SECRETS_FERNET_KEYS, secret_key=settings.SECRET_KEY
    )
    outputs = Stack(endpoint_url=endpoint_url, region=settings.AWS_REGION).deploy(
        stack_parameters(**parameters), fernet_keys=keys
    )
    settings.EGRESS_FUNCTION_ARN = outputs["EgressFunctionArn"]
    settings.SQS_PRODUCER_FUNCTION_ARN = outputs["SqsProducerFunctionArn"]
    return outputs


@pytest.fixture(scope="session", autouse=True)
def aws_moto():
    """moto in-process for the session: the data plane's stack deployed from the template, as
    everywhere, and the config table `bootstrap_aws` creates. moto's own SQS → Lambda
    invocation is cut, as in the moto server the scripts start."""
    from broker.functions.local.moto_server import unwire_sqs_lambda
    from core import aws

    unwire_sqs_lambda()
    saved = settings.AWS_ENDPOINT_URL
    settings.AWS_ENDPOINT_URL = None
    # Most tests name tenants' queues freely (`sink`, `warehouse`); the prefix rule has tests of
    # its own (tests/broker/services/test_tenant_queue_prefix.py) and the e2e tests keep it on.
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


def source_queue(name: str) -> str:
    """An SQS producer's source queue as a tenant would make it for AWS to map: a visibility
    timeout at least the SQS producer function's (six times it). Returns its ARN."""
    from core import aws

    url = aws.sqs().create_queue(QueueName=name, Attributes={"VisibilityTimeout": "360"})
    return aws.queue_arn(url["QueueUrl"])


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


def make_user(email, *, platform_role="", password=PASSWORD, **extra):
    from tenants.models import User

    return User.objects.create_user(
        email,
        password,
        platform_role=platform_role,
        is_staff=platform_role == "operator",
        is_superuser=platform_role == "operator",
        **extra,
    )


def onboard(slug, tier="standard", admin_email=None):
    """Onboards and provisions a tenant through the services (tasks run eagerly)."""
    from django.test import TestCase

    from tenants import services
    from tenants.models import Tenant

    with TestCase.captureOnCommitCallbacks(execute=True):
        tenant = services.tenant_onboard(
            name=slug.title(), slug=slug, tier=tier, admin_email=admin_email or f"admin@{slug}.test"
        )
    return Tenant.objects.select_related("tier").get(pk=tenant.pk)


class World:
    """Two active tenants (a, b) and one user per role, created once per session."""


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


def host_of(tenant=None) -> str:
    return f"{tenant.slug}.{settings.PORTAL_BASE_DOMAIN}" if tenant else settings.PORTAL_BASE_DOMAIN


class HostClient(APIClient):
    """An API client pinned to one host (Python's resolver knows no *.localhost)."""

    def __init__(self, host, token=None, **kwargs):
        super().__init__(**kwargs)
        self.host = host
        if token:
            self.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    def generic(
        self, method, path, data="", content_type="application/octet-stream", secure=False, **extra
    ):
        extra.setdefault("HTTP_HOST", self.host)
        return super().generic(method, path, data, content_type, secure=secure, **extra)


def token_for(user, tenant=None) -> str:
    response = HostClient(host_of(tenant)).post(
        "/api/v1/auth/token/", {"email": user.email, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()["access"]


@pytest.fixture
def api(db):
    """api(user, tenant=None) → a client on that tenant's host (or the public host) as user."""

    def make(user=None, tenant=None):
        return HostClient(host_of(tenant), token_for(user, tenant) if user else None)

    return make


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    """A moto server of our own, for tests where other processes (workers) use AWS too."""
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
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
    # shared queue (the least MaximumConcurrency AWS takes), the e2e receivers' private range.
    # Config items cached 1 s: the tests change configuration and send at once.
    deploy_stack(
        endpoint_url=url,
        PoolQueueMaxConcurrency="2",
        ConsumerPrivateTargets=E2E_PRIVATE_TARGETS,
        ConfigCacheTtlSeconds="1",
        ConfigMissTtlSeconds="0.5",
    )
    yield url
    proc.terminate()
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


# What the fake resolver answers: hooks.example.com is public, the others are not.
DNS = {
    "hooks.example.com": ["93.184.215.14"],
    "receiver.example.net": ["2606:4700::1111"],
    "intranet.example.com": ["10.0.0.5"],
    "mixed.example.com": ["93.184.215.14", "192.168.1.7"],
}
PUBLIC_URL = "https://hooks.example.com/events"


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
