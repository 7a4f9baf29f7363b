"""The KMS calls of `fleece config`, each made for a ``Stage``.

A stage's secrets are encrypted and decrypted with its key and the credentials
of its environment (``fleece.aws.credentials``, as `fleece run` uses). Errors
become one-line ``FleeceError``/``BadInput`` messages that name the key path,
the stage and the key, never a value.
"""

import base64
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fleece.config.model import Secret
from fleece.config.stages import MAX_WORKERS, Stage, kms_key_id
from fleece.errors import BadInput, FleeceError

__all__ = [
    "check_keys",
    "decrypt_secrets",
    "encrypt_chunks",
    "encrypt_secrets",
    "key_arn",
    "secret_context",
    "try_decrypt_secrets",
]

_T = TypeVar("_T")
_R = TypeVar("_R")

# KMS answers "wrong key" and "wrong context" with these; both mean the
# ciphertext was not made for this place.
_NOT_FOR_HERE = frozenset(
    {"InvalidCiphertextException", "IncorrectKeyException", "AccessDeniedException"}
)

StageSecret = tuple[Secret, Stage]  # a secret and the stage of its entry


def secret_context(secret: Secret) -> dict[str, str]:
    """The encryption context binding a secret to its stage entry and key path."""
    return {"fleece:stage": secret.entry, "fleece:path": secret.path}


def encrypt_secrets(secrets: Sequence[StageSecret]) -> list[str]:
    """The base64 ciphertext of each secret's plaintext, bound to its place."""

    def encrypt(item: StageSecret) -> str:
        secret, stage = item
        assert secret.plaintext is not None
        plaintext = secret.plaintext.encode("utf-8")
        response = _call(
            stage,
            f"could not encrypt {secret.path} {_with(stage)}",
            lambda kms: kms.encrypt(
                KeyId=stage.key_id,
                Plaintext=plaintext,
                EncryptionContext=secret_context(secret),
            ),
        )
        return base64.b64encode(response["CiphertextBlob"]).decode("ascii")

    return _parallel(encrypt, secrets)


def decrypt_secrets(secrets: Sequence[StageSecret], bound: bool = True) -> list[str]:
    """The plaintext of each secret's ciphertext, in order.

    ``bound`` False reads fleece 1.x's ciphertexts, made without an encryption
    context; a bound one is accepted there too (a fleece 2 config.yml from
    before its ``format:`` line), which only ever asks more of a ciphertext.
    Either way KMS must find the ciphertext made with the stage's own key, and
    a bound one at its own place.
    """

    def decrypt(item: StageSecret) -> str:
        secret, stage = item
        assert secret.ciphertext is not None
        where = f"could not decrypt {secret.path} {_with(stage)}"
        blob = base64.b64decode(secret.ciphertext)
        context = secret_context(secret)
        if bound:
            response = _call(
                stage,
                where,
                lambda kms: kms.decrypt(
                    KeyId=stage.key_id, CiphertextBlob=blob, EncryptionContext=context
                ),
                refused=_moved,
            )
        else:
            try:
                response = _call(
                    stage,
                    where,
                    lambda kms: kms.decrypt(KeyId=stage.key_id, CiphertextBlob=blob),
                    refused=_Refused,
                )
            except _Refused:
                response = _call(
                    stage,
                    where,
                    lambda kms: kms.decrypt(
                        KeyId=stage.key_id,
                        CiphertextBlob=blob,
                        EncryptionContext=context,
                    ),
                    refused=_not_legacy,
                )
        plaintext: bytes = response["Plaintext"]
        return plaintext.decode("utf-8")

    return _parallel(decrypt, secrets)


def try_decrypt_secrets(secrets: Sequence[StageSecret]) -> list[str | None]:
    """Like ``decrypt_secrets``, with None where a secret does not decrypt."""

    def attempt(item: StageSecret) -> str | None:
        try:
            return decrypt_secrets([item])[0]
        except FleeceError:
            return None

    return _parallel(attempt, secrets)


