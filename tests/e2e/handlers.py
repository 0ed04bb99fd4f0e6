"""Tiny handlers for the runner's own tests, deployed in the moto server as functions of their
own: they record what the runner passed them (and what their process sees: its deployed
environment, the deadline the context gives) in a JSON lines file (RUNNER_TEST_LOG, part of
the function's deployed Environment), and fail or sleep on the records whose body says so."""

import json
import os
import time


def _log(kind: str, value, context=None) -> None:
    entry = {
        "kind": kind,
        "value": value,
        "pid": os.getpid(),
        "mark": os.environ.get("DEPLOYED_MARK"),
        "secret_key_seen": "DJANGO_SECRET_KEY" in os.environ,
        "remaining_ms": context.get_remaining_time_in_millis() if context else None,
    }
    with open(os.environ["RUNNER_TEST_LOG"], "a") as fh:
        fh.write(json.dumps(entry) + "\n")


def ingress(event, context):
    _log("http", event, context)
    if event["rawPath"] == "/raise":
        raise RuntimeError("boom")
    return {
        "statusCode": 202,
        "headers": {"content-type": "application/json", "x-echo": event["headers"].get("x-in", "")},
        "body": json.dumps({"path": event["rawPath"], "body": event.get("body")}),
    }


def batch(event, context):
    failures = []
    for record in event["Records"]:
        _log("batch", record, context)
        body = record["body"]
        if body.startswith("sleep-"):
            time.sleep(float(body.split("-")[1]))
        if "fail" in body:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
