"""A demo webhook receiver for `make run`: checks Standard Webhooks signatures and shows what
arrived.

    python -m broker.functions.demo_receiver        # 127.0.0.1:8200 (RECEIVER_PORT)

- `POST <any path>`: verifies `webhook-id` / `webhook-timestamp` / `webhook-signature` with
  the `standardwebhooks` library against each secret it knows. Valid → 200; invalid → 401
  (and listed as rejected). With no secret configured every request is accepted and flagged
  "not verified".
- `POST /fail/...`: always 503, so a consumer pointed there fails every attempt and ends in
  the dead-letter queue. `POST /slow/<ms>/...`: answers 200 after `<ms>` milliseconds (at most
  30 s), a slow consumer. `POST /trickle/<ms>/...`: answers 200 at once, then sends its body
  (`TRICKLE_BYTES` bytes) one byte every `<ms>` milliseconds, a consumer that holds a
  connection open without ever going quiet for long (no single socket read times out).
- `GET /`: an HTML page of the last `RECEIVER_KEEP` (200) requests, newest first (every value
  escaped). `GET /messages.json`: the same as JSON. `DELETE /messages`: forget them.

Secrets: `RECEIVER_SIGNING_SECRET` (`whsec_…`, several separated by commas or spaces) and/or
`RECEIVER_SIGNING_SECRET_FILE`, a file of such secrets, one a line, re-read when it changes
(`seed_demo` writes the demo consumer's secret to `var/demo/receiver-secrets`).
"""

import argparse
import html
import json
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections import deque
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks import Webhook

log = logging.getLogger("broker.functions.demo_receiver")

MAX_BODY = 1024 * 1024
SHOWN_BODY_CHARS = 4000
SLOW_RE = re.compile(r"^/slow/(\d{1,6})(/|$)")
TRICKLE_RE = re.compile(r"^/trickle/(\d{1,6})(/|$)")
TRICKLE_BYTES = 30


class Secrets:
    """The secrets to verify with: from the environment and a file re-read on change."""

    def __init__(self, inline: str = "", path: str = ""):
        self.inline = [s for s in re.split(r"[\s,]+", inline) if s]
        self.path = Path(path) if path else None
        self._mtime: float | None = None
        self._from_file: list[str] = []

    def all(self) -> list[str]:
        if self.path is not None:
            try:
                mtime = self.path.stat().st_mtime
            except OSError:
                mtime = None
            if mtime != self._mtime:
                self._mtime = mtime
                text = self.path.read_text() if mtime is not None else ""
                self._from_file = [s.strip() for s in text.splitlines() if s.strip()]
        return self.inline + self._from_file


def verify(secrets: list[str], body: bytes, headers: dict[str, str]) -> tuple[bool | None, str]:
    """(True, "") when one secret verifies the request, (False, why) when none does, (None,
    "no secret configured") when there is nothing to verify with."""
    if not secrets:
        return None, "no secret configured: not verified"
    why = "no secret matched"
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
            return True, ""
        except Exception as exc:  # the library raises several types for malformed headers
            why = str(exc) or type(exc).__name__
    return False, why


class Store:
    def __init__(self, keep: int):
        self.items: deque[dict] = deque(maxlen=keep)
        self.lock = threading.Lock()
        self.total = 0

    def add(self, item: dict) -> None:
        with self.lock:
            self.total += 1
            item["n"] = self.total
            self.items.appendleft(item)

    def list(self) -> list[dict]:
        with self.lock:
            return list(self.items)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, *, secrets: Secrets, keep: int = 200):
        super().__init__(address, _Handler)
        self.secrets = secrets
        self.store = Store(keep)


