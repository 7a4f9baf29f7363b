"""The open and closed config formats: parse, validate, pick a stage (all pure).

Both formats hold the same document::

    stages:                       # stage name or /regex/ -> {environment, key}
      prod: {environment: prod, key: prod-key}
      /.*/: {environment: dev, key: dev-key}
    config:                       # nested mappings, lists and typed scalars
      password:                   # keys all starting with "+": a per-stage value
        +prod: ":encrypt:s3cret"  # open format: the secret in plain text
        +/.*/: ":decrypt:AQIC..." # closed format (config.yml): KMS ciphertext

Parsing turns every ``:encrypt:``/``:decrypt:`` string into a ``Secret`` that
knows its key path and the stage entry whose KMS key protects it, and every
per-stage mapping into a ``PerStage``. Nothing here talks to AWS.

config.yml written by fleece 2 starts with ``format: 2``: its ciphertexts are
bound by a KMS encryption context to their stage entry and key path. A
config.yml without it is fleece 1.x's, whose ciphertexts carry no context.
"""

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from fleece.aws.environments import is_pattern, match_stage
from fleece.errors import BadInput

__all__ = [
    "BOUND_FORMAT",
    "DECRYPT",
    "ENCRYPT",
    "ConfigFile",
    "Node",
    "PerStage",
    "Secret",
    "StageEntry",
    "check_stage_key",
    "child_path",
    "document",
    "parse_config",
    "stage_values",
    "to_data",
    "walk_secrets",
]

ENCRYPT = ":encrypt:"
DECRYPT = ":decrypt:"
MAX_SECRET_BYTES = 4096  # the most one KMS Encrypt call takes
BOUND_FORMAT = 2  # the `format:` of a config.yml whose secrets are bound

Format: TypeAlias = Literal["open", "closed", "any"]


@dataclass(frozen=True)
class StageEntry:
    """One entry of ``stages:``: the environment and KMS key of a stage."""

    name: str  # as written: "prod" or "/feature-.*/"
    environment: str
    key: str


@dataclass(frozen=True)
class Secret:
    """A secret value: plaintext (open format) and/or ciphertext (closed format).

    ``entry`` is the ``stages:`` entry whose key encrypts it; ``path`` is where
    it sits (``config.db["+prod"].password``). Both go into the KMS encryption
    context, so a ciphertext only decrypts at its own place.
    """

    path: str
    entry: str
    plaintext: str | None = field(default=None, repr=False)
    ciphertext: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PerStage:
    """A per-stage value: ``{"+prod": ..., "+/.*/": ...}`` without the ``+``."""

    values: dict[str, "Node"]


Node: TypeAlias = (
    dict[str, "Node"] | list["Node"] | PerStage | Secret | str | int | float | None
)


@dataclass(frozen=True)
class ConfigFile:
    """A parsed config document.

    ``bound`` is False for a config.yml of fleece 1.x, whose ciphertexts were
    made without an encryption context.
    """

    stages: dict[str, StageEntry]
    config: dict[str, Node]
    bound: bool = True

    def stage_entry(self, stage: str) -> StageEntry:
        """The ``stages:`` entry of ``stage``: exact name first, then patterns."""
        name = match_stage(stage, list(self.stages))
        if name is None:
            known = ", ".join(self.stages) or "none"
            raise BadInput(
                f"unknown stage {stage!r}: no entry of stages: matches it (defined: {known})"
            )
        return self.stages[name]

    def secrets(self) -> list[Secret]:
        """Every secret, in file order."""
        return list(walk_secrets(self.config))


# ---------------------------------------------------------------------------
# Key paths
# ---------------------------------------------------------------------------

_SIMPLE_KEY = re.compile(r"\+?[A-Za-z_][A-Za-z0-9_-]*")


def child_path(parent: str, key: str) -> str:
    """``parent.key``, or ``parent["key"]`` when the key is not a plain word.

    Quoting keeps paths unambiguous (``{"a.b": 1}`` is not ``{"a": {"b": 1}}``),
    which matters because a path is part of each secret's encryption context.
    """
    if _SIMPLE_KEY.fullmatch(key):
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key, ensure_ascii=False)}]"


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


