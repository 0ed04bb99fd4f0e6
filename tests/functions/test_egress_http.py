"""Egress to HTTPS consumers: a real HTTP receiver on 127.0.0.1 (a CONSUMER_PRIVATE_TARGETS
entry), signatures checked with the standardwebhooks library."""

import base64
import json
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from broker.functions import aws, settings
from broker.functions.config import deserialize
from broker.functions.shared import messages, records, secrets
from tests.functions import egress_fixtures
from tests.functions.egress_fixtures import Answer, in_minutes
from tests.helpers.functions import put_item

egress, receiver = egress_fixtures.egress, egress_fixtures.receiver


def test_a_delivery_is_posted_signed_and_verifiable(egress):
    consumer = egress.consumer()
    message = egress.message(consumer, data={"total": 12, "note": "été"})

    assert egress.run(message) == {"batchItemFailures": []}

    (got,) = egress.receiver.received
    assert got.path == "/hook"
    assert json.loads(got.body) == message.event
    assert got.headers["webhook-id"] == message.delivery.delivery_id
    assert Webhook(consumer.signing_secret).verify(got.body, got.headers) == message.event
    assert got.headers["Content-Type"] == "application/json"


def test_during_a_rotation_both_secrets_sign_and_either_verifies(egress):
    consumer = egress.consumer(
        signing_secret="whsec_" + base64.b64encode(b"n" * 32).decode(),
        previous_secret="whsec_" + base64.b64encode(b"o" * 32).decode(),
        previous_expires_at=in_minutes(60),
    )
    egress.run(egress.message(consumer))

    (got,) = egress.receiver.received
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    Webhook(consumer.signing_secret).verify(got.body, got.headers)
    Webhook("whsec_" + base64.b64encode(b"o" * 32).decode()).verify(got.body, got.headers)


def test_an_expired_previous_secret_no_longer_signs(egress):
    old = "whsec_" + base64.b64encode(b"o" * 32).decode()
    consumer = egress.consumer(previous_secret=old, previous_expires_at=in_minutes(-1))
    egress.run(egress.message(consumer))

    (got,) = egress.receiver.received
    Webhook(consumer.signing_secret).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(got.body, got.headers)


@pytest.mark.parametrize(
    "auth_type, username, header, expected",
    [
        ("header", "X-Api-Token", "X-Api-Token", "s3cr3t"),
        ("bearer", "", "Authorization", "Bearer s3cr3t"),
        ("basic", "shop", "Authorization", "Basic " + base64.b64encode(b"shop:s3cr3t").decode()),
    ],
)
def test_the_consumer_auth_header_is_sent(egress, auth_type, username, header, expected):
    consumer = egress.consumer(auth_type=auth_type, auth_username=username, auth_secret="s3cr3t")
    egress.run(egress.message(consumer))

    (got,) = egress.receiver.received
    assert got.headers[header] == expected


def test_a_5xx_is_retried_on_the_policy_schedule_then_dead_lettered_with_every_field(egress):
    egress.receiver.answers["/hook"] = Answer(status=503, body=b"down for maintenance")
    consumer = egress.consumer(retry={"strategy": "schedule", "schedule": [10, 60]})
    message = egress.message(consumer)

    egress.run(message)
    ((second, delay1),) = egress.requeued()
    assert (second.delivery.attempt, delay1) == (2, 10)
    assert second.delivery.delivery_id == message.delivery.delivery_id
    assert second.delivery.first_attempt_at is not None

    egress.run(second)
    third, delay2 = egress.requeued()[1]
    assert (third.delivery.attempt, delay2) == (3, 60)

    egress.run(third)
    assert len(egress.requeued()) == 2  # no fourth attempt
    (letter,) = egress.dead_letters()
    assert letter.kind == messages.DEAD_LETTER
    assert letter.event == message.event
    d = letter.delivery
    assert (d.delivery_id, d.tenant_id, d.consumer_id) == (
        message.delivery.delivery_id,
        egress.tenant.tenant_id,
        consumer.pk,
    )
    assert (d.subscription_id, d.producer_id, d.event_id, d.event_type) == (
        message.delivery.subscription_id,
        message.delivery.producer_id,
        message.delivery.event_id,
        "order.created",
    )
    f = letter.failure
    assert (f.attempts, f.last_status, f.error_kind) == (3, 503, messages.ERROR_HTTP)
    assert "down for maintenance" in f.last_error
    assert f.first_attempt_at == second.delivery.first_attempt_at
    assert f.first_attempt_at <= f.last_attempt_at <= f.dead_lettered_at
    assert len(egress.receiver.received) == 3
    # The DLQ message carries tenant and consumer as attributes too.
    (sent,) = egress.sent_to(egress.dlq_url)
    assert sent["MessageAttributes"]["tenant_id"]["StringValue"] == egress.tenant.tenant_id
    assert sent["MessageAttributes"]["consumer_id"]["StringValue"] == consumer.pk
    # Every attempt is in the delivery's history: retrying, retrying, dead.
    statuses = [i["status"] for i in egress.history(d.delivery_id) if i["SK"] != "EVENT"]
    assert statuses == [records.RETRYING, records.RETRYING, records.DEAD]


