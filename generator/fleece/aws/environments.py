"""``environments.yml``: the AWS accounts a service deploys to, and its stages.

The format is the original fleece one, plus ``region`` and ``profile``::

    environments:
      - name: dev
        account: '123456789012'      # quoted, so YAML keeps it a string
        role: DeployRole             # optional: assumed after the base credentials
        rs_username_var: DEV_RS_USER # optional: where `fleece run` finds Rackspace ones
        rs_apikey_var: DEV_RS_KEY
        region: us-east-1            # optional
        profile: dev-sso             # optional: an AWS profile instead of Rackspace
    stages:                          # optional: stage name or /regex/ -> environment
      prod: production
      /feature-.*/: dev

A bare list of environments (the oldest form) is accepted too.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleece.config.formats import load_text
from fleece.errors import BadInput

_KNOWN_KEYS = frozenset(
    {"name", "account", "role", "rs_username_var", "rs_apikey_var", "region", "profile"}
)


@dataclass(frozen=True)
class Environment:
    """One entry of ``environments.yml``."""

    name: str
    account: str
    role: str | None = None
    rs_username_var: str | None = None
    rs_apikey_var: str | None = None
    region: str | None = None
    profile: str | None = None


@dataclass(frozen=True)
class Environments:
    """All environments of a service and its stage-to-environment map."""

    environments: tuple[Environment, ...]
    stages: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> Environment:
        """The environment called ``name``; BadInput when there is none."""
        for environment in self.environments:
            if environment.name == name:
                return environment
        known = ", ".join(e.name for e in self.environments) or "none"
        raise BadInput(
            f"unknown environment {name!r} (environments.yml defines: {known})"
        )

    def for_stage(self, stage: str) -> Environment:
        """The environment of ``stage``: an exact name first, then patterns in file order."""
        name = match_stage(stage, [key for key, _ in self.stages])
        if name is None:
            raise BadInput(
                f"unknown stage {stage!r}: no entry of the stages: map in environments.yml matches it"
            )
        return self.get(dict(self.stages)[name])


def is_pattern(stage_key: str) -> bool:
    """True for a ``/regex/`` stage key."""
    return len(stage_key) >= 2 and stage_key.startswith("/") and stage_key.endswith("/")


def match_stage(stage: str, keys: list[str]) -> str | None:
    """The key of ``keys`` that names ``stage``: an exact name wins over ``/regex/``
    keys, which are tried in order and must match the whole stage name."""
    if stage in keys:
        return stage
    for key in keys:
        if is_pattern(key) and re.fullmatch(key[1:-1], stage):
            return key
    return None


def load_environments(path: Path) -> Environments:
    """Read and validate ``environments.yml``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(
            f"{path}: no such file (it lists the service's AWS environments)"
        ) from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text") from None
    # The bounded reader of config files: size, nesting, no aliases, no
    # duplicate keys (a hostile file in a pull request cannot stall CI).
    return parse_environments(load_text(text, str(path)), str(path))


def parse_environments(raw: Any, source: str = "environments.yml") -> Environments:
    """Validate the parsed YAML of an environments file."""
    stages_raw: Any = {}
    if isinstance(raw, dict):
        entries = raw.get("environments")
        stages_raw = raw.get("stages") or {}
    else:
        entries = raw
    if not isinstance(entries, list):
        raise BadInput(f"{source}: expected an 'environments:' list")
    environments = [
        _parse_entry(entry, f"{source}: environments[{i}]")
        for i, entry in enumerate(entries)
    ]
    names = [e.name for e in environments]
    for name in names:
        if names.count(name) > 1:
            raise BadInput(f"{source}: environment {name!r} is defined more than once")
    if not isinstance(stages_raw, dict):
        raise BadInput(
            f"{source}: 'stages:' must map stage names or /regex/ to environments"
        )
    stages: list[tuple[str, str]] = []
    for key, value in stages_raw.items():
        target = value.get("environment") if isinstance(value, dict) else value
        if not isinstance(target, str):
            raise BadInput(f"{source}: stages.{key} must name an environment")
        if target not in names:
            raise BadInput(
                f"{source}: stages.{key} names unknown environment {target!r}"
            )
        if is_pattern(str(key)):
            try:
                re.compile(str(key)[1:-1])
            except re.error as error:
                raise BadInput(
                    f"{source}: stages.{key} is not a valid regex: {error}"
                ) from None
        stages.append((str(key), target))
    return Environments(tuple(environments), tuple(stages))


def _parse_entry(entry: Any, where: str) -> Environment:
    if not isinstance(entry, dict):
        raise BadInput(f"{where}: expected a mapping with name and account")
    unknown = sorted(set(entry) - _KNOWN_KEYS)
    if unknown:
        raise BadInput(f"{where}: unknown key {unknown[0]!r}")
    name, account = entry.get("name"), entry.get("account")
    if not isinstance(name, str) or not name:
        raise BadInput(f"{where}: 'name' is required")
    if not isinstance(account, str) or not re.fullmatch(r"\d{12}", account):
        raise BadInput(
            f"{where} ({name}): 'account' must be a quoted 12-digit AWS account id"
        )
    optional: dict[str, str | None] = {}
    for key in _KNOWN_KEYS - {"name", "account"}:
        value = entry.get(key)
        if value is not None and not isinstance(value, str):
            raise BadInput(f"{where} ({name}): {key!r} must be a string")
        optional[key] = value
    return Environment(name=name, account=account, **optional)