def parse_config(data: Any, source: str, fmt: Format) -> ConfigFile:
    """Validate a loaded document (``formats.load_text``) of the given format.

    ``open`` takes ``:encrypt:`` secrets, ``closed`` ``:decrypt:`` ones, ``any``
    both. Every problem is a ``BadInput`` naming the path of the offending value.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BadInput(f"{source}: expected a mapping with stages: and config:")
    known = ("stages", "config") if fmt == "open" else ("format", "stages", "config")
    unknown = [key for key in data if key not in known]
    if unknown:
        raise BadInput(
            f"{source}: unknown top-level key {unknown[0]!r} (expected stages: and config:)"
        )
    bound = fmt == "open" or _parse_format(data, source)
    stages = _parse_stages(data.get("stages"), source)
    raw_config = data.get("config")
    if raw_config is None:
        raw_config = {}
    if not isinstance(raw_config, dict):
        raise BadInput(f"{source}: config: must be a mapping")
    parser = _Parser(source, stages, fmt)
    config = parser.mapping(raw_config, "config", owner=None)
    if not isinstance(config, dict):
        raise BadInput(f"{source}: config: cannot itself be a per-stage value")
    return ConfigFile(stages, config, bound)


def _parse_format(data: dict[Any, Any], source: str) -> bool:
    """True for a fleece 2 config.yml (``format: 2``), False for fleece 1.x's."""
    if "format" not in data:
        return False
    if type(data["format"]) is not int or data["format"] != BOUND_FORMAT:
        raise BadInput(
            f"{source}: format: {data['format']!r} is not a format this fleece "
            f"reads (it writes format: {BOUND_FORMAT}); was it written by a newer fleece?"
        )
    return True


def _parse_stages(raw: Any, source: str) -> dict[str, StageEntry]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadInput(f"{source}: stages: must map stage names or /regex/ to entries")
    stages: dict[str, StageEntry] = {}
    for name, entry in raw.items():
        path = child_path("stages", str(name))
        if not isinstance(name, str) or not name:
            raise BadInput(f"{source}: {path}: stage names must be non-empty strings")
        _check_regex(name, source, path)
        if not isinstance(entry, dict):
            raise BadInput(f"{source}: {path}: expected {{environment, key}}")
        extra = [k for k in entry if k not in ("environment", "key")]
        if extra:
            raise BadInput(f"{source}: {path}: unknown field {extra[0]!r}")
        for required in ("environment", "key"):
            value = entry.get(required)
            if not isinstance(value, str) or not value:
                raise BadInput(
                    f"{source}: {path}: stage has no {required} (give {required}: NAME)"
                )
        stages[name] = StageEntry(name, entry["environment"], entry["key"])
    return stages


def _check_regex(name: str, source: str, path: str) -> None:
    if is_pattern(name):
        try:
            re.compile(name[1:-1])
        except re.error as error:
            raise BadInput(f"{source}: {path}: invalid regex: {error}") from None


@dataclass(frozen=True)
class _Owner:
    """The nearest per-stage key above a value, and the stage entry whose key
    protects secrets under it (None: no entry, or no single one)."""

    label: str
    entry: str | None


