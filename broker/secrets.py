"""Encryption at rest for consumer credentials and signing secrets, with this deployment's
settings. The scheme itself (KMS envelope or Fernet, token formats) is defined once in
`broker.functions.shared.secrets`, which the data plane uses to decrypt.
"""

from django.conf import settings

from broker.functions.shared import secrets as _shared
from broker.functions.shared.secrets import SecretError, generate_signing_secret
from core import aws

__all__ = ["SecretError", "decrypt", "encrypt", "generate_signing_secret"]


def _fernet():
    return _shared.fernet(keys=settings.SECRETS_FERNET_KEYS, secret_key=settings.SECRET_KEY)


def _kms():
    return aws.client("kms")


def encrypt(*, tenant_id: str, plaintext: str) -> str:
    return _shared.encrypt(
        tenant_id=tenant_id,
        plaintext=plaintext,
        kms=_kms,
        kms_key_id=settings.SECRETS_KMS_KEY_ID,
        fernet_keys=_fernet() if not settings.SECRETS_KMS_KEY_ID else None,
    )


def decrypt(*, tenant_id: str, token: str) -> str:
    return _shared.decrypt(tenant_id=tenant_id, token=token, kms=_kms, fernet_keys=_fernet)
