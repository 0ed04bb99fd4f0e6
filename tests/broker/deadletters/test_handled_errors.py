"""One tenant's failure in a job over every tenant is handled, never silent: the others are
still checked, a log line carries the traceback, and /metrics counts it by place."""

import logging

import pytest
from prometheus_client import REGISTRY

from broker.deadletters import alerts, tasks

pytestmark = pytest.mark.django_db


def _handled(where: str) -> float:
    return REGISTRY.get_sample_value("broker_handled_errors_total", {"where": where}) or 0.0


def test_a_tenant_whose_alert_check_fails_is_logged_counted_and_the_others_checked(
    world, monkeypatch, caplog
):
    checked = []

    def evaluate(*, tenant):
        if tenant.pk == world.a.pk:
            raise RuntimeError("boom")
        checked.append(tenant.pk)

    monkeypatch.setattr(alerts, "evaluate", evaluate)
    before = _handled("dlq_alerts_tenant")
    with caplog.at_level(logging.ERROR, logger="broker.deadletters.tasks"):
        tasks.dlq_alerts_run()
    assert world.b.pk in checked
    assert _handled("dlq_alerts_tenant") == before + 1
    failed = [r for r in caplog.records if "DLQ alert check" in r.getMessage()]
    assert failed and failed[0].exc_info and "boom" in str(failed[0].exc_info[1])