class _Parser:
    def __init__(self, source: str, stages: dict[str, StageEntry], fmt: Format):
        self.source = source
        self.stages = stages
        self.fmt = fmt

    def fail(self, path: str, message: str) -> BadInput:
        return BadInput(f"{self.source}: {path}: {message}")

    def node(self, value: Any, path: str, owner: _Owner | None) -> Node:
        if isinstance(value, dict):
            return self.mapping(value, path, owner)
        if isinstance(value, list):
            return [
                self.node(item, f"{path}[{index}]", owner)
                for index, item in enumerate(value)
            ]
        if isinstance(value, str):
            return self.string(value, path, owner)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(path, "NaN and infinity cannot be rendered as JSON")
        if value is None or isinstance(value, bool | int | float):
            return value
        raise self.fail(
            path,
            f"unsupported {type(value).__name__} value "
            "(use strings, numbers, booleans, null, lists and mappings)",
        )

    def mapping(self, value: dict[Any, Any], path: str, owner: _Owner | None) -> Node:
        for key in value:
            if not isinstance(key, str):
                raise self.fail(
                    child_path(path, str(key)), "keys must be strings: quote it"
                )
        marked = [key.startswith("+") for key in value]
        if value and all(marked):
            return self.per_stage(value, path)
        if any(marked):
            plus = next(key for key in value if key.startswith("+"))
            plain = next(key for key in value if not key.startswith("+"))
            raise self.fail(
                path,
                f"mixes per-stage keys ({plus!r}) with plain keys ({plain!r}); "
                "use only +stage keys, or none",
            )
        return {
            key: self.node(item, child_path(path, key), owner)
            for key, item in value.items()
        }

    def per_stage(self, value: dict[str, Any], path: str) -> PerStage:
        values: dict[str, Node] = {}
        for key, item in value.items():
            item_path = child_path(path, key)
            label = key[1:]
            if not label:
                raise self.fail(item_path, "'+' must be followed by a stage name")
            _check_regex(label, self.source, item_path)
            values[label] = self.node(item, item_path, _Owner(label, self.entry(label)))
        return PerStage(values)

    def entry(self, label: str) -> str | None:
        """The stage entry of a per-stage label, decided without guessing.

        A stage name finds its entry as a stage would (exact name, then
        patterns); a ``/regex/`` label must be the very text of an entry, since
        one pattern cannot be told to fall inside another.
        """
        if is_pattern(label):
            return label if label in self.stages else None
        return match_stage(label, list(self.stages))

    def string(self, value: str, path: str, owner: _Owner | None) -> Node:
        if value.startswith(ENCRYPT):
            if self.fmt == "closed":
                raise self.fail(
                    path,
                    "holds an unencrypted :encrypt: secret; config.yml must only "
                    "be written by `fleece config import` or `fleece config edit`",
                )
            entry = self.secret_entry(path, owner, ENCRYPT)
            plaintext = value[len(ENCRYPT) :]
            if not plaintext:
                raise self.fail(path, "empty secret (KMS cannot encrypt nothing)")
            if len(plaintext.encode("utf-8")) > MAX_SECRET_BYTES:
                raise self.fail(
                    path, f"secret longer than KMS's {MAX_SECRET_BYTES} bytes"
                )
            return Secret(path, entry, plaintext=plaintext)
        if value.startswith(DECRYPT):
            if self.fmt == "open":
                raise self.fail(
                    path,
                    "holds a :decrypt: ciphertext; import reads the open format "
                    "(`fleece config export` writes it), with secrets as :encrypt:VALUE",
                )
            entry = self.secret_entry(path, owner, DECRYPT)
            ciphertext = value[len(DECRYPT) :]
            try:
                base64.b64decode(ciphertext, validate=True)
            except binascii.Error:
                raise self.fail(
                    path, "the :decrypt: ciphertext is not base64"
                ) from None
            return Secret(path, entry, ciphertext=ciphertext)
        return value

    def secret_entry(self, path: str, owner: _Owner | None, marker: str) -> str:
        if owner is None:
            raise self.fail(
                path,
                f"{marker} is only allowed inside a per-stage value "
                "(e.g. password: {+prod: ':encrypt:...'}), since each stage has "
                "its own KMS key; nothing was written",
            )
        if owner.entry is not None:
            return owner.entry
        if is_pattern(owner.label):
            pattern = re.compile(owner.label[1:-1])
            candidates = [
                name
                for name in self.stages
                if is_pattern(name) or pattern.fullmatch(name)
            ]
            raise self.fail(
                path,
                f"+{owner.label} is not one of the stages: keys, so which stage's "
                "KMS key protects this secret is ambiguous (stages it may cover: "
                f"{', '.join(candidates) or 'none'}); label a secret with a stage "
                "name or with the exact text of a stages: pattern",
            )
        raise self.fail(
            path,
            f"no entry of stages: matches +{owner.label}, so no KMS key "
            "can protect this secret",
        )


