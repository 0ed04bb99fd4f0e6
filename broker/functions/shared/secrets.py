"""Encryption at rest (the pure part, shared by the portal and the data plane) for consumer credentials and signing secrets.

With `SECRETS_KMS_KEY_ID` set: envelope encryption. Each secret gets a fresh AES-256 data key
from KMS GenerateDataKey with the encryption context {"tenant_id": …}; the secret is sealed
with AES-GCM (the tenant id as associated data) and the token keeps the KMS-encrypted data key,
the nonce and the ciphertext: `kms1:<base64 JSON>`. Decrypting needs KMS Decrypt with the same
tenant id, so a token copied to another tenant's row is useless.

Without a KMS key (development, or a deployment that chooses it): Fernet, keyed from
`SECRETS_FERNET_KEYS` (comma-separated; the first encrypts, all decrypt, for rotation) or, if
unset, derived from SECRET_KEY with HKDF: `fernet1:<Fernet token>`, the tenant id sealed inside
next to the value and checked on the way out. The derived key changes with SECRET_KEY: a
production deployment without KMS should set SECRETS_FERNET_KEYS, so that rotating SECRET_KEY
does not make every stored secret unreadable.

The prefix says how a token was made, whatever the settings are now: `fernet1:` tokens still
decrypt after a KMS key is configured (new writes use KMS).

The token itself is what DynamoDB items carry as a secret reference (`secret_ref`): it is
useless without KMS (or the Fernet key) and the right tenant id. Neither the clear value nor a
part of it is ever logged or put into an exception message.
"""

import base64
import json
import os
import secrets as pysecrets
from collections.abc import Callable, Sequence

from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretError(Exception):
    """A token could not be decrypted (wrong tenant, tampered, unknown key)."""


# KMS Decrypt errors that mean the token is wrong for this tenant or its key is gone. A wrong
# encryption context (another tenant's token) is InvalidCiphertextException.
_KMS_REFUSALS = frozenset(
    {
        "InvalidCiphertextException",
        "IncorrectKeyException",
        "NotFoundException",
        "DisabledException",
        "KMSInvalidStateException",
    }
)


def fernet_keys_in_use(*, keys: Sequence[str], secret_key: str) -> list[str]:
    """The Fernet keys in use: `keys` (first encrypts, all decrypt), or one derived from the
    application's secret key when none are configured. What a deployment without KMS puts into
    the Secrets Manager secret the egress reads (SECRETS_FERNET_SECRET_ARN)."""
    keys = [k.strip() for k in keys if k.strip()]
    if not keys:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"broker-secrets-fernet-v1"
        ).derive(secret_key.encode())
        keys = [base64.urlsafe_b64encode(derived).decode()]
    return keys


def fernet(*, keys: Sequence[str], secret_key: str) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in fernet_keys_in_use(keys=keys, secret_key=secret_key)])


def encrypt(
    *,
    tenant_id: str,
    plaintext: str,
    kms: Callable[[], object] | None,
    kms_key_id: str | None,
    fernet_keys: MultiFernet,
) -> str:
    tenant_id = str(tenant_id)
    if kms_key_id:
        data_key = kms().generate_data_key(
            KeyId=kms_key_id,
            KeySpec="AES_256",
            EncryptionContext={"tenant_id": tenant_id},
        )
        nonce = os.urandom(12)
        sealed = AESGCM(data_key["Plaintext"]).encrypt(
            nonce, plaintext.encode(), tenant_id.encode()
        )
        body = {
            "k": base64.b64encode(data_key["CiphertextBlob"]).decode(),
            "n": base64.b64encode(nonce).decode(),
            "c": base64.b64encode(sealed).decode(),
        }
        return "kms1:" + base64.urlsafe_b64encode(json.dumps(body).encode()).decode()
    # Fernet has no associated data: the tenant id goes inside, checked on the way out.
    token = fernet_keys.encrypt(json.dumps({"t": tenant_id, "v": plaintext}).encode())
    return "fernet1:" + token.decode()


def decrypt(
    *,
    tenant_id: str,
    token: str,
    kms: Callable[[], object] | None,
    fernet_keys: Callable[[], MultiFernet],
) -> str:
    """`kms` and `fernet_keys` are factories: only the one the token needs is built."""
    tenant_id = str(tenant_id)
    try:
        if token.startswith("kms1:"):
            if kms is None:
                raise SecretError("No KMS client to decrypt this secret.")
            body = json.loads(base64.urlsafe_b64decode(token[5:]))
            key = kms().decrypt(
                CiphertextBlob=base64.b64decode(body["k"]),
                EncryptionContext={"tenant_id": tenant_id},
            )["Plaintext"]
            return (
                AESGCM(key)
                .decrypt(
                    base64.b64decode(body["n"]), base64.b64decode(body["c"]), tenant_id.encode()
                )
                .decode()
            )
        if token.startswith("fernet1:"):
            body = json.loads(fernet_keys().decrypt(token[8:].encode()))
            if body.get("t") != tenant_id:
                raise SecretError("This secret belongs to another tenant.")
            return body["v"]
    except SecretError:
        raise
    except (InvalidToken, InvalidTag, ValueError, KeyError, TypeError) as exc:
        raise SecretError(f"Cannot decrypt: {type(exc).__name__}") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        # Only the answers that say "this token will never decrypt here"; throttling, network
        # and permission errors are transient or operational and propagate as they are.
        if code in _KMS_REFUSALS:
            raise SecretError(f"Cannot decrypt: {code}") from None
        raise
    raise SecretError("Unknown secret token format.")


def generate_signing_secret() -> str:
    """A Standard Webhooks / Svix style secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(pysecrets.token_bytes(32)).decode()
