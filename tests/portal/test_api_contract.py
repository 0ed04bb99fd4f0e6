"""The API contract, fuzzed: schemathesis generates requests from each host's OpenAPI document
(operator API on the public host, tenant API on a tenant host) and checks every answer against
it: no 5xx, only documented status codes, bodies that match their schema.

The run has tenants of its own (`contract-ops`, `contract-api`), so nothing it does to a tenant
can reach the ones other tests share; each operation's examples run in one transaction that is
rolled back, and a lifecycle action's side effects run only on commit.
"""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection, transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests import dataplane_items
from tests.helpers import host_of, make_user, onboard, token_for

pytestmark = [pytest.mark.contract, pytest.mark.django_db]

# About 1,300 + 700 requests: one to two minutes for both APIs on two shared cores.
MAX_EXAMPLES = 25
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


# Schemathesis's default checks and response-schema conformance, less one: "positive data
# acceptance" expects every schema-valid body to be accepted, and some valid-looking ones are
# refused by rules a schema cannot state (an unknown tier, a lifecycle action the tenant's
# status does not allow, a name already taken): 400s the schema documents.
EXCLUDED_CHECKS = [positive_data_acceptance]


class Fuzz:
    """The run's own tenants, users and tokens, created once (committed) for the module and
    removed after it, schemas included: other tests count the platform's tenants."""


@pytest.fixture(scope="module")
def fuzz(django_db_setup, django_db_blocker, aws_moto, celery_eager, world):
    from django_tenants.utils import tenant_context

    from broker.services import consumers as consumer_services
    from tenants.models import Membership

    with django_db_blocker.unblock():
        f = Fuzz()
        f.ops_tenant = onboard("contract-ops")
        f.tenant = onboard("contract-api")
        f.operator = make_user("fuzz-operator@platform.test", platform_role="operator")
        f.admin = make_user("fuzz-admin@contract.test")
        Membership.objects.create(user=f.admin, tenant=f.tenant, role="admin")
        with tenant_context(f.tenant):
            # An sqs consumer: its answers carry `previous_signing_secret_valid_until: null`
            # and an empty `url`, both of which the schema once refused.
            f.consumer, _ = consumer_services.consumer_create(
                actor=f.admin,
                name="queue",
                kind="sqs",
                queue_arn="arn:aws:sqs:eu-west-1:123456789012:contract",
            )
        connection.set_schema_to_public()
        f.operator_token = token_for(f.operator)
        f.admin_token = token_for(f.admin, f.tenant)
    yield f
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        Membership.objects.filter(tenant__in=[f.tenant, f.ops_tenant]).delete()
        for tenant in (f.tenant, f.ops_tenant):
            tenant.delete(force_drop=True)
        # Users are referenced from tenant schemas (audit events): not deleted, only left
        # without a role or a way in.
        for user in (f.operator, f.admin):
            user.platform_role, user.is_active, user.is_staff, user.is_superuser = (
                "",
                False,
                False,
                False,
            )
            user.save()


@pytest.fixture
def app(db):
    """Django's WSGI handler in this thread, on the test's connection: as Django's test client
    does, requests must not close the connection that holds the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def operator_api(app, fuzz):
    return schemathesis.openapi.from_wsgi("/api/schema/", app, headers={"Host": host_of()})


@pytest.fixture
def tenant_api(app, fuzz):
    return schemathesis.openapi.from_wsgi(
        "/api/schema/", app, headers={"Host": host_of(fuzz.tenant)}
    )


@pytest.fixture
def tenant_data(fuzz, empty_dataplane):
    """A delivery in the data plane's log, as the egress writes it (latency in fractions of a
    millisecond), and a fresh API budget for the tenant."""
    from core import throttling

    throttling.reset(fuzz.tenant.pk)
    dataplane_items.attempt(
        fuzz.tenant,
        fuzz.consumer.pk,
        delivery_id="dlv_contract",
        at=datetime.now(UTC),
        latency_ms=Decimal("1.1"),
    )


def fuzz_api(schema, *, base_url, token, known_ids, only=None):
    """Runs every operation of the schema: positive and negative examples, and for operations
    on one object, examples aimed at an object that exists. Returns the failures, one line per
    operation (each operation stops at its first)."""
    failures, requests = [], 0
    # The API refuses NUL characters and lone surrogates in any string (core/parsers.py, a
    # documented 400): valid examples carry neither.
    schema.config.generation.update(allow_x00=False, codec="utf-8")
    headers = {"Authorization": f"Bearer {token}"}
    for result in schema.get_all_operations():
        operation = result.ok()
        if only and operation.label not in only:
            continue
        strategies = [
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        ]
        path_params = re.findall(r"{(\w+)}", operation.path)
        fixed = {name: known_ids[name] for name in path_params if name in known_ids}
        if fixed:
            strategies += [
                operation.as_strategy(GenerationMode.POSITIVE, path_parameters=fixed),
                # Invalid bodies sent to an object that exists: a coerced value would be saved.
                operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=fixed),
            ]

        @given(case=st.one_of(strategies))
        @FUZZ
        def run(case):
            nonlocal requests
            requests += 1
            # Each example in a savepoint: what one does (an offboarding, a deleted consumer)
            # does not change what the next one finds.
            with transaction.atomic():
                case.call_and_validate(
                    base_url=base_url, headers=headers, excluded_checks=EXCLUDED_CHECKS
                )
                transaction.set_rollback(True)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # one entry per failing operation
            failures.append(f"{operation.label}: {str(exc).strip()[:1500]}")
    return failures, requests


def test_the_operator_api_answers_as_its_schema_says(operator_api, fuzz, fake_dns):
    failures, requests = fuzz_api(
        operator_api,
        base_url=f"http://{host_of()}",
        token=fuzz.operator_token,
        known_ids={"id": str(fuzz.ops_tenant.pk), "name": "standard"},
    )
    print(f"operator API: {requests} requests")
    assert requests > 100
    assert not failures, "\n\n".join(failures)


def test_the_tenant_api_answers_as_its_schema_says(tenant_api, fuzz, tenant_data, fake_dns):
    failures, requests = fuzz_api(
        tenant_api,
        base_url=f"http://{host_of(fuzz.tenant)}",
        token=fuzz.admin_token,
        known_ids={"id": str(fuzz.consumer.pk), "delivery_id": "dlv_contract"},
    )
    print(f"tenant API: {requests} requests")
    assert requests > 100
    assert not failures, "\n\n".join(failures)


def test_the_fuzz_run_fails_on_a_response_that_breaks_the_schema(
    operator_api, fuzz, fake_dns, monkeypatch
):
    """Planted: the tier list answers a quota as a string while the schema says integer."""
    from tenants.api import TierSerializer

    plain = TierSerializer.to_representation

    def stringified(self, instance):
        data = plain(self, instance)
        data["max_producers"] = str(data["max_producers"])
        return data

    monkeypatch.setattr(TierSerializer, "to_representation", stringified)
    failures, _ = fuzz_api(
        operator_api,
        base_url=f"http://{host_of()}",
        token=fuzz.operator_token,
        known_ids={},
        only={"GET /api/v1/tiers/", "GET /api/v1/tenants/"},
    )
    assert len(failures) == 1
    assert failures[0].startswith("GET /api/v1/tiers/")
    assert "Response violates schema" in failures[0] and "max_producers" in failures[0]
