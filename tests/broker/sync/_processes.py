"""Real processes for fault tests: a Celery worker (with beat) and a TCP proxy to AWS that can
be switched off."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[3]


def test_database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (
        f"postgres://{db['USER']}{password}@{db.get('HOST') or '127.0.0.1'}:"
        f"{db.get('PORT') or 5432}/{db['NAME']}"
    )


class Worker:
    """`celery worker -B` in its own process, pointed at the test database."""

    def __init__(self, *, aws_endpoint: str, log: Path):
        env = {
            **os.environ,
            "DATABASE_URL": test_database_url(),
            "AWS_ENDPOINT_URL": aws_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": settings.AWS_REGION,
            "DJANGO_DEBUG": "1",
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            # The data plane stack's outputs, as `make run` passes them (tests/conftest.py).
            "EGRESS_FUNCTION_ARN": settings.EGRESS_FUNCTION_ARN,
            "SQS_PRODUCER_FUNCTION_ARN": settings.SQS_PRODUCER_FUNCTION_ARN,
            "TENANT_QUEUE_PREFIX": settings.TENANT_QUEUE_PREFIX,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "RELAY_INTERVAL_SECONDS": "1",
            "RELAY_JITTER_SECONDS": "0",
            "SYNC_RELAY_MAX_BACKOFF_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
        }
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "-B",
                "--pool=solo",
                "--without-gossip",
                "--without-mingle",
                "--loglevel=INFO",
                f"--schedule={log.with_suffix('.beat')}",
            ],
            cwd=ROOT,
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no ack, the transaction dies with the connection."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class Proxy:
    """Forwards 127.0.0.1:<port> to the moto server; while down, drops every connection."""

    def __init__(self, target: str):
        host, port = target.rsplit("//", 1)[1].split(":")
        self.target = (host, int(port))
        self.up = True
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src, dst):
        try:
            while self.up:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        self.closed = True
        self.sock.close()


def wait_for(predicate, *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
