"""The thin AWS layer of `fleece config`: KMS and SSM clients for each stage.

A stage's secrets are encrypted and decrypted with the credentials of that
stage's environment, from ``fleece.aws.credentials`` (the same module `fleece run`
uses). Errors become one-line ``FleeceError``/``BadInput`` messages that name
the key path and stage, never a value.
"""

import base64
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from fleece.aws.environments import Environment, Environments
from fleece.aws.session import session_for_environment
from fleece.config.model import Secret, StageEntry
from fleece.errors import BadInput, FleeceError

if TYPE_CHECKING:
    import boto3

__all__ = ["Keyring", "kms_key_id", "secret_context"]

_T = TypeVar("_T")
_R = TypeVar("_R")

# KMS answers "wrong key" and "wrong context" with these; both mean the
# ciphertext was not made for this place.
_NOT_FOR_HERE = frozenset(
    {"InvalidCiphertextException", "IncorrectKeyException", "AccessDeniedException"}
)
_KEY_ID = re.compile(
    r"(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
_MAX_WORKERS = 16


def kms_key_id(key: str) -> str:
    """The KeyId KMS expects for a key as users write it.

    Accepts an alias name with or without ``alias/``, an alias ARN, a key ARN
    and a bare key id (a UUID or a ``mrk-`` multi-region id).
    """
    if key.startswith(("arn:", "alias/")) or _KEY_ID.fullmatch(key):
        return key
    return "alias/" + key


def secret_context(secret: Secret) -> dict[str, str]:
    """The encryption context binding a secret to its stage entry and key path."""
    return {"fleece:stage": secret.stage, "fleece:path": secret.path}


@dataclass(frozen=True)
class _Target:
    entry: StageEntry
    environment: Environment | None


class Keyring:
    """KMS/SSM clients and the stage entries they serve, for one command run.

    ``environments`` is None when the service has no environments.yml: every
    stage then uses boto3's standard credential chain.
    """

    def __init__(
        self, stages: dict[str, StageEntry], environments: Environments | None
    ) -> None:
        self._stages = stages
        self._environments = environments
        self._sessions: dict[str | None, boto3.Session] = {}
        self._clients: dict[tuple[str | None, str], Any] = {}
        self._lock = threading.Lock()

    # -- credentials ------------------------------------------------------

    def environment(self, stage: str) -> Environment | None:
        """The environment of a ``stages:`` entry (checked against environments.yml)."""
        entry = self._entry(stage)
        if self._environments is None:
            return None
        named = self._environments.get(entry.environment)
        mapped = self._mapped_environment(stage)
        if mapped is not None and mapped.name != named.name:
            raise BadInput(
                f"stages.{stage}: config.yml says environment {named.name!r} but "
                f"environments.yml's stages: says {mapped.name!r}; make them agree"
            )
        return named

    def _mapped_environment(self, stage: str) -> Environment | None:
        assert self._environments is not None
        if not self._environments.stages:
            return None
        try:
            return self._environments.for_stage(stage)
        except BadInput:
            return None  # the map does not cover this stage: config.yml decides

    def session(self, stage: str) -> "boto3.Session":
        """The boto3 session of a ``stages:`` entry's environment."""
        environment = self.environment(stage)
        name = environment.name if environment is not None else None
        with self._lock:
            if name not in self._sessions:
                self._sessions[name] = session_for_environment(environment)
            return self._sessions[name]

    def client(self, stage: str, service: str) -> Any:
        """A boto3 client (``kms``, ``ssm``) for a stage entry's environment."""
        session = self.session(stage)
        environment = self.environment(stage)
        name = environment.name if environment is not None else None
        with self._lock:
            if (name, service) not in self._clients:
                from botocore.config import Config

                self._clients[name, service] = session.client(
                    service,
                    config=Config(
                        max_pool_connections=_MAX_WORKERS,
                        retries={"mode": "standard"},
                    ),
                )
            return self._clients[name, service]

    def _entry(self, stage: str) -> StageEntry:
        try:
            return self._stages[stage]
        except KeyError:
            raise BadInput(f"unknown stage entry {stage!r}") from None

    # -- secrets ----------------------------------------------------------

    def encrypt_secrets(self, secrets: Sequence[Secret]) -> list[str]:
        """The base64 ciphertext of each secret's plaintext, in order."""
        for secret in secrets:
            self.client(secret.stage, "kms")  # make clients before the threads

        def encrypt(secret: Secret) -> str:
            assert secret.plaintext is not None
            plaintext = secret.plaintext.encode("utf-8")
            response = self._call(
                secret.stage,
                f"encrypt {secret.path}",
                lambda kms: kms.encrypt(
                    KeyId=kms_key_id(self._entry(secret.stage).key),
                    Plaintext=plaintext,
                    EncryptionContext=secret_context(secret),
                ),
            )
            return base64.b64encode(response["CiphertextBlob"]).decode("ascii")

        return _parallel(encrypt, secrets)

    def decrypt_secrets(self, secrets: Sequence[Secret]) -> list[str]:
        """The plaintext of each secret's ciphertext, in order.

        A ciphertext moved to another key path, stage or key fails here.
        """
        for secret in secrets:
            self.client(secret.stage, "kms")

        def decrypt(secret: Secret) -> str:
            assert secret.ciphertext is not None
            blob = base64.b64decode(secret.ciphertext)
            response = self._call(
                secret.stage,
                f"decrypt {secret.path}",
                lambda kms: kms.decrypt(
                    KeyId=kms_key_id(self._entry(secret.stage).key),
                    CiphertextBlob=blob,
                    EncryptionContext=secret_context(secret),
                ),
                moved_hint=True,
            )
            plaintext: bytes = response["Plaintext"]
            return plaintext.decode("utf-8")

        return _parallel(decrypt, secrets)

    def try_decrypt_secrets(self, secrets: Sequence[Secret]) -> list[str | None]:
        """Like ``decrypt_secrets``, with None where a secret does not decrypt."""

        def attempt(secret: Secret) -> str | None:
            try:
                return self.decrypt_secrets([secret])[0]
            except FleeceError:
                return None

        return _parallel(attempt, secrets)

    def encrypt_chunks(
        self, stage: str, chunks: Sequence[bytes], contexts: Sequence[dict[str, str]]
    ) -> tuple[str, list[str]]:
        """Encrypt payload chunks with a stage's key: (key ARN, base64 ciphertexts)."""
        self.client(stage, "kms")
        key_id = kms_key_id(self._entry(stage).key)

        def encrypt(index: int) -> tuple[str, str]:
            response = self._call(
                stage,
                f"encrypt chunk {index} of the config of stage {stage}",
                lambda kms: kms.encrypt(
                    KeyId=key_id,
                    Plaintext=chunks[index],
                    EncryptionContext=contexts[index],
                ),
            )
            blob = base64.b64encode(response["CiphertextBlob"]).decode("ascii")
            return str(response["KeyId"]), blob

        results = _parallel(encrypt, range(len(chunks)))
        arns = {arn for arn, _ in results}
        if len(arns) != 1:
            raise FleeceError(f"KMS used several keys for stage {stage}: {arns}")
        return arns.pop(), [blob for _, blob in results]

    def key_arn(self, stage: str, key: str) -> str:
        """The ARN of ``key`` (any accepted form), seen from a stage's account."""
        response = self._call(
            stage,
            f"describe KMS key {key}",
            lambda kms: kms.describe_key(KeyId=kms_key_id(key)),
        )
        return str(response["KeyMetadata"]["Arn"])

    def _call(
        self,
        stage: str,
        action: str,
        call: Callable[[Any], Any],
        moved_hint: bool = False,
    ) -> Any:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ParamValidationError,
        )

        kms = self.client(stage, "kms")
        entry = self._entry(stage)
        try:
            return call(kms)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "ClientError")
            where = f"could not {action} with the key {entry.key!r} of stage {stage}"
            if code == "NotFoundException":
                raise BadInput(f"{where}: KMS has no such key ({code})") from None
            if moved_hint and code in _NOT_FOR_HERE:
                raise FleeceError(
                    f"{where}: KMS refused ({code}); the ciphertext was made for "
                    "another key path, stage or key, or the key is not yours"
                ) from None
            raise FleeceError(f"{where}: {code}") from None
        except ParamValidationError:
            # Its message may quote the parameters, which hold secrets.
            raise FleeceError(f"could not {action}: invalid request") from None
        except BotoCoreError as error:
            raise FleeceError(
                f"could not {action} for stage {stage}: {type(error).__name__}: {error}"
            ) from None


def _parallel(work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(items))) as pool:
        return list(pool.map(work, items))