class _Handler(BaseHTTPRequestHandler):
    server: ReceiverServer
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm holds the
        # body until the client's delayed ACK (40 ms) on every keep-alive request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if content_type.startswith("text/html"):
            self.send_header(
                "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'"
            )
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value) -> None:
        self._send(status, json.dumps(value).encode())

    def do_GET(self):
        if self.path in ("/", "/index.html"):
            self._send(200, page(self.server.store.list()).encode(), "text/html; charset=utf-8")
        elif self.path == "/messages.json":
            self._json(200, self.server.store.list())
        elif self.path == "/healthz":
            self._json(200, {"ok": True})
        else:
            self._json(404, {"error": "not found"})

    def do_DELETE(self):
        if self.path == "/messages":
            self.server.store.clear()
            self._json(200, {"ok": True})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self):
        started = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._json(413, {"error": "too large"})
            return
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified, why = verify(self.server.secrets.all(), body, headers)
        if self.path.startswith("/fail/") or self.path == "/fail":
            status, outcome = 503, "failed on purpose (/fail)"
        elif verified is False:
            status, outcome = 401, f"rejected: {why}"
        else:
            slow = SLOW_RE.match(self.path)
            if slow:
                time.sleep(min(int(slow.group(1)), 30000) / 1000)
            status, outcome = 200, "accepted" if verified else f"accepted, {why}"
        try:
            text = body.decode()
        except UnicodeDecodeError:
            text = repr(body[:SHOWN_BODY_CHARS])
        trickle = TRICKLE_RE.match(self.path) if status == 200 else None
        self.server.store.add(
            {
                "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "path": self.path,
                "status": status,
                "verified": verified,
                "outcome": outcome,
                "webhook_id": headers.get("webhook-id", ""),
                "webhook_timestamp": headers.get("webhook-timestamp", ""),
                "webhook_signature": headers.get("webhook-signature", ""),
                "authorization": "present" if "authorization" in headers else "",
                "content_type": headers.get("content-type", ""),
                "body": text,
                "elapsed_ms": round((time.monotonic() - started) * 1000, 1),
            }
        )
        if trickle:
            self._trickle(min(int(trickle.group(1)), 30000) / 1000)
            return
        try:
            self._json(status, {"ok": status == 200, "outcome": outcome})
        except OSError:
            # The sender gave up before a slow answer (its timeout): nothing to answer to.
            self.close_connection = True

    def _trickle(self, every_s: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(TRICKLE_BYTES))
        self.end_headers()
        self.wfile.flush()
        try:
            for _ in range(TRICKLE_BYTES):
                time.sleep(every_s)
                self.wfile.write(b".")
                self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client gave up: that is what this path tests


def page(items: list[dict]) -> str:
    rows = []
    for item in items:
        mark = {True: "✔ verified", False: "✘ rejected", None: "– not verified"}[item["verified"]]
        body = item["body"]
        try:
            body = json.dumps(json.loads(body), indent=2)
        except ValueError:
            pass
        if len(body) > SHOWN_BODY_CHARS:
            body = body[:SHOWN_BODY_CHARS] + "…"
        rows.append(
            "<tr>"
            f"<td>{item['n']}</td>"
            f"<td>{html.escape(item['received_at'])}</td>"
            f"<td><code>{html.escape(item['path'])}</code></td>"
            f"<td>{item['status']}</td>"
            f"<td>{html.escape(mark)}<br><small>{html.escape(item['outcome'])}</small></td>"
            f"<td><code>{html.escape(item['webhook_id'])}</code></td>"
            f"<td><pre>{html.escape(body)}</pre></td>"
            "</tr>"
        )
    table = "\n".join(rows) or '<tr><td colspan="7">Nothing received yet.</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>Demo receiver</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 1.5em; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .4em; text-align: left; vertical-align: top; }}
pre {{ margin: 0; max-height: 16em; overflow: auto; font-size: 12px; }}
</style></head><body>
<h1>Demo receiver</h1>
<p>The last {len(items)} requests, newest first (refreshes every 5 s). POSTs to
<code>/fail/…</code> answer 503; <code>/slow/&lt;ms&gt;/…</code> answers late;
<code>/trickle/&lt;ms&gt;/…</code> sends its answer a byte every &lt;ms&gt;.</p>
<table><tr><th>#</th><th>received</th><th>path</th><th>answer</th><th>signature</th>
<th>webhook-id</th><th>body</th></tr>
{table}
</table></body></html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.functions.demo_receiver")
    parser.add_argument("--host", default=os.environ.get("RECEIVER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("RECEIVER_PORT", "8200")))
    parser.add_argument("--keep", type=int, default=int(os.environ.get("RECEIVER_KEEP", "200")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s receiver %(message)s")
    secrets = Secrets(
        os.environ.get("RECEIVER_SIGNING_SECRET", ""),
        os.environ.get("RECEIVER_SIGNING_SECRET_FILE", ""),
    )
    server = ReceiverServer((args.host, args.port), secrets=secrets, keep=args.keep)

    def on_signal(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    count = len(secrets.all())
    log.info(
        "listening on http://%s:%d (%s)",
        args.host,
        server.server_port,
        f"{count} signing secret(s)" if count else "no signing secret: requests not verified",
    )
    server.serve_forever()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
