"""Secrets at rest: KMS envelope encryption (moto KMS) or Fernet."""

import boto3
import pytest

from broker import secrets

TENANT, OTHER = "7c9e6679-7425-40de-944b-e07fc1f90ae7", "1b4e28ba-2fa1-11d2-883f-0016d3cca427"


@pytest.fixture
def kms_key(settings):
    key = boto3.client("kms", region_name=settings.AWS_REGION).create_key()["KeyMetadata"]["KeyId"]
    settings.SECRETS_KMS_KEY_ID = key
    return key


def test_kms_envelope_encryption_round_trips_without_the_clear_text(kms_key):
    token = secrets.encrypt(tenant_id=TENANT, plaintext="header-value-42")
    assert token.startswith("kms1:") and "header-value-42" not in token
    assert secrets.decrypt(tenant_id=TENANT, token=token) == "header-value-42"


def test_a_kms_token_cannot_be_decrypted_as_another_tenant(kms_key):
    token = secrets.encrypt(tenant_id=TENANT, plaintext="s3cret")
    with pytest.raises(secrets.SecretError):
        secrets.decrypt(tenant_id=OTHER, token=token)


def test_fernet_is_used_without_a_kms_key(settings):
    settings.SECRETS_KMS_KEY_ID = ""
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


def test_fernet_keys_rotate_old_tokens_still_decrypt(settings):
    from cryptography.fernet import Fernet

    settings.SECRETS_KMS_KEY_ID = ""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRETS_FERNET_KEYS = [old]
    token = secrets.encrypt(tenant_id=TENANT, plaintext="s3cret")
    settings.SECRETS_FERNET_KEYS = [new, old]
    assert secrets.decrypt(tenant_id=TENANT, token=token) == "s3cret"
    settings.SECRETS_FERNET_KEYS = [new]
    with pytest.raises(secrets.SecretError):
        secrets.decrypt(tenant_id=TENANT, token=token)


def test_signing_secrets_are_random_32_bytes_in_the_whsec_format():
    import base64

    values = {secrets.generate_signing_secret() for _ in range(50)}
    assert len(values) == 50
    for value in values:
        assert value.startswith("whsec_") and len(base64.b64decode(value[6:])) == 32
