"""`make run` serves the portal the way production does: gunicorn (portal/gunicorn_conf.py)
with DEBUG off and a bounded number of database connections."""

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from gunicorn.config import Config

from portal import gunicorn_conf
from tests.broker.sync import _processes
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def conf_check(**env) -> subprocess.CompletedProcess:
    """Loads the gunicorn settings the way gunicorn does (`gunicorn --check-config`)."""
    return subprocess.run(
        [str(GUNICORN), "-c", "python:portal.gunicorn_conf", "--check-config", "portal.wsgi"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_gunicorn_refuses_more_threads_than_the_database_connection_bound():
    refused = conf_check(WEB_WORKERS="5", WEB_THREADS="4", WEB_DB_MAX_CONNECTIONS="16")
    assert refused.returncode != 0
    assert "WEB_DB_MAX_CONNECTIONS" in refused.stdout + refused.stderr
    assert conf_check(WEB_WORKERS="4", WEB_THREADS="4", WEB_DB_MAX_CONNECTIONS="16").returncode == 0


def test_make_run_serves_with_gunicorn_by_default_and_runserver_only_in_dev_mode():
    script = (ROOT / "scripts" / "run.sh").read_text()
    assert '"$VENV/bin/gunicorn" -c python:portal.gunicorn_conf portal.wsgi' in script
    assert "collectstatic --noinput" in script
    assert 'manage.py runserver "$WEB_HOST:$WEB_PORT"\n' in script  # autoreload (dev only)
    assert "--noreload" not in script


@pytest.mark.e2e
@pytest.mark.django_db  # the server only runs SELECT 1: no data, no flush
def test_fifty_concurrent_requests_open_at_most_workers_times_threads_connections(tmp_path):
    port = free_port()
    app_name = f"web-bound-{os.getpid()}"
    env = {
        **os.environ,
        "DATABASE_URL": f"{_processes.test_database_url()}?application_name={app_name}",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "test-only-key-not-secret-at-least-32-bytes",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SECURE_COOKIES": "0",
        "WEB_PORT": str(port),
        "WEB_WORKERS": "2",
        "WEB_THREADS": "2",
        "WEB_DB_MAX_CONNECTIONS": "4",
        "WEB_ACCESS_LOG": str(tmp_path / "access.log"),
    }
    log = (tmp_path / "web.log").open("w")
    server = subprocess.Popen(
        [str(GUNICORN), "-c", "python:portal.gunicorn_conf", "portal.wsgi"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"

    def get(path):
        request = urllib.request.Request(base + path, headers={"Host": "localhost"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get("/login/")
                break
            except OSError:
                assert server.poll() is None, (tmp_path / "web.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)

        peak, stop = [0], threading.Event()
        dsn = _processes.test_database_url().rsplit("/", 1)[0] + "/postgres"

        def poll():
            with psycopg.connect(dsn, autocommit=True) as conn:
                while not stop.is_set():
                    (count,) = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                        [app_name],
                    ).fetchone()
                    peak[0] = max(peak[0], count)
                    time.sleep(0.02)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        answers = []  # /healthz reads PostgreSQL on every request
        clients = [
            threading.Thread(target=lambda: answers.extend(get("/healthz") for _ in range(4)))
            for _ in range(50)
        ]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        stop.set()
        poller.join()
        assert len(answers) == 200
        assert all(json.loads(body)["checks"]["database"]["ok"] for _, body in answers)
        assert 1 <= peak[0] <= 4

        status, body = get("/no-such-page/")
        assert status == 404 and b"URLconf" not in body and b"Traceback" not in body  # DEBUG off
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_every_access_log_field_is_masked_whatever_the_format(tmp_path):
    """The request line, query string, Referer and headers too (a changed format)."""
    cfg = Config()
    cfg.set("accesslog", str(tmp_path / "access.log"))
    cfg.set("access_log_format", "%(r)s | %(U)s | %(q)s | %(f)s | %({x-original-url}i)s")
    logger = gunicorn_conf.RedactingLogger(cfg)
    link = "/invitations/tok-1/"
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": f"{link}?page=2&api_key=tok-2",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": link,
        "QUERY_STRING": "token=tok-3&page=2",
        "HTTP_REFERER": f"http://a.localhost{link}?signature=tok-4",
        "REMOTE_ADDR": "127.0.0.1",
    }
    response = SimpleNamespace(status="200 OK", sent=10, headers=[])
    request = SimpleNamespace(headers=[("X-ORIGINAL-URL", f"{link}?password=tok-5")])
    logger.access(response, request, environ, timedelta(milliseconds=3))
    for handler in logger.access_log.handlers:
        handler.flush()
    written = (tmp_path / "access.log").read_text()
    assert "/invitations/[redacted]/" in written and "page=2" in written
    assert "tok-" not in written, written


@pytest.mark.e2e
@pytest.mark.django_db  # the server reads the session's tenants; the test writes nothing
def test_gunicorns_access_log_carries_no_invitation_token_and_no_secret_query_value(
    world, tmp_path
):
    port = free_port()
    access_log = tmp_path / "access.log"
    env = {
        **os.environ,
        "DATABASE_URL": _processes.test_database_url(),
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "test-only-key-not-secret-at-least-32-bytes",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SECURE_COOKIES": "0",
        "WEB_PORT": str(port),
        "WEB_WORKERS": "1",
        "WEB_THREADS": "2",
        "WEB_ACCESS_LOG": str(access_log),
    }
    web_log = tmp_path / "web.log"
    with web_log.open("w") as log:
        server = subprocess.Popen(
            [str(GUNICORN), "-c", "python:portal.gunicorn_conf", "portal.wsgi"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base, host = f"http://127.0.0.1:{port}", f"{world.a.slug}.localhost"
    token, query_token = "invitation-secret-4711", "query-secret-0815"

    def get(path, **headers):
        request = urllib.request.Request(base + path, headers={"Host": host, **headers})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get("/login/")
                break
            except OSError:
                assert server.poll() is None, web_log.read_text()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        assert get(f"/invitations/{token}/") == 404  # an unknown token: the page says so
        get("/login/", Referer=f"http://{host}/invitations/{token}/")
        get(f"/login/?next=/&token={query_token}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    written = access_log.read_text()
    messages = [json.loads(line)["message"] for line in written.splitlines()]
    assert any('"GET /invitations/[redacted]/" 404' in m for m in messages)  # there, masked
    assert sum('"GET /login/"' in m for m in messages) >= 3
    assert token not in written and query_token not in written
    assert token not in web_log.read_text()  # Django's own "Not Found" line included
    # gunicorn's own lines and Django's alike: one JSON object a line, each with the context.
    for line in [*written.splitlines(), *web_log.read_text().splitlines()]:
        record = json.loads(line)
        assert {"time", "level", "logger", "message", "request_id", "tenant", "user"} <= set(record)
    access = [json.loads(line) for line in written.splitlines()]
    invitation = next(a for a in access if a["path"] == "/invitations/[redacted]/")
    assert invitation["status"] == "404" and invitation["tenant"] == world.a.schema_name
    assert invitation["request_id"] not in ("-", None)


def test_an_access_line_is_json_with_the_requests_id_tenant_and_user(tmp_path):
    """In the application's format (core/logging.py), its context from the WSGI environ the
    middleware filled: the request's own context is gone by the time gunicorn writes it."""
    cfg = Config()
    cfg.set("accesslog", str(tmp_path / "access.log"))
    cfg.set("access_log_format", gunicorn_conf.access_log_format)
    logger = gunicorn_conf.RedactingLogger(cfg)
    environ = {
        "REQUEST_METHOD": "PATCH",
        "RAW_URI": "/api/v1/producers/7/?api_key=tok-1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "PATH_INFO": "/api/v1/producers/7/",
        "QUERY_STRING": "api_key=tok-1",
        "REMOTE_ADDR": "127.0.0.1",
        "portal.log_context": {"request_id": "req-42", "tenant": "t_acme", "user": "9"},
    }
    response = SimpleNamespace(status="200 OK", sent=10, headers=[])
    logger.access(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=3))
    for handler in logger.access_log.handlers:
        handler.flush()
    (line,) = (tmp_path / "access.log").read_text().splitlines()
    record = json.loads(line)
    assert record["logger"] == "gunicorn.access" and record["level"] == "INFO"
    assert (record["request_id"], record["tenant"], record["user"]) == ("req-42", "t_acme", "9")
    assert (record["method"], record["path"], record["status"]) == (
        "PATCH",
        "/api/v1/producers/7/",
        "200",
    )
    assert "tok-1" not in line
    # Without the middleware's context (a request gunicorn answered alone): "-", never absent.
    environ.pop("portal.log_context")
    logger.access(response, SimpleNamespace(headers=[]), environ, timedelta(milliseconds=3))
    for handler in logger.access_log.handlers:
        handler.flush()
    record = json.loads((tmp_path / "access.log").read_text().splitlines()[1])
    assert (record["request_id"], record["tenant"], record["user"]) == ("-", "-", "-")
