"""The configuration of this service for one stage, encrypted with AWS KMS.

`fleece config render STAGE --python --output src/fleece_config.py` writes this
file from the service's config.yml, and `fleece config import`/`edit` rewrite it
when config.yml changes; do not edit it by hand. Read the configuration with::

    from fleece_config import load_config

    def handler(event, context):
        config = load_config(context)  # decrypted on the first call, then cached
        ...

Nothing is decrypted when this module is imported, and nothing is imported
but ``threading`` (which Lambda's bootstrap has loaded) and ``__future__``. The
first ``load_config()`` (or the first use of ``CONFIG``) decrypts every chunk
of the payload at once, so a cold start waits for one KMS round trip, then
checks the payload's digest.

That first call gives up with ``ConfigError`` after ``timeout`` seconds
(default: ``$FLEECE_CONFIG_TIMEOUT``, else 5), or half a second before the
invocation ends when it is given the Lambda ``context``, whichever comes first:
each KMS attempt may take 1 s to connect and 2 s to answer, 3 attempts at most.
A failed first call is not cached: the next call tries again.

The function needs ``kms:Decrypt`` on the key in ``KEY_ID``; the encryption
context of each call names the stage (``fleece:stage``), which a key policy can
require. A ciphertext without that context (as fleece 1.x made them) is never
accepted. In tests, ``set_config({...})`` provides the configuration instead.
Until a stage is rendered into this file (a new service), the configuration is
empty.

The payload is the JSON of the configuration, compressed with zlib after a
random 16-byte salt (so the digest in the encryption context gives away nothing
about the content), cut into chunks of at most 4096 bytes, each encrypted with
the context ``{"fleece:stage", "fleece:chunk", "fleece:chunks", "fleece:sha256"}``.
"""

from __future__ import annotations

import threading

# `typing` is for type checkers only (they read this name as True): importing
# it would cost every cold start a few milliseconds. Annotations are never
# evaluated (see the __future__ import).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from botocore.exceptions import BotoCoreError, ClientError

__all__ = [
    "CONFIG",
    "ENCRYPTED_CONFIG",
    "KEY_ID",
    "SHA256",
    "STAGE",
    "ConfigError",
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
TIMEOUT = 5.0  # seconds for the first load_config(), unless told otherwise
CONNECT_TIMEOUT = 1.0  # seconds per KMS attempt
READ_TIMEOUT = 2.0
MAX_ATTEMPTS = 3
_MARGIN = 0.5  # seconds left to the handler when the invocation's end is known

_lock = threading.Lock()
_config: dict[str, Any] | None = None


class ConfigError(Exception):
    """The configuration could not be decrypted: KMS refused or did not
    answer in time, or the payload was altered. The message names the stage,
    the KMS key and what to do; it never holds a value of the configuration."""


def load_config(
    context: object | None = None, *, timeout: float | None = None
) -> dict[str, Any]:
    """The configuration of ``STAGE``, decrypted on the first call, then cached.

    ``context`` (the Lambda context) makes the first call give up before the
    invocation ends; ``timeout`` (seconds) bounds it too (default:
    ``$FLEECE_CONFIG_TIMEOUT``, else ``TIMEOUT``). Raises ``ConfigError``.
    Every call returns the same dict: treat it as read-only.
    """
    global _config
    with _lock:
        if _config is None:
            _config = _decrypt(_budget(context, timeout))
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
    import hashlib
    import json
    import zlib

    if hashlib.sha256(payload).hexdigest() != sha256:
        raise _error("the decrypted payload fails its digest (it was altered)")
    config = json.loads(zlib.decompress(payload[SALT_SIZE:]).decode("utf-8"))
    if not isinstance(config, dict):
        raise _error("the payload is not a JSON object")
    return config


# ---------------------------------------------------------------------------
# Decrypting, within a deadline
# ---------------------------------------------------------------------------


def _budget(context: object | None, timeout: float | None) -> float:
    """Seconds the first decryption may take."""
    if timeout is None:
        import os

        setting = os.environ.get("FLEECE_CONFIG_TIMEOUT", "")
        try:
            timeout = float(setting) if setting.strip() else TIMEOUT
        except ValueError:
            raise ConfigError(
                f"fleece_config: FLEECE_CONFIG_TIMEOUT={setting!r} is not a number "
                "of seconds"
            ) from None
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        timeout = min(timeout, remaining() / 1000 - _MARGIN)
    return max(timeout, 0.05)


def _decrypt(budget: float) -> dict[str, Any]:
    if not ENCRYPTED_CONFIG:
        # No stage was rendered into this file yet: the service has no
        # configuration, and a fresh service still runs.
        return {}
    import time

    deadline = time.monotonic() + budget  # importing boto3 counts too
    import base64

    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    count = len(ENCRYPTED_CONFIG)
    kms = boto3.client(
        "kms",
        region_name=KEY_ID.split(":")[3],  # the key's region, from its ARN
        config=Config(
            connect_timeout=min(CONNECT_TIMEOUT, budget),
            read_timeout=min(READ_TIMEOUT, budget),
            retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            max_pool_connections=count,
        ),
    )
    chunks: list[bytes | None] = [None] * count
    failures: list[BotoCoreError | ClientError] = []

    def decrypt(index: int) -> None:
        try:
            response = kms.decrypt(
                KeyId=KEY_ID,
                CiphertextBlob=base64.b64decode(ENCRYPTED_CONFIG[index]),
                EncryptionContext=chunk_context(STAGE, index, count, SHA256),
            )
        except (BotoCoreError, ClientError) as error:  # reported by the caller
            failures.append(error)
        else:
            chunks[index] = response["Plaintext"]

    # Daemon threads: one stuck on a silent network never holds the process.
    workers = [
        threading.Thread(target=decrypt, args=(index,), daemon=True)
        for index in range(count)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(max(deadline - time.monotonic(), 0.0))
    if failures:
        raise _refused(failures[0]) from failures[0]
    if any(worker.is_alive() for worker in workers):
        raise _error(
            f"KMS did not answer within {budget:.1f} s (FLEECE_CONFIG_TIMEOUT or "
            "load_config(timeout=...) give it longer)"
        )
    missing = [index for index, chunk in enumerate(chunks) if chunk is None]
    if missing:  # a thread died of something unexpected (printed by threading)
        raise _error(f"chunk {missing[0]} could not be decrypted")
    return open_payload(b"".join(chunk or b"" for chunk in chunks), SHA256)


_HINTS = {
    "InvalidCiphertextException": (
        "the payload was altered, or made for another stage or key; render it "
        "again with `fleece config render STAGE --python`"
    ),
    "IncorrectKeyException": "the payload was made with another key",
    "AccessDeniedException": "the function's role needs kms:Decrypt on the key",
}


def _refused(error: BotoCoreError | ClientError) -> ConfigError:
    response = getattr(error, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    what = code or type(error).__name__
    hint = _HINTS.get(what, "KMS could not be reached or refused the request")
    return _error(f"{what}: {hint}")


def _error(reason: str) -> ConfigError:
    return ConfigError(
        f"fleece_config: cannot decrypt the configuration of stage {STAGE!r} "
        f"with KMS key {KEY_ID or '(none)'}: {reason}"
    )