def encrypt_chunks(
    stage: Stage, chunks: Sequence[bytes], contexts: Sequence[dict[str, str]]
) -> tuple[str, list[str]]:
    """Encrypt payload chunks with a stage's key: (key ARN, base64 ciphertexts)."""

    def encrypt(index: int) -> tuple[str, str]:
        response = _call(
            stage,
            f"could not encrypt chunk {index} of the config of stage "
            f"{stage.name} {_with(stage)}",
            lambda kms: kms.encrypt(
                KeyId=stage.key_id,
                Plaintext=chunks[index],
                EncryptionContext=contexts[index],
            ),
        )
        blob = base64.b64encode(response["CiphertextBlob"]).decode("ascii")
        return str(response["KeyId"]), blob

    results = _parallel(encrypt, range(len(chunks)))
    arns = {arn for arn, _ in results}
    if len(arns) != 1:
        raise FleeceError(f"KMS used several keys for stage {stage.name}: {arns}")
    return arns.pop(), [blob for _, blob in results]


def key_arn(stage: Stage, key: str) -> str:
    """The ARN of ``key`` (any accepted form), seen with a stage's credentials."""
    response = _call(
        stage,
        f"could not find KMS key {key!r} for stage {stage.name}",
        lambda kms: kms.describe_key(KeyId=kms_key_id(key)),
    )
    return str(response["KeyMetadata"]["Arn"])


def check_keys(stages: Sequence[Stage]) -> None:
    """Each stage's key exists, is enabled and encrypts (symmetric), as seen
    with its credentials; BadInput naming the ``stages:`` entry otherwise."""

    def check(stage: Stage) -> None:
        response = _call(
            stage,
            f"{stage.where}.key: could not find KMS key {stage.key!r}",
            lambda kms: kms.describe_key(KeyId=stage.key_id),
        )
        metadata = response["KeyMetadata"]
        state = metadata.get("KeyState", "Enabled")
        spec = metadata.get("KeySpec", "SYMMETRIC_DEFAULT")
        usage = metadata.get("KeyUsage", "ENCRYPT_DECRYPT")
        if state != "Enabled":
            raise BadInput(f"{stage.where}.key: KMS key {stage.key!r} is {state}")
        if spec != "SYMMETRIC_DEFAULT" or usage != "ENCRYPT_DECRYPT":
            raise BadInput(
                f"{stage.where}.key: KMS key {stage.key!r} is a {spec} key for "
                f"{usage}; fleece needs a symmetric encryption key (SYMMETRIC_DEFAULT)"
            )

    _parallel(check, stages)


# ---------------------------------------------------------------------------
# Calls and their errors
# ---------------------------------------------------------------------------


def _with(stage: Stage) -> str:
    return f"with the key {stage.key!r} of stage {stage.entry}"


def _moved(where: str, code: str) -> FleeceError:
    return FleeceError(
        f"{where}: KMS refused ({code}); the ciphertext was made for another key "
        "path, stage or key, or the key is not yours"
    )


class _Refused(FleeceError):
    def __init__(self, where: str, code: str) -> None:
        super().__init__(f"{where}: KMS refused ({code})")


def _not_legacy(where: str, code: str) -> FleeceError:
    return FleeceError(
        f"{where}: KMS refused ({code}); config.yml has no `format: 2` line, so "
        "it is read as fleece 1.x's (ciphertexts without encryption context), "
        "and this ciphertext is neither one made with that key nor bound to "
        "this place"
    )


def _call(
    stage: Stage,
    where: str,
    call: Callable[[Any], Any],
    refused: Callable[[str, str], FleeceError] | None = None,
) -> Any:
    """``call(kms_client)``; ``where`` starts every error message."""
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

    kms = stage.credentials.client("kms")
    try:
        return call(kms)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "ClientError")
        if code == "NotFoundException":
            raise BadInput(
                f"{where}: KMS has no such key ({code}), as seen with "
                f"{stage.credentials.describe()}"
            ) from None
        if refused is not None and code in _NOT_FOR_HERE:
            raise refused(where, code) from None
        raise FleeceError(f"{where}: {code}") from None
    except ParamValidationError:
        # Its message may quote the parameters, which hold secrets.
        raise FleeceError(f"{where}: invalid request") from None
    except BotoCoreError as error:
        raise FleeceError(f"{where}: {type(error).__name__}: {error}") from None


def _parallel(work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    if len(items) <= 1:
        return [work(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(items)))
    try:
        return list(pool.map(work, items))
    finally:
        # On an error or a signal, do not wait for calls still in flight: the
        # command's clean-up (an edit's plaintext) must not wait on the network.
        pool.shutdown(wait=False, cancel_futures=True)
