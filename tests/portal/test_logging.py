"""Log lines are JSON objects carrying the request id, tenant and user, web and worker alike;
secrets are masked."""

import io
import json
import logging
import logging.config

import pytest
from django.conf import settings
from django.test import Client

from core.redact import redact as mask
from tests.helpers import host_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_log():
    """The configured console handler's formatter and filters, writing to a buffer."""
    stream = io.StringIO()
    config = settings.LOGGING
    handler = logging.StreamHandler(stream)
    formatter_conf = dict(config["formatters"]["json"])
    factory = formatter_conf.pop("()")
    module, name = factory.rsplit(".", 1)
    handler.setFormatter(getattr(__import__(module, fromlist=[name]), name)(**formatter_conf))
    for filter_name in config["handlers"]["console"]["filters"]:
        spec = config["filters"][filter_name]["()"]
        module, name = spec.rsplit(".", 1)
        handler.addFilter(getattr(__import__(module, fromlist=[name]), name)())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_request_logs_json_with_request_id_tenant_and_user(world, json_log):
    client = Client(HTTP_HOST=host_of(world.a))
    client.force_login(world.viewer_a)
    client.get("/no-such-page/", HTTP_X_REQUEST_ID="req-abc-123")
    (line,) = [x for x in lines(json_log) if "no-such-page" in x["message"]]
    assert line["request_id"] == "req-abc-123"
    assert line["tenant"] == world.a.schema_name
    assert line["user"] == str(world.viewer_a.pk)
    assert line["level"] == "WARNING" and "time" in line


def test_worker_lines_carry_the_enqueuing_request_and_the_tasks_schema(world, json_log):
    from portal.celery import app

    @app.task(name="portal.tests.log_probe")
    def probe():
        logging.getLogger("probe").info("working")

    probe.apply()
    (line,) = [x for x in lines(json_log) if x["message"] == "working"]
    assert line["request_id"] != "-" and line["tenant"] == "public"


def test_a_task_that_runs_itself_leaves_no_context_behind():
    """An eager task that runs another of its kind (the relay kicks itself) used to keep its
    task id as the thread's request id: later request log lines carried it."""
    from core.context import current_request_id
    from portal.celery import app

    @app.task(name="portal.tests.nested_probe")
    def nested(depth):
        if depth:
            nested.apply(args=(depth - 1,))

    assert current_request_id() is None
    nested.apply(args=(2,))
    assert current_request_id() is None


def test_secrets_are_masked():
    assert "abcdef123456" not in mask("key ebk_abcdef123456 rejected")
    assert "eyJhbGciOi" not in mask("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.x.y")
    assert "hunter22" not in mask('{"password": "hunter22"}')
    assert "whsec_" in mask("signing with whsec_c2VjcmV0c2VjcmV0")
    assert "c2VjcmV0c2VjcmV0" not in mask("signing with whsec_c2VjcmV0c2VjcmV0")
