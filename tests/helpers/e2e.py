"""Test helpers (formerly in tests/e2e/conftest.py): tests import them from here, and the fixtures of
tests/e2e/conftest.py use them."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
from django.conf import settings

from broker.functions.local import iam
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate, *, timeout: float, interval: float = 0.05):
    """predicate's first truthy value within timeout, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def _wait_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{proc.args} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)


# What each runner's functions called, checked against their roles (pytest_terminal_summary).
IAM_REPORTS: list[str] = []


class Runner:
    """`python -m broker.functions.runner` in its own process group, running the stack the
    moto server holds (tests/conftest.py deploys it): its functions with their deployed
    environments, polled through their event source mappings. Every AWS call the functions
    and their mappings make is recorded; `stop` checks them against the functions' roles and
    fails, naming the function, the action and the resource, on any call a role denies."""

    def __init__(self, *, aws_endpoint: str, log: Path, iam_check: bool = True, **env):
        self.port = free_port()
        self.log = log
        self.aws_endpoint = aws_endpoint
        self.calls = log.with_name(log.stem + "-calls.jsonl")
        self.calls.touch()
        self.iam_check = iam_check
        self.url = f"http://127.0.0.1:{self.port}"
        runner_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DJANGO_"))},
            "AWS_ENDPOINT_URL": aws_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": settings.AWS_REGION,
            "AWS_CALL_LOG": str(self.calls),
            "INGRESS_PORT": str(self.port),
            "RUNNER_WAIT_SECONDS": "1",
            "RUNNER_DISCOVER_SECONDS": "0.5",
            "PYTHONUNBUFFERED": "1",
            **{k: str(v) for k, v in env.items()},
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker.functions.runner"],
            cwd=ROOT,
            env=runner_env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_port(self.port, self.proc, log)

    def check_iam(self, *, extra_roles: dict | None = None) -> str:
        """The recorded calls against the deployed roles; raises naming each denied call."""
        kwargs = {"endpoint_url": self.aws_endpoint, "region_name": settings.AWS_REGION}
        result = iam.check_stack(
            self.calls,
            cloudformation=boto3.client("cloudformation", **kwargs),
            lambda_client=boto3.client("lambda", **kwargs),
            iam_client=boto3.client("iam", **kwargs),
            stack_name="broker",
            extra_policies=extra_roles,
        )
        text = result.report()
        IAM_REPORTS.append(text)
        if not result.ok:
            raise AssertionError(f"AWS calls the functions' roles deny:\n{text}")
        return text

    def post(self, path: str, body, *, headers: dict | None = None, timeout: float = 10):
        """(status, parsed JSON or raw text, headers) of a POST to the ingress."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
                status, raw, hdrs = answer.status, answer.read(), answer.headers
        except urllib.error.HTTPError as exc:
            status, raw, hdrs = exc.code, exc.read(), exc.headers
        try:
            return status, json.loads(raw), hdrs
        except ValueError:
            return status, raw.decode(errors="replace"), hdrs

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self.iam_check:
            self.iam_check = False
            self.check_iam()
        return self.proc.returncode


class Receiver:
    """`python -m broker.functions.demo_receiver` on a port of the private-targets range."""

    def __init__(self, *, log: Path, secret_file: Path | None = None, port: int | None = None):
        self.port = port or free_receiver_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "RECEIVER_PORT": str(self.port), "PYTHONUNBUFFERED": "1"}
        env.pop("RECEIVER_SIGNING_SECRET", None)
        if secret_file is not None:
            env["RECEIVER_SIGNING_SECRET_FILE"] = str(secret_file)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broker.functions.demo_receiver"],
            cwd=ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_port(self.port, self.proc, log)

    def messages(self) -> list[dict]:
        with urllib.request.urlopen(self.url + "/messages.json", timeout=5) as answer:  # noqa: S310
            return json.loads(answer.read())

    def clear(self) -> None:
        request = urllib.request.Request(self.url + "/messages", method="DELETE")
        urllib.request.urlopen(request, timeout=5).close()  # noqa: S310

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)


def free_receiver_port() -> int:
    """A free port in 8200-8299 (the private targets the data plane may call)."""
    for port in range(8250, 8300):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8250-8299")


class KeyedReceiver:
    """An HTTP consumer in the test's process, for ordered delivery: it records every request's
    (time, key, seq, status) from the event's `data`, fails a share of first attempts at random
    (503; a delivery's first attempt is its first `webhook-id` seen), and every attempt of the
    events of the keys in `failing`."""

    def __init__(self, *, fail_first: float = 0.0, seed: int = 18):
        import random
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.fail_first, self.rng = fail_first, random.Random(seed)
        self.failing: set[str] = set()
        self.log: list[tuple[float, str, int, int]] = []
        self.ids: dict[tuple[str, int], str] = {}  # (key, seq) → its webhook-id (delivery id)
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = json.loads(body).get("data") or {}
                status = receiver._answer(self.headers.get("webhook-id", ""), data)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_receiver_port()), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ordered"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _answer(self, webhook_id: str, data: dict) -> int:
        with self._lock:
            first = webhook_id not in self._seen
            self._seen.add(webhook_id)
            key, seq = str(data.get("key")), int(data.get("seq", -1))
            self.ids[(key, seq)] = webhook_id
            failed = key in self.failing or (first and self.rng.random() < self.fail_first)
            status = 503 if failed else 200
            self.log.append((time.time(), key, seq, status))
            return status

    def delivered(self) -> dict[str, list[tuple[int, float]]]:
        """key → [(seq, time)] of the requests answered 200, in arrival order."""
        out: dict[str, list[tuple[int, float]]] = {}
        with self._lock:
            for at, key, seq, status in self.log:
                if status == 200:
                    out.setdefault(key, []).append((seq, at))
        return out

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
