"""Every list endpoint and every page that lists things runs the same number of SQL queries
for 1 object as for 6 (docs/design.md, performance budgets), on tenant hosts and for operators.

The routes come from the URL confs: a GET route that is neither measured here nor said not to
list anything fails `test_every_get_route_is_measured_or_said_not_to_list`, so a new list
endpoint cannot ship without its query count."""

import inspect
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLResolver, get_resolver
from django_tenants.utils import tenant_context

from broker import services
from broker.deadletters.models import DeadLetter, ReplayJob
from broker.dlq.models import QuarantinedMessage, TenantDlqState
from broker.sync.models import SyncJob
from tenants import services as tenant_services
from tenants.models import Membership, Tenant, Tier
from tests import dataplane_items as dp
from tests.helpers import PUBLIC_URL, HostClient, host_of, make_user, token_for

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("fake_dns", "empty_dataplane"),
]

SMALL, MORE = 1, 5  # measured with 1 object, then with 1 + 5


# --- route discovery ----------------------------------------------------------------------


def _text(pattern) -> str:
    """A pattern as its route: `consumers/<uuid:consumer_id>/`, a router's `^x/(?P<pk>…)/$`
    as `x/<pk>/`."""
    text = str(pattern).lstrip("^").rstrip("$")
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", text)


def _answers_get(callback) -> bool:
    actions = getattr(callback, "actions", None)
    if actions is not None:  # a ViewSet route: the methods the router bound
        return "get" in actions
    view_class = getattr(callback, "view_class", None)
    if view_class is not None:
        return hasattr(view_class, "get")
    layer = callback
    while layer is not None:  # require_POST / require_http_methods keep the list in a closure
        methods = inspect.getclosurevars(layer).nonlocals.get("request_method_list")
        if methods is not None:
            return "GET" in methods
        layer = getattr(layer, "__wrapped__", None)
    return True