def test_an_exponential_policy_waits_base_times_two_to_the_attempt_within_jitter(egress):
    egress.receiver.answers["/hook"] = Answer(status=500)
    policy = {"strategy": "exponential", "base_seconds": 40, "cap_seconds": 100, "jitter": True}
    consumer = egress.consumer(retry={**policy, "max_attempts": 5})
    message = egress.message(consumer, attempt=3)  # the third attempt fails: 40 × 4, capped

    egress.run(message)

    ((nxt, delay),) = egress.requeued()
    assert nxt.delivery.attempt == 4
    assert 50 <= delay <= 100


def test_a_wait_beyond_sqs_limits_is_taken_in_steps_and_the_attempt_keeps_its_number(egress):
    egress.receiver.answers["/hook"] = Answer(status=500)
    consumer = egress.consumer(retry={"strategy": "schedule", "schedule": [3600]})
    egress.run(egress.message(consumer))

    ((nxt, delay),) = egress.requeued()
    assert delay == 900 and nxt.delivery.attempt == 2 and nxt.delivery.not_before

    egress.run(nxt)  # SQS handed it back after 900 s: not due yet, another step

    assert len(egress.receiver.received) == 1
    again, delay = egress.requeued()[1]
    assert again.delivery.attempt == 2 and 0 < delay <= 900
    assert again.delivery.not_before == nxt.delivery.not_before


def test_a_timeout_is_a_failed_attempt(egress):
    egress.receiver.answers["/slow"] = Answer(delay=1.0)
    consumer = egress.consumer(url=egress.receiver.url("/slow"), timeout_ms=200)
    message = egress.message(consumer)

    assert egress.run(message) == {"batchItemFailures": []}

    (attempt,) = [i for i in egress.history(message.delivery.delivery_id) if i["SK"] != "EVENT"]
    assert attempt["status"] == records.RETRYING
    assert attempt["error_kind"] == messages.ERROR_TIMEOUT
    assert "http_status" not in attempt


def test_a_refused_connection_is_a_failed_attempt(egress):
    consumer = egress.consumer(url=f"http://127.0.0.1:{egress.closed_port}/hook")
    message = egress.message(consumer, attempt=3)  # the last one: dead-lettered

    egress.run(message)

    (letter,) = egress.dead_letters()
    assert letter.failure.error_kind == messages.ERROR_CONNECTION
    assert letter.failure.last_status is None


def test_a_redirect_is_not_followed_and_counts_as_a_failure(egress):
    target = egress.receiver.url("/elsewhere")
    egress.receiver.answers["/hook"] = Answer(status=302, headers={"Location": target})
    consumer = egress.consumer()
    message = egress.message(consumer)

    egress.run(message)

    assert [r.path for r in egress.receiver.received] == ["/hook"]
    (attempt,) = [i for i in egress.history(message.delivery.delivery_id) if i["SK"] != "EVENT"]
    assert (attempt["status"], attempt["http_status"]) == (records.RETRYING, 302)
    assert "redirect not followed" in attempt["error"]


