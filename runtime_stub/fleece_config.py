"""The configuration of this service for one stage, encrypted with AWS KMS.

`fleece config render STAGE --python --output src/fleece_config.py` writes this
file from the service's config.yml, and `fleece config import`/`edit` rewrite it
when config.yml changes; do not edit it by hand. Read the configuration with::

    from fleece_config import load_config

    def handler(event, context):
        config = load_config()  # decrypted on the first call, then cached
        ...

Nothing is decrypted when this module is imported. The first ``load_config()``
(or the first use of ``CONFIG``) decrypts every chunk of the payload at once, so
a cold start waits for one KMS round trip, then checks the payload's digest.
The function needs ``kms:Decrypt`` on the key in ``KEY_ID``; the encryption
context of each call names the stage (``fleece:stage``), which a key policy can
require. In tests, ``set_config({...})`` provides the configuration instead. Until a
stage is rendered into this file (a new service), the configuration is empty.

The payload is the JSON of the configuration, compressed with zlib after a
random 16-byte salt (so the digest in the encryption context gives away nothing
about the content), cut into chunks of at most 4096 bytes, each encrypted with
the context ``{"fleece:stage", "fleece:chunk", "fleece:chunks", "fleece:sha256"}``.
"""

import base64
import hashlib
import json
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = [
    "CONFIG",
    "ENCRYPTED_CONFIG",
    "KEY_ID",
    "SHA256",
    "STAGE",
    "load_config",
    "set_config",
]

# fleece: encrypted payload begins
STAGE = ""
KEY_ID = ""
SHA256 = ""
ENCRYPTED_CONFIG: tuple[str, ...] = ()
# fleece: encrypted payload ends

CONFIG: dict[str, Any]
"""The configuration; decrypted on first access (``load_config()`` is the same)."""

SALT_SIZE = 16
CHUNK_SIZE = 4096

_lock = threading.Lock()
_config: dict[str, Any] | None = None


def load_config() -> dict[str, Any]:
    """The configuration of ``STAGE``, decrypted on the first call, then cached.

    Every call returns the same dict: treat it as read-only.
    """
    global _config
    with _lock:
        if _config is None:
            _config = _decrypt()
        return _config


def set_config(config: dict[str, Any] | None) -> None:
    """Use ``config`` instead of the encrypted payload (tests); None undoes it."""
    global _config
    with _lock:
        _config = config


def __getattr__(name: str) -> Any:
    # PEP 562: `CONFIG` is computed on first access, not at import.
    if name == "CONFIG":
        return load_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------
# The payload format (fleece's renderer uses these two functions too)
# ---------------------------------------------------------------------------


def chunk_context(stage: str, index: int, count: int, sha256: str) -> dict[str, str]:
    """The KMS encryption context of chunk ``index`` of ``count``."""
    return {
        "fleece:stage": stage,
        "fleece:chunk": str(index),
        "fleece:chunks": str(count),
        "fleece:sha256": sha256,
    }


def open_payload(payload: bytes, sha256: str) -> dict[str, Any]:
    """Check the digest of the decrypted chunks joined, then unpack the config."""
    if hashlib.sha256(payload).hexdigest() != sha256:
        raise ValueError("fleece_config: the decrypted payload fails its digest")
    config = json.loads(zlib.decompress(payload[SALT_SIZE:]).decode("utf-8"))
    if not isinstance(config, dict):
        raise TypeError("fleece_config: the payload is not a JSON object")
    return config


def _decrypt() -> dict[str, Any]:
    if not ENCRYPTED_CONFIG:
        # No stage was rendered into this file yet: the service has no
        # configuration, and a fresh service still runs.
        return {}
    import boto3
    from botocore.config import Config

    count = len(ENCRYPTED_CONFIG)
    kms = boto3.client(
        "kms",
        region_name=KEY_ID.split(":")[3],  # the key's region, from its ARN
        config=Config(max_pool_connections=count, retries={"mode": "standard"}),
    )

    def decrypt(index: int) -> bytes:
        response = kms.decrypt(
            KeyId=KEY_ID,
            CiphertextBlob=base64.b64decode(ENCRYPTED_CONFIG[index]),
            EncryptionContext=chunk_context(STAGE, index, count, SHA256),
        )
        plaintext = response["Plaintext"]
        if not isinstance(plaintext, bytes):
            raise TypeError("fleece_config: KMS returned no plaintext")
        return plaintext

    with ThreadPoolExecutor(max_workers=count) as pool:
        chunks = list(pool.map(decrypt, range(count)))
    return open_payload(b"".join(chunks), SHA256)
