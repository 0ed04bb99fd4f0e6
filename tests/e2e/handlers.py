"""Tiny handlers for the runner's own tests: they record what the runner passed them in a JSON
lines file (RUNNER_TEST_LOG) and fail the records whose body says so."""

import json
import os


def _log(kind: str, value) -> None:
    with open(os.environ["RUNNER_TEST_LOG"], "a") as fh:
        fh.write(json.dumps({"kind": kind, "value": value}) + "\n")


def ingress(event, context):
    _log("http", event)
    if event["rawPath"] == "/raise":
        raise RuntimeError("boom")
    return {
        "statusCode": 202,
        "headers": {"content-type": "application/json", "x-echo": event["headers"].get("x-in", "")},
        "body": json.dumps({"path": event["rawPath"], "body": event.get("body")}),
    }


def _batch(kind: str, event) -> dict:
    failures = []
    for record in event["Records"]:
        _log(kind, record)
        if "fail" in record["body"]:
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def egress(event, context):
    return _batch("egress", event)


def source(event, context):
    return _batch("source", event)
