"""Secrets at rest: KMS envelope encryption (moto KMS) or Fernet."""

import base64
import json

import boto3
import pytest
from botocore.exceptions import ClientError
from cryptography.fernet import Fernet

from broker import secrets
from core import aws

# Not for the tests themselves: tests/broker/conftest.py's autouse fixtures build the session's
# tenants, and pytest-django only creates the test database when a collected test asks for it.
pytestmark = pytest.mark.django_db

TENANT, OTHER = "7c9e6679-7425-40de-944b-e07fc1f90ae7", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


@pytest.fixture
def kms_key(settings):
    key = boto3.client("kms", region_name=settings.AWS_REGION).create_key()["KeyMetadata"]["KeyId"]
    settings.SECRETS_KMS_KEY_ID = key
    return key


@pytest.fixture
def fernet(settings):
    settings.SECRETS_KMS_KEY_ID = ""
    settings.SECRETS_FERNET_KEYS = []


def _kms_body(token: str) -> dict:
    assert token.startswith("kms1:")
    return json.loads(base64.urlsafe_b64decode(token[5:]))


def _kms_token(body: dict) -> str:
    return "kms1:" + base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


class _KmsIgnoringContext:
    """A KMS that hands out the data key whatever encryption context it is given."""

    def __init__(self, real, context):
        self.real, self.context = real, context

    def decrypt(self, *, CiphertextBlob, EncryptionContext):
        return self.real.decrypt(CiphertextBlob=CiphertextBlob, EncryptionContext=self.context)


class _ThrottledKms:
    def decrypt(self, **kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "Decrypt")


def test_kms_envelope_encryption_round_trips_without_the_clear_text(kms_key):
    token = secrets.encrypt(tenant_id=TENANT, plaintext="header-value-42")
    assert token.startswith("kms1:") and "header-value-42" not in token
    body = _kms_body(token)
    assert set(body) == {"k", "n", "c"}
    assert b"header-value-42" not in base64.b64decode(body["c"])
    assert secrets.decrypt(tenant_id=TENANT, token=token) == "header-value-42"


def test_each_kms_encryption_uses_a_fresh_data_key_and_nonce(kms_key):
    one, two = (_kms_body(secrets.encrypt(tenant_id=TENANT, plaintext="same")) for _ in "12")
    assert one["k"] != two["k"] and one["n"] != two["n"] and one["c"] != two["c"]


def test_a_kms_token_cannot_be_decrypted_as_another_tenant(kms_key):
    token = secrets.encrypt(tenant_id=TENANT, plaintext="s3cret")
    with pytest.raises(secrets.SecretError):
        secrets.decrypt(tenant_id=OTHER, token=token)


def test_the_tenant_id_also_binds_the_ciphertext_when_kms_hands_out_the_data_key(
    kms_key, monkeypatch
):
    token = secrets.encrypt(tenant_id=TENANT, plaintext="s3cret")
    real = aws.client("kms")
    monkeypatch.setattr(
        aws, "client", lambda service: _KmsIgnoringContext(real, {"tenant_id": TENANT})
    )
    with pytest.raises(secrets.SecretError, match="InvalidTag"):
        secrets.decrypt(tenant_id=OTHER, token=token)


def test_fernet_is_used_without_a_kms_key(fernet):
    token = secrets.encrypt(tenant_id=TENANT, plaintext="s3cret")
    assert token.startswith("fernet1:") and "s3cret" not in token
    assert secrets.decrypt(tenant_id=TENANT, token=token) == "s3cret"
    with pytest.raises(secrets.SecretError):
        secrets.decrypt(tenant_id=OTHER, token=token)


def test_a_tampered_token_fails(settings, kms_key):
    for kms in (kms_key, ""):
        settings.SECRETS_KMS_KEY_ID = kms
        token = secrets.encrypt(tenant_id=TENANT, plaintext="s3cret")
        tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
        with pytest.raises(secrets.SecretError):
            secrets.decrypt(tenant_id=TENANT, token=tampered)


@pytest.mark.parametrize("part", ["k", "n", "c"])
def test_a_flipped_bit_in_any_part_of_a_kms_token_fails(kms_key, part):
    body = _kms_body(secrets.encrypt(tenant_id=TENANT, plaintext="s3cret"))
    raw = bytearray(base64.b64decode(body[part]))
    raw[len(raw) // 2] ^= 0x01
    body[part] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(secrets.SecretError):
        secrets.decrypt(tenant_id=TENANT, token=_kms_token(body))


@pytest.mark.parametrize(
    "token", ["", "s3cret", "kms1:", "kms1:not-base64!", "kms1:W10=", "fernet1:", "fernet1:abc"]
)
def test_garbage_is_refused_as_a_secret_error(fernet, token):
    with pytest.raises(secrets.SecretError):
        secrets.decrypt(tenant_id=TENANT, token=token)


def test_a_kms_outage_is_not_mistaken_for_a_bad_token(kms_key, monkeypatch):
    token = secrets.encrypt(tenant_id=TENANT, plaintext="s3cret")
    monkeypatch.setattr(aws, "client", lambda service: _ThrottledKms())
    with pytest.raises(ClientError) as raised:
        secrets.decrypt(tenant_id=TENANT, token=token)
    assert not isinstance(raised.value, secrets.SecretError)


def test_fernet_tokens_still_decrypt_once_a_kms_key_is_configured(settings, fernet):
    token = secrets.encrypt(tenant_id=TENANT, plaintext="s3cret")
    settings.SECRETS_KMS_KEY_ID = boto3.client("kms", region_name=settings.AWS_REGION).create_key()[
        "KeyMetadata"
    ]["KeyId"]
    assert secrets.decrypt(tenant_id=TENANT, token=token) == "s3cret"
    assert secrets.encrypt(tenant_id=TENANT, plaintext="s3cret").startswith("kms1:")


def test_the_fallback_fernet_key_is_derived_from_the_secret_key(settings, fernet):
    token = secrets.encrypt(tenant_id=TENANT, plaintext="s3cret")
    settings.SECRET_KEY = settings.SECRET_KEY + "-rotated"
    with pytest.raises(secrets.SecretError):
        secrets.decrypt(tenant_id=TENANT, token=token)


def test_fernet_keys_rotate_old_tokens_still_decrypt(settings, fernet):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRETS_FERNET_KEYS = [old]
    token = secrets.encrypt(tenant_id=TENANT, plaintext="s3cret")
    settings.SECRETS_FERNET_KEYS = [new, old]
    assert secrets.decrypt(tenant_id=TENANT, token=token) == "s3cret"
    settings.SECRETS_FERNET_KEYS = [new]
    with pytest.raises(secrets.SecretError):
        secrets.decrypt(tenant_id=TENANT, token=token)


def test_the_first_fernet_key_encrypts(settings, fernet):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRETS_FERNET_KEYS = [new, old]
    token = secrets.encrypt(tenant_id=TENANT, plaintext="s3cret")
    settings.SECRETS_FERNET_KEYS = [new]
    assert secrets.decrypt(tenant_id=TENANT, token=token) == "s3cret"


def test_signing_secrets_are_random_32_bytes_in_the_whsec_format():
    values = {secrets.generate_signing_secret() for _ in range(50)}
    assert len(values) == 50
    for value in values:
        assert value.startswith("whsec_") and len(base64.b64decode(value[6:])) == 32