def test_a_host_that_resolves_to_a_private_address_at_delivery_time_is_not_called(
    egress, fake_dns, monkeypatch
):
    # It resolved to a public address when saved; now DNS points it at the receiver's address.
    monkeypatch.setitem(fake_dns, "rebind.example.com", ["127.0.0.1"])
    consumer = egress.consumer(url=f"http://rebind.example.com:{egress.receiver.port}/hook")
    https_consumer = egress.consumer(url="https://intranet.example.com/hook")

    egress.run(egress.message(consumer), egress.message(https_consumer))

    assert egress.receiver.received == []
    letters = [m for m, _ in egress.requeued()]
    assert len(letters) == 2
    items = egress.record_items(
        records.consumer_log_key(egress.tenant.tenant_id, https_consumer.pk, "", "", 0, 0)[0]
    )
    assert items[0]["error_kind"] == messages.ERROR_SSRF


def test_only_a_few_kilobytes_of_a_large_answer_are_read(egress):
    egress.receiver.answers["/hook"] = Answer(status=500, body=b"x" * 1_000_000)
    consumer = egress.consumer()
    message = egress.message(consumer)

    egress.run(message)

    (attempt,) = [i for i in egress.history(message.delivery.delivery_id) if i["SK"] != "EVENT"]
    assert attempt["http_status"] == 500
    assert len(attempt["error"]) <= 600
    # And the connection pool still works for the next delivery.
    egress.receiver.answers["/hook"] = Answer(status=204, body=b"")
    egress.run(egress.message(consumer))
    assert len(egress.receiver.received) == 2


def test_secrets_never_reach_the_logs(egress, capsys):
    consumer = egress.consumer(auth_type="bearer", auth_secret="top-s3cr3t-value")
    egress.receiver.answers["/hook"] = Answer(status=500)
    egress.run(egress.message(consumer, attempt=3))

    out = capsys.readouterr()
    logged = out.out + out.err
    assert "top-s3cr3t-value" not in logged
    assert consumer.signing_secret not in logged
    assert consumer.signing_secret[6:] not in logged


def test_secrets_under_kms_envelope_encryption_sign_too(egress):
    key_id = aws.kms().create_key()["KeyMetadata"]["KeyId"]
    consumer = egress.consumer()
    signing = secrets.generate_signing_secret()
    tid = egress.tenant.tenant_id
    sealed = secrets.encrypt(
        tenant_id=tid, plaintext=signing, kms=aws.kms, kms_key_id=key_id, fernet_keys=None
    )
    assert sealed.startswith("kms1:")
    raw = aws.dynamodb().get_item(
        TableName=settings.get().config_table,
        Key={"PK": {"S": f"TENANT#{tid}"}, "SK": {"S": f"CONSUMER#{consumer.pk}"}},
    )["Item"]
    item = deserialize(raw)  # the relay's item, its signing secret now under KMS
    item["signing_secrets"] = [{"secret_ref": sealed}]
    item["version"] += 1
    put_item(item)

    egress.run(egress.message(consumer))

    (got,) = egress.receiver.received
    Webhook(signing).verify(got.body, got.headers)


def _tls_receiver(tmp_path, hostname: str, *, trickle_s: float = 0.0):
    """An HTTPS receiver on 127.0.0.1 with a self-signed certificate for `hostname`; with
    `trickle_s`, it answers 200 with a 30-byte body sent a byte every `trickle_s` seconds."""
    import ssl
    import threading
    from datetime import UTC, datetime, timedelta
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            if not trickle_s:
                self.send_response(204)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "30")
            self.end_headers()
            try:
                for _ in range(30):
                    self.wfile.write(b".")
                    self.wfile.flush()
                    time.sleep(trickle_s)
            except OSError:
                pass  # cut by the egress

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, cert_file, received


