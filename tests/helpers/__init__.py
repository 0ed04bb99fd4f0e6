"""Test helpers (formerly in tests/conftest.py): tests import them from here, and the fixtures of
tests/conftest.py use them."""

from pathlib import Path

from django.conf import settings
from rest_framework.test import APIClient

from broker.functions.local.stack import Stack, parameters_from_env
from broker.functions.shared import secrets
from core import aws

PASSWORD = "Correct-Horse-2026!"
ROOT = Path(__file__).resolve().parents[2]
# The private addresses the e2e tests' receivers listen on (the egress may call them).
E2E_PRIVATE_TARGETS = "127.0.0.1:8200-8299"


def stack_parameters(**extra) -> dict:
    """The data plane stack's parameters from the portal's settings, as `make run` passes them."""
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
    keys = secrets.fernet_keys_in_use(
        keys=settings.SECRETS_FERNET_KEYS, secret_key=settings.SECRET_KEY
    )
    outputs = Stack(endpoint_url=endpoint_url, region=settings.AWS_REGION).deploy(
        stack_parameters(**parameters), fernet_keys=keys
    )
    settings.EGRESS_FUNCTION_ARN = outputs["EgressFunctionArn"]
    settings.SQS_PRODUCER_FUNCTION_ARN = outputs["SqsProducerFunctionArn"]
    return outputs


def source_queue(name: str) -> str:
    """An SQS producer's source queue as a tenant would make it for AWS to map: a visibility
    timeout at least the SQS producer function's (six times it). Returns its ARN."""
    url = aws.sqs().create_queue(QueueName=name, Attributes={"VisibilityTimeout": "360"})
    return aws.queue_arn(url["QueueUrl"])


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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# What the fake resolver answers: hooks.example.com is public, the others are not.
DNS = {
    "hooks.example.com": ["93.184.215.14"],
    "receiver.example.net": ["2606:4700::1111"],
    "intranet.example.com": ["10.0.0.5"],
    "mixed.example.com": ["93.184.215.14", "192.168.1.7"],
}
PUBLIC_URL = "https://hooks.example.com/events"
