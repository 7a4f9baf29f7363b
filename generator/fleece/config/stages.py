"""A stage as a `fleece config` command uses it: resolved once, then passed along.

A command matches a stage name to its ``stages:`` entry in one place
(``Stages.resolve``) and hands the resulting ``Stage`` to every later step: it
carries the name, the entry, the KMS key, the environment and that
environment's credentials. Secrets reach their entry's ``Stage`` through
``Stages.of_entry``. Nothing else matches names to entries.
"""

import re
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from fleece.aws.environments import Environment, Environments, is_pattern
from fleece.aws.session import session_for_environment
from fleece.config.model import ConfigFile, child_path
from fleece.errors import BadInput

if TYPE_CHECKING:
    import boto3

__all__ = ["MAX_WORKERS", "Credentials", "Stage", "Stages", "kms_key_id"]

MAX_WORKERS = 16  # concurrent KMS/SSM calls of one command

_KEY_ID = re.compile(
    r"(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)


def kms_key_id(key: str) -> str:
    """The KeyId KMS expects for a key as users write it.

    Accepts an alias name with or without ``alias/``, an alias ARN, a key ARN
    and a bare key id (a UUID or a ``mrk-`` multi-region id).
    """
    if key.startswith(("arn:", "alias/")) or _KEY_ID.fullmatch(key):
        return key
    return "alias/" + key


class Credentials:
    """The AWS credentials of one environment, obtained on first use.

    ``environment`` None: no environments.yml, boto3's standard chain.
    """

    def __init__(self, environment: Environment | None) -> None:
        self.environment = environment
        self._session: boto3.Session | None = None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """A boto3 client (``kms``, ``ssm``) with these credentials."""
        with self._lock:
            if service not in self._clients:
                from botocore.config import Config

                if self._session is None:
                    self._session = session_for_environment(self.environment)
                self._clients[service] = self._session.client(
                    service,
                    config=Config(
                        max_pool_connections=MAX_WORKERS,
                        retries={"mode": "standard"},
                    ),
                )
            return self._clients[service]

    def describe(self) -> str:
        """Whose credentials these are, for messages."""
        if self.environment is None:
            return "the standard AWS credentials"
        return f"the credentials of environment {self.environment.name}"


@dataclass(frozen=True)
class Stage:
    """A stage resolved to its ``stages:`` entry, key and credentials."""

    name: str  # as asked ("feature-7"); for an entry itself, the entry's name
    entry: str  # its stages: entry as written ("/feature-.*/")
    key: str  # the entry's KMS key as written
    environment: str  # the entry's environment name
    credentials: Credentials = field(compare=False, repr=False)

    @property
    def key_id(self) -> str:
        """The key in the form KMS takes."""
        return kms_key_id(self.key)

    @property
    def where(self) -> str:
        """``stages.<entry>`` for messages."""
        return child_path("stages", self.entry)


class Stages:
    """The stages of one config document, checked against environments.yml.

    Each entry's environment must exist, and agree with environments.yml's own
    ``stages:`` map where that map names the stage. Entries of one environment
    share one ``Credentials``.
    """

    def __init__(self, config: ConfigFile, environments: Environments | None) -> None:
        self._config = config
        self._environments = environments
        shared: dict[str | None, Credentials] = {}
        self._entries: dict[str, Stage] = {}
        for name, entry in config.stages.items():
            environment = self._environment(name, entry.environment)
            key = environment.name if environment is not None else None
            credentials = shared.setdefault(key, Credentials(environment))
            stage = Stage(name, name, entry.key, entry.environment, credentials)
            self._check_map(name, stage)
            self._entries[name] = stage

    def of_entry(self, entry: str) -> Stage:
        """The ``Stage`` of a ``stages:`` entry (what a secret names)."""
        return self._entries[entry]

    def entries(self) -> list[Stage]:
        """Every entry's ``Stage``, in file order."""
        return list(self._entries.values())

    def resolve(self, name: str) -> Stage:
        """The stage called ``name``: its entry by exact name, else the first
        ``/regex/`` entry matching the whole name. BadInput when none does."""
        entry = self._config.stage_entry(name)
        stage = replace(self._entries[entry.name], name=name)
        self._check_map(name, stage)
        return stage

    def _environment(self, entry: str, name: str) -> Environment | None:
        if self._environments is None:
            return None
        try:
            return self._environments.get(name)
        except BadInput as error:
            raise BadInput(
                f"{child_path('stages', entry)}.environment: {error}"
            ) from None

    def _check_map(self, name: str, stage: Stage) -> None:
        mapped = self._mapped_environment(name)
        if mapped is not None and mapped != stage.environment:
            raise BadInput(
                f"{stage.where}: config.yml says environment {stage.environment!r} "
                f"but environments.yml's stages: says {mapped!r} for {name}; "
                "make them agree"
            )

    def _mapped_environment(self, name: str) -> str | None:
        """The environment environments.yml's ``stages:`` gives ``name``, if any.

        A pattern entry is only compared with the very same pattern there: one
        pattern cannot be matched against another.
        """
        if self._environments is None or not self._environments.stages:
            return None
        if is_pattern(name):
            return dict(self._environments.stages).get(name)
        try:
            return self._environments.for_stage(name).name
        except BadInput:
            return None  # the map does not cover this stage: config.yml decides
