"""The local runner does what Lambda does around the functions, from what the emulator holds:
event source mappings drive the pollers (partial batch responses only where the mapping says),
each function runs in processes of its own with its deployed Environment and Timeout, an
invocation past its Timeout is killed. Here with tiny handlers deployed as functions of the
test's own (tests/e2e/handlers.py) on queues of its own, so only the runner is under test."""

import io
import json
import signal
import uuid
import zipfile

import boto3
import pytest

from tests.helpers.e2e import Runner, wait_for

pytestmark = pytest.mark.e2e


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("README", "moto never runs this code: the runner does")
    return buffer.getvalue()


class World:
    def __init__(self, endpoint: str, logs):
        kwargs = {"endpoint_url": endpoint, "region_name": "eu-west-1"}
        self.sqs = boto3.client("sqs", **kwargs)
        self.lam = boto3.client("lambda", **kwargs)
        self.iam = boto3.client("iam", **kwargs)
        self.prefix = f"rt{uuid.uuid4().hex[:8]}"
        self.log = logs / "calls.jsonl"
        self.log.touch()
        self.logs = logs
        role = self.iam.create_role(
            RoleName=f"{self.prefix}-role",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )["Role"]["Arn"]
        self.role = role
        self.functions = []

    def function(self, name: str, handler: str, *, timeout: int = 30, **env) -> str:
        arn = self.lam.create_function(
            FunctionName=f"{self.prefix}-{name}",
            Runtime="python3.11",
            Role=self.role,
            Handler=handler,
            Code={"ZipFile": _zip()},
            Timeout=timeout,
            Environment={"Variables": {"RUNNER_TEST_LOG": str(self.log), **env}},
        )["FunctionArn"]
        self.functions.append(arn)
        return arn

    def queue(self, name: str, *, visibility: int = 30) -> tuple[str, str]:
        url = self.sqs.create_queue(
            QueueName=f"{self.prefix}-{name}", Attributes={"VisibilityTimeout": str(visibility)}
        )["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    def mapping(self, queue_arn: str, function_arn: str, *, partial=True, concurrency=2) -> str:
        return self.lam.create_event_source_mapping(
            EventSourceArn=queue_arn,
            FunctionName=function_arn,
            BatchSize=10,
            FunctionResponseTypes=["ReportBatchItemFailures"] if partial else [],
            ScalingConfig={"MaximumConcurrency": concurrency},
        )["UUID"]

    def calls(self, kind):
        return [c for c in map(json.loads, self.log.read_text().splitlines()) if c["kind"] == kind]

    def bodies(self):
        return [c["value"]["body"] for c in self.calls("batch")]

    def count(self, url: str) -> int:
        a = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        return int(a["ApproximateNumberOfMessages"]) + int(
            a["ApproximateNumberOfMessagesNotVisible"]
        )

    def cleanup(self):
        for m in self.lam.list_event_source_mappings()["EventSourceMappings"]:
            if m["FunctionArn"] in self.functions:
                self.lam.delete_event_source_mapping(UUID=m["UUID"])
        for url in self.sqs.list_queues(QueueNamePrefix=self.prefix).get("QueueUrls", []):
            self.sqs.delete_queue(QueueUrl=url)


@pytest.fixture
def world(live_aws, logs):
    w = World(live_aws, logs)
    w.ingress = w.function("ingress", "tests.e2e.handlers.ingress", DEPLOYED_MARK="from-the-stack")
    w.batch = w.function("batch", "tests.e2e.handlers.batch", timeout=3)
    w.runner = Runner(
        aws_endpoint=live_aws,
        log=logs / "runner.log",
        iam_check=False,  # the test's own functions have a bare role
        RUNNER_INGRESS_FUNCTION=w.ingress,
        DJANGO_SECRET_KEY_NOT_FOR_FUNCTIONS="x",
    )
    yield w
    w.runner.stop()
    w.cleanup()


def test_an_http_request_reaches_the_ingress_function_as_a_function_url_event(world):
    w = world
    status, body, headers = w.runner.post(
        "/v1/events?x=1&x=2",
        {"type": "a.b"},
        headers={"X-In": "hello", "Authorization": "Bearer k"},
    )
    assert status == 202 and headers["x-echo"] == "hello"
    assert body == {"path": "/v1/events", "body": '{"type": "a.b"}'}
    (call,) = w.calls("http")
    event = call["value"]
    assert event["version"] == "2.0" and event["rawQueryString"] == "x=1&x=2"
    assert event["queryStringParameters"] == {"x": "1,2"}
    assert event["headers"]["authorization"] == "Bearer k"
    # The function's process has its deployed environment, not the runner's.
    assert call["mark"] == "from-the-stack" and call["secret_key_seen"] is False


def test_a_function_that_raises_answers_502_and_the_runner_keeps_serving(world):
    assert world.runner.post("/raise", {})[0] == 502
    assert world.runner.post("/v1/events", {})[0] == 202


def test_a_mapped_queue_reaches_its_function_successes_deleted_failures_kept(world):
    w = world
    url, arn = w.queue("work")
    w.mapping(arn, w.batch)
    w.sqs.send_message(QueueUrl=url, MessageBody="ok-1")
    w.sqs.send_message(QueueUrl=url, MessageBody="fail-1")
    assert wait_for(lambda: {"ok-1", "fail-1"} <= set(w.bodies()), timeout=15)
    record = next(c["value"] for c in w.calls("batch") if c["value"]["body"] == "ok-1")
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == arn
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    # The context tells the handler its deployed Timeout (3 s), not a default.
    remaining = next(c for c in w.calls("batch"))["remaining_ms"]
    assert 0 < remaining <= 3000
    assert wait_for(lambda: w.count(url) == 1, timeout=5)


def test_a_queue_without_a_mapping_is_not_polled_not_even_by_moto(world):
    """moto's own SQS → Lambda path is cut (the receive count stays 0), and the runner polls
    only mapped queues; once a mapping exists, it is polled without a restart."""
    w = world
    url, arn = w.queue("unmapped")
    w.sqs.send_message(QueueUrl=url, MessageBody="waiting")
    mapped_url, mapped_arn = w.queue("witness")
    w.mapping(mapped_arn, w.batch)
    w.sqs.send_message(QueueUrl=mapped_url, MessageBody="witness")
    assert wait_for(lambda: "witness" in w.bodies(), timeout=15)
    peek = w.sqs.receive_message(QueueUrl=url, AttributeNames=["All"], VisibilityTimeout=0)
    (message,) = peek["Messages"]
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"  # this peek is the first
    assert "waiting" not in w.bodies()
    w.mapping(arn, w.batch)
    assert wait_for(lambda: "waiting" in w.bodies(), timeout=15)


def test_a_disabled_mapping_stops_its_pollers(world):
    w = world
    url, arn = w.queue("paused")
    uuid_ = w.mapping(arn, w.batch)
    w.sqs.send_message(QueueUrl=url, MessageBody="before")
    assert wait_for(lambda: "before" in w.bodies(), timeout=15)
    w.lam.update_event_source_mapping(UUID=uuid_, Enabled=False)
    wait_for(lambda: False, timeout=3)  # discovery runs every 0.5 s; long polls of 1 s end
    w.sqs.send_message(QueueUrl=url, MessageBody="after")
    wait_for(lambda: "after" in w.bodies(), timeout=4)
    assert "after" not in w.bodies() and w.count(url) == 1


def test_without_report_batch_item_failures_the_whole_batch_is_deleted(world):
    """As on AWS: a partial batch response counts only when the mapping asks for it."""
    w = world
    url, arn = w.queue("nopartial")
    w.mapping(arn, w.batch, partial=False)
    w.sqs.send_message(QueueUrl=url, MessageBody="fail-but-deleted")
    assert wait_for(lambda: "fail-but-deleted" in w.bodies(), timeout=15)
    assert wait_for(lambda: w.count(url) == 0, timeout=5)


def test_an_invocation_past_the_functions_timeout_is_killed_and_its_batch_comes_back(world):
    """The function's deployed Timeout is 3 s: a record sleeping 10 s is cut, the process
    killed, the message received again after the queue's visibility timeout (4 s)."""
    w = world
    url, arn = w.queue("slow", visibility=4)
    w.mapping(arn, w.batch)
    w.sqs.send_message(QueueUrl=url, MessageBody="sleep-10")
    assert wait_for(lambda: len(w.calls("batch")) >= 2, timeout=20)
    first, second = w.calls("batch")[:2]
    assert first["pid"] != second["pid"]  # a fresh execution environment
    assert second["value"]["attributes"]["ApproximateReceiveCount"] == "2"
    assert "Task timed out after 3.00 seconds" in (w.logs / "runner.log").read_text()


def test_the_runner_stops_cleanly_on_sigterm(world):
    world.runner.proc.send_signal(signal.SIGTERM)
    assert world.runner.proc.wait(timeout=20) == 0
    assert "stopped:" in (world.logs / "runner.log").read_text()