# ---------------------------------------------------------------------------
# Walking, stage resolution and plain data
# ---------------------------------------------------------------------------


def walk_secrets(node: Node) -> Iterator[Secret]:
    """Every secret under ``node``, in order."""
    if isinstance(node, Secret):
        yield node
    elif isinstance(node, dict):
        for item in node.values():
            yield from walk_secrets(item)
    elif isinstance(node, PerStage):
        for item in node.values.values():
            yield from walk_secrets(item)
    elif isinstance(node, list):
        for item in node:
            yield from walk_secrets(item)


def stage_values(config: ConfigFile, stage: str) -> dict[str, Node]:
    """The config of ``stage``: every per-stage value replaced by its choice
    (the label naming ``stage`` exactly, else the first ``/regex/`` label
    matching it).

    Secrets stay ``Secret`` objects (decrypting is not pure); raises BadInput
    for a per-stage value with nothing for the stage.
    """
    resolved = _resolve(config.config, stage, "config")
    assert isinstance(resolved, dict)
    return resolved


def check_stage_key(config: ConfigFile, stage: str, entry: str, values: Node) -> None:
    """Every secret among ``values`` (what ``stage`` takes) is encrypted with
    the key of ``entry``, the stage's own entry.

    A per-stage value may hand a stage the secret of another entry: ``+/.*/``
    when prod has an entry and a key of its own. Unless both entries name the
    same key in the same environment, that secret is protected by another
    stage's key, and rendering it would give prod a value dev can read.
    """
    own = config.stages[entry]
    for secret in walk_secrets(values):
        other = config.stages[secret.entry]
        if (other.environment, other.key) != (own.environment, own.key):
            raise BadInput(
                f"{secret.path}: stage {stage} would take this secret of stage "
                f"entry {secret.entry}, encrypted with its key {other.key!r}, not "
                f"with stage {stage}'s own key {own.key!r}; render refuses it: "
                f"give the value a +{stage} entry"
            )


def _resolve(node: Node, stage: str, path: str) -> Node:
    if isinstance(node, PerStage):
        label = match_stage(stage, list(node.values))
        if label is None:
            raise BadInput(
                f"{path}: no value for stage {stage!r} "
                f"(add +{stage} or a +/regex/ matching it)"
            )
        return _resolve(node.values[label], stage, child_path(path, "+" + label))
    if isinstance(node, dict):
        return {
            key: _resolve(item, stage, child_path(path, key))
            for key, item in node.items()
        }
    if isinstance(node, list):
        return [
            _resolve(item, stage, f"{path}[{index}]") for index, item in enumerate(node)
        ]
    return node


def to_data(node: Node, secret: Callable[[Secret], Any]) -> Any:
    """Plain dicts/lists/scalars, per-stage keys with their ``+``, secrets as
    ``secret(s)`` returns them (``:encrypt:...``, ``:decrypt:...``, or the
    plaintext when rendering)."""
    if isinstance(node, Secret):
        return secret(node)
    if isinstance(node, PerStage):
        return {"+" + key: to_data(item, secret) for key, item in node.values.items()}
    if isinstance(node, dict):
        return {key: to_data(item, secret) for key, item in node.items()}
    if isinstance(node, list):
        return [to_data(item, secret) for item in node]
    return node


def document(config: ConfigFile, secret: Callable[[Secret], Any]) -> dict[str, Any]:
    """The whole file as plain data: ``stages:`` then ``config:``."""
    return {
        "stages": {
            name: {"environment": entry.environment, "key": entry.key}
            for name, entry in config.stages.items()
        },
        "config": to_data(config.config, secret),
    }