def get_routes(urlconf: str) -> set[str]:
    found: set[str] = set()

    def walk(patterns, prefix):
        for pattern in patterns:
            route = prefix + _text(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
            elif _answers_get(pattern.callback):
                found.add(route)

    walk(get_resolver(urlconf).url_patterns, "")
    return {r for r in found if not r.startswith("admin/")}  # Django's admin, not ours


# --- what each list shows, and how to add n of it ------------------------------------------


def _consumer(world, name):
    consumer, _ = services.consumer_create(
        actor=world.admin_a, name=name, kind="https", url=PUBLIC_URL
    )
    return consumer


def fill_config(world, n, tag):
    """Producers (with a key), consumers, subscriptions naming both, event types."""
    shown = []
    with tenant_context(world.a):
        for i in range(n):
            producer, _ = services.producer_create(
                actor=world.admin_a, name=f"p-{tag}{i}", kind="https"
            )
            services.producer_rotate_key(actor=world.admin_a, producer=producer)
            consumer = _consumer(world, f"c-{tag}{i}")
            services.subscription_create(
                actor=world.admin_a, consumer=consumer, producer=producer, event_type=f"t.{tag}{i}"
            )
            services.event_type_create(actor=world.admin_a, name=f"type.{tag}{i}")
            shown += [producer.name, consumer.name, f"t.{tag}{i}"]
    return shown


def _only(prefix):
    """fill_config, checking the list shows what it lists (its producers, consumers…)."""

    def fill(world, n, tag):
        return [s for s in fill_config(world, n, tag) if s.startswith(prefix)]

    fill.__name__ = f"fill_config_{prefix}"
    return fill


def fill_members(world, n, tag, **_):
    shown = []
    for i in range(n):
        user = make_user(f"m-{tag}{i}@a.test")
        Membership.objects.create(user=user, tenant=world.a, role="viewer")
        tenant_services.member_invite(
            tenant=world.a, email=f"inv-{tag}{i}@a.test", role="viewer", invited_by=world.admin_a
        )
        shown.append(user.email)
    return shown


def fill_dashboard(world, n, tag):
    return fill_config(world, n, tag) + fill_members(world, n, tag)


def fill_event_types(world, n, tag):
    with tenant_context(world.a):
        return [
            services.event_type_create(actor=world.admin_a, name=f"et.{tag}{i}").name
            for i in range(n)
        ]


def fill_audit(world, n, tag):
    with tenant_context(world.a):
        return [
            str(services.event_type_create(actor=world.admin_a, name=f"au.{tag}{i}").pk)
            for i in range(n)
        ]


def fill_dead_letters(world, n, tag):
    """Letters of as many consumers (their names are looked up) and failures."""
    shown = []
    with tenant_context(world.a):
        for i in range(n):
            consumer = _consumer(world, f"dl-{tag}{i}")
            DeadLetter.objects.create(
                delivery_id=f"msg_{uuid.uuid4().hex}",
                consumer_id=str(consumer.pk),
                event_id=f"evt_{tag}{i}",
                event_type=f"dl.{tag}{i}",
                payload_encrypted="x",
                last_status=500 + i,
            )
            shown += [consumer.name, f"dl.{tag}{i}"]
    return shown


def fill_replay_jobs(world, n, tag):
    shown = []
    with tenant_context(world.a):
        for i in range(n):
            consumer = _consumer(world, f"rj-{tag}{i}")
            ReplayJob.objects.create(
                consumer_id=str(consumer.pk),
                consumer_name=consumer.name,
                status="completed",
                total=3,
                sent=3,
                created_by=world.admin_a,
                created_by_email=world.admin_a.email,
            )
            shown.append(consumer.name)
    return shown


def fill_deliveries(world, n, tag):
    """Attempts of as many consumers, in the data plane's table."""
    shown = []
    with tenant_context(world.a):
        for i in range(n):
            consumer = _consumer(world, f"dv-{tag}{i}")
            delivery_id = f"dlv_{tag}{i}_{uuid.uuid4().hex[:8]}"
            dp.attempt(world.a, consumer.pk, delivery_id=delivery_id, at=dp.minutes_ago(i + 1))
            dp.consumer_minute(world.a, consumer.pk, dp.minutes_ago(i + 1), ok=1, latencies=[40])
            shown.append(delivery_id)
    return shown


def fill_consumer_stats(world, n, tag):
    """The chart sums its consumers' stats (one query for their ids): nothing per consumer is
    shown, so only the query count is checked."""
    fill_deliveries(world, n, tag)
    return []


def setup_consumer(world):
    with tenant_context(world.a):
        return {"consumer_id": _consumer(world, "logged").pk}


def fill_consumer_log(world, n, tag, consumer_id):
    shown = []
    for i in range(n):
        delivery_id = f"log_{tag}{i}_{uuid.uuid4().hex[:8]}"
        dp.attempt(world.a, consumer_id, delivery_id=delivery_id, at=dp.minutes_ago(i + 1))
        shown.append(delivery_id)
    return shown


def setup_delivery(world):
    with tenant_context(world.a):
        consumer = _consumer(world, "retried")
    return {"delivery_id": f"dlv_{uuid.uuid4().hex}", "consumer_id": consumer.pk}


def fill_attempts(world, n, tag, delivery_id, consumer_id):
    """Attempts (retries) of one delivery: the delivery page lists them."""
    shown = []
    for i in range(n):
        error = f"HTTP 503 {tag}{i}"
        dp.attempt(
            world.a,
            consumer_id,
            delivery_id=delivery_id,
            at=dp.minutes_ago(10 - i),
            attempt_no=len(tag) * 10 + i + 1,
            status="failed",
            http_status=503,
            error=error,
            error_kind="http",
        )
        shown.append(error)
    return shown


def _tenants(n, tag, world):
    return [
        Tenant.objects.create(
            name=f"T {tag}{i}", slug=f"t-{tag}{i}", schema_name=f"t_{tag}{i}", tier=world.a.tier
        )
        for i in range(n)
    ]


def fill_tenants(world, n, tag):
    return [str(t.pk) for t in _tenants(n, tag, world)]


def fill_tiers(world, n, tag):
    shown = []
    for i in range(n):
        tier = Tier.objects.get(pk=world.a.tier_id)
        tier.pk, tier.name, tier.is_default_for_model = None, f"tier-{tag}{i}", False
        tier.save()
        shown.append(tier.name)
    return shown


def fill_quarantine(world, n, tag):
    return [
        QuarantinedMessage.objects.create(
            message_id=f"m-{tag}{i}", body="{}", reason="unknown tenant", tenant_hint=f"q-{tag}{i}"
        ).tenant_hint
        for i in range(n)
    ]


def fill_console_dlq(world, n, tag):
    for i, tenant in enumerate(_tenants(n, tag, world)):
        TenantDlqState.objects.create(tenant=tenant, backlog=i + 1)
    return fill_quarantine(world, n, tag) + [f"t-{tag}{i}" for i in range(n)]


def setup_tenant(world):
    return {"tenant_id": world.a.pk}


def setup_tenant_pk(world):
    return {"pk": world.a.pk}


def fill_sync_jobs(world, n, tag, tenant_id):
    return [
        str(
            SyncJob.objects.create(
                kind="resync", tenant_id=tenant_id, status="running", requested_by=world.operator
            ).pk
        )
        for _ in range(n)
    ]


@dataclass(frozen=True)
class Case:
    fill: Callable
    setup: Callable | None = None
    api: bool = True
    params: dict = field(default_factory=lambda: {"page_size": 100})


# Tenant host (as the tenant's admin): route → how to fill what it lists.
TENANT_LISTS = {
    "api/v1/members/": Case(fill_members),
    "api/v1/producers/": Case(_only("p-")),
    "api/v1/consumers/": Case(_only("c-")),
    "api/v1/subscriptions/": Case(_only("t.")),
    "api/v1/event-types/": Case(fill_event_types),
    "api/v1/audit-events/": Case(fill_audit),
    "api/v1/sync-status/": Case(fill_config),
    "api/v1/dead-letters/": Case(fill_dead_letters),
    "api/v1/dead-letters/groups/": Case(fill_dead_letters),
    "api/v1/replay-jobs/": Case(fill_replay_jobs),
    "api/v1/deliveries/": Case(fill_deliveries, params={"limit": 100}),
    "": Case(fill_dashboard, api=False, params={}),
    "config/": Case(fill_config, api=False, params={}),
    "dashboard/data/": Case(fill_consumer_stats, api=False, params={}),
    "consumers/<uuid:consumer_id>/": Case(
        fill_consumer_log, setup=setup_consumer, api=False, params={}
    ),
    "deliveries/<str:delivery_id>/": Case(
        fill_attempts, setup=setup_delivery, api=False, params={}
    ),
    "dead-letters/": Case(fill_dead_letters, api=False, params={}),
    "replay-jobs/": Case(fill_replay_jobs, api=False, params={}),
}

# Public host (as an operator).
PUBLIC_LISTS = {
    "api/v1/tenants/": Case(fill_tenants),
    "api/v1/tenants/<pk>/members/": Case(fill_members, setup=setup_tenant_pk),
    "api/v1/tiers/": Case(fill_tiers),
    "api/v1/quarantine/": Case(fill_quarantine),
    "api/v1/sync/": Case(fill_tenants, params={}),
    "tenants": Case(fill_tenants, params={}),
    "console/tenants/<uuid:tenant_id>/jobs/": Case(
        fill_sync_jobs, setup=setup_tenant, api=False, params={}
    ),
    "console/dlq/": Case(fill_console_dlq, api=False, params={}),
}

# GET routes that list nothing (one object, a form, a figure), or are measured elsewhere.
ANY_HOST = {
    "healthz": "a status",
    "login/": "a form",
    "api/schema/": "the OpenAPI document, no query per object",
    "api/docs/": "Swagger UI",
}
TENANT_NOT_LISTS = {
    **ANY_HOST,
    "api/v1/me/": "one user",
    "api/v1/dlq-alerts/": "one tenant's thresholds",
    "api/v1/members/<pk>/": "one object",
    "api/v1/producers/<pk>/": "one object",
    "api/v1/consumers/<pk>/": "one object",
    "api/v1/subscriptions/<pk>/": "one object",
    "api/v1/subscriptions/<pk>/held-keys/": "one subscription; its keys from the data plane",
    "api/v1/event-types/<pk>/": "one object",
    "api/v1/audit-events/<pk>/": "one object",
    "api/v1/dead-letters/<pk>/": "one object",
    "api/v1/replay-jobs/<pk>/": "one object",
    "api/v1/deliveries/<str:delivery_id>/": "one delivery (its attempts: the page below)",
    "invitations/<str:token>/": "one invitation",
    "config/consumer/<uuid:object_id>/edit/": "one object's form",
    "config/producer/<uuid:object_id>/edit/": "one object's form",
    "config/subscription/<uuid:object_id>/edit/": "one object's form",
    "dead-letters/<uuid:letter_id>/": "one letter",
    "api/v1/config/revisions/": "tests/broker/configcode/test_revisions_rollback.py",
    "config/revisions/": "the newest 50 revisions, one query; a shown diff: two documents",
    "api/v1/config/export/": "one document: a query per kind of object",
    "api/v1/config/revisions/<int:number>/": "one document: one query",
    "config/revisions/<int:number>/rollback/": "one plan: a query per kind of object",
    "config/as-code/": "one document and a pasted one's plan: a query per kind of object",
    "api/v1/config/diff/": "two documents: one query each",
}
PUBLIC_NOT_LISTS = {
    **ANY_HOST,
    "api/v1/tenants/<pk>/": "one object",
    "api/v1/tiers/<name>/": "one object",
    "api/v1/quarantine/<pk>/": "one object",
    "api/v1/sync/jobs/<uuid:job_id>/": "one job",
    "metrics": "aggregates: a fixed set of queries (tests/portal/test_metrics.py)",
    "": "the console's tenant list: tests/portal/test_console.py (3 vs 100 tenants)",
    "console/tenants/<uuid:tenant_id>/": "tests/portal/test_console_tenant.py",
}


def test_every_get_route_is_measured_or_said_not_to_list():
    for urlconf, lists, not_lists in (
        ("portal.urls_tenants", TENANT_LISTS, TENANT_NOT_LISTS),
        ("portal.urls_public", PUBLIC_LISTS, PUBLIC_NOT_LISTS),
    ):
        routes = get_routes(urlconf)
        unknown = routes - set(lists) - set(not_lists)
        assert not unknown, f"{urlconf}: measure these GET routes here, or say why not: {unknown}"
        assert set(lists) | set(not_lists) <= routes, f"{urlconf}: gone from the URL conf"


# --- the measure --------------------------------------------------------------------------


def _client(user, tenant, *, api: bool):
    if api:
        return HostClient(host_of(tenant), token_for(user, tenant))
    client = Client(HTTP_HOST=host_of(tenant))
    client.force_login(user)
    return client


def _measure(client, path, params) -> tuple[int, str, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path, params)
    assert response.status_code == 200, (path, response.status_code)
    return len(queries), response.content.decode(), [q["sql"][:160] for q in queries]


def _path(route: str, kwargs: dict) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(kwargs[m.group(1)]), route)


def _check(world, route, case, user, tenant):
    kwargs = case.setup(world) if case.setup else {}
    path = _path(route, kwargs)
    client = _client(user, tenant, api=case.api)
    case.fill(world, SMALL, "a", **kwargs)
    client.get(path, case.params)  # in-process caches warmed, as on every later view
    # Both measures start from an empty shared cache: nothing read before hides a query,
    # and cached data-plane reads do not hide the objects added.
    cache.clear()
    small, _, _ = _measure(client, path, case.params)
    shown = case.fill(world, MORE, "b", **kwargs)
    cache.clear()
    large, body, large_sql = _measure(client, path, case.params)
    missing = [s for s in shown if s not in body]
    assert not missing, f"{route}: the added objects are not listed: {missing}"
    assert large == small, (route, small, large, large_sql)


@pytest.mark.parametrize("route", sorted(TENANT_LISTS))
def test_tenant_lists_run_a_constant_number_of_queries(world, route):
    _check(world, route, TENANT_LISTS[route], world.admin_a, world.a)


@pytest.mark.parametrize("route", sorted(PUBLIC_LISTS))
def test_operator_lists_run_a_constant_number_of_queries(world, route):
    _check(world, route, PUBLIC_LISTS[route], world.operator, None)