def test_https_connects_to_the_vetted_address_and_checks_the_certificate_for_the_host_name(
    egress, fake_dns, monkeypatch, tmp_path
):
    server, cert_file, received = _tls_receiver(tmp_path, "secure.example.com")
    port = server.server_address[1]
    try:
        # The receiver is on loopback: allowed by name for this test, trusted by its own cert.
        monkeypatch.setitem(fake_dns, "secure.example.com", ["127.0.0.1"])
        monkeypatch.setitem(fake_dns, "impostor.example.com", ["127.0.0.1"])
        monkeypatch.setenv(
            "CONSUMER_PRIVATE_TARGETS",
            f"secure.example.com:{port},impostor.example.com:{port}",
        )
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        settings.reload()
        good = egress.consumer(url=f"https://secure.example.com:{port}/in")
        bad = egress.consumer(url=f"https://impostor.example.com:{port}/in")

        egress.run(egress.message(good), egress.message(bad))

        (headers, body) = received[0]
        assert len(received) == 1
        assert headers["Host"] == f"secure.example.com:{port}"
        Webhook(good.signing_secret).verify(body, headers)
        log_pk = records.consumer_log_key(egress.tenant.tenant_id, bad.pk, "", "", 0, 0)[0]
        (attempt,) = egress.record_items(log_pk)
        assert attempt["error_kind"] == messages.ERROR_CONNECTION  # the name does not match
        assert (
            "Hostname mismatch, certificate is not valid for 'impostor.example.com'"
            in (attempt["error"])
        )
    finally:
        server.shutdown()
        server.server_close()


def test_an_https_consumer_trickling_its_answer_is_cut_at_its_timeout(
    egress, fake_dns, monkeypatch, tmp_path
):
    """The wall-clock limit holds over TLS too: the watchdog shuts the TLS connection's socket
    down (a byte every 300 ms keeps every single read within any per-read timeout)."""
    server, cert_file, received = _tls_receiver(tmp_path, "slow.example.com", trickle_s=0.3)
    port = server.server_address[1]
    try:
        monkeypatch.setitem(fake_dns, "slow.example.com", ["127.0.0.1"])
        monkeypatch.setenv("CONSUMER_PRIVATE_TARGETS", f"slow.example.com:{port}")
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))
        settings.reload()
        consumer = egress.consumer(url=f"https://slow.example.com:{port}/in", timeout_ms=1000)
        started = time.monotonic()

        egress.run(egress.message(consumer))

        took = time.monotonic() - started
        assert len(received) == 1  # the request went through; its answer was too slow
        log_pk = records.consumer_log_key(egress.tenant.tenant_id, consumer.pk, "", "", 0, 0)[0]
        (attempt,) = egress.record_items(log_pk)
        assert attempt["error_kind"] == messages.ERROR_TIMEOUT, attempt["error"]
        assert took < 3  # cut about its 1-s limit, not after the whole 9-s trickle
    finally:
        server.shutdown()
        server.server_close()


def test_a_kept_alive_connection_the_consumer_closed_is_not_used_again(egress, monkeypatch):
    """The consumer says nothing about closing (HTTP/1.1 keep-alive), then closes its end after
    answering, as idle-timeout servers do: the next delivery goes on a new connection instead
    of failing on the closed one."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    connections = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            connections.append(self.client_address)
            self.send_response(204)
            self.end_headers()
            self.close_connection = True  # without a `Connection: close` header

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        allowed = [*settings.get().private_targets, f"127.0.0.1:{port}"]
        monkeypatch.setenv("CONSUMER_PRIVATE_TARGETS", ",".join(allowed))
        settings.reload()
        consumer = egress.consumer(url=f"http://127.0.0.1:{port}/in")
        first, second = egress.message(consumer), egress.message(consumer)

        egress.run(first)
        time.sleep(0.2)  # the consumer's close reaches us
        egress.run(second)

        log_pk = records.consumer_log_key(egress.tenant.tenant_id, consumer.pk, "", "", 0, 0)[0]
        statuses = sorted(i["status"] for i in egress.record_items(log_pk))
        assert statuses == [records.OK, records.OK]
        assert len({c[1] for c in connections}) == 2  # two connections (client ports)
    finally:
        server.shutdown()
        server.server_close()
