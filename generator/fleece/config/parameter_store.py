"""`render --parameter-store`: a stage's config as SSM SecureString parameters.

One parameter per leaf: nested keys are joined with ``/`` under the prefix,
strings are stored as they are, other scalars as JSON (``42``, ``1.5``,
``true``, ``null``) and lists as JSON. Every parameter fleece writes carries
the description ``Written by fleece config for PREFIX``: ``--prune`` deletes
only parameters with that mark under that prefix, never another tool's or
another prefix's. The plan holds exactly what changes; unchanged parameters
are neither written nor listed.

Flattening and planning are pure; ``read_existing`` and ``apply_plan`` are the
only steps that talk to SSM.
"""

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from fleece.config.model import child_path
from fleece.errors import BadInput, FleeceError

__all__ = [
    "Change",
    "Existing",
    "ParameterPlan",
    "apply_plan",
    "flatten",
    "marker",
    "normalize_prefix",
    "plan_parameters",
    "read_existing",
]

_NAME = re.compile(r"/[A-Za-z0-9_.\-/]*")
_MAX_DEPTH = 15  # SSM allows 15 levels of hierarchy
_MAX_VALUE = 8192  # advanced parameters hold up to 8 KB
_MAX_STANDARD = 4096
_DEFAULT_KEY = "alias/aws/ssm"


@dataclass(frozen=True)
class Existing:
    """A parameter found under the prefix."""

    name: str
    type: str
    key_id: str | None
    description: str
    tier: str
    value: str | None = field(default=None, repr=False)  # read only where needed


@dataclass(frozen=True)
class Change:
    """One write or delete of the plan."""

    action: Literal["create", "update", "overwrite", "delete"]
    name: str
    value: str | None = field(default=None, repr=False)
    tier: str = "Standard"


@dataclass(frozen=True)
class ParameterPlan:
    """What an upload changes, and what it leaves alone."""

    prefix: str
    kms_key_arn: str | None
    changes: tuple[Change, ...]
    unchanged: int = 0
    foreign: int = 0  # parameters under the prefix fleece did not write

    def describe(self) -> str:
        """The plan, one line per change, without values."""
        key = self.kms_key_arn or f"the default key {_DEFAULT_KEY}"
        lines = [
            f"SecureString parameters under {self.prefix}, encrypted with {key}: "
            f"{len(self.changes)} to change, {self.unchanged} unchanged"
        ]
        lines.extend(f"  {change.action} {change.name}" for change in self.changes)
        if self.foreign:
            lines.append(
                f"  ({self.foreign} other parameter(s) under {self.prefix} were not "
                "written by fleece: left alone)"
            )
        return "\n".join(lines) + "\n"


def normalize_prefix(prefix: str) -> str:
    """``prefix`` without a trailing slash; BadInput unless it is a path of
    at least one non-empty segment that SSM accepts."""
    if not prefix.startswith("/") or not _NAME.fullmatch(prefix):
        raise BadInput(
            f"parameter store prefix {prefix!r} must start with / and use only "
            "letters, digits and _.-/"
        )
    path = prefix[:-1] if prefix.endswith("/") else prefix
    segments = path.split("/")[1:]
    if not path or "" in segments:
        raise BadInput(
            f"parameter store prefix {prefix!r} needs non-empty segments between "
            "its slashes (e.g. /my-service/prod): fleece never writes, or prunes, "
            "the whole region"
        )
    if segments[0].lower().startswith(("aws", "ssm")):
        raise BadInput(
            f"parameter store prefix {prefix!r}: SSM reserves names starting with "
            "aws or ssm"
        )
    return path


def marker(prefix: str) -> str:
    """The description of the parameters fleece writes under ``prefix``."""
    return f"Written by fleece config for {prefix}"


def flatten(config: dict[str, Any], prefix: str) -> dict[str, str]:
    """Parameter name -> value for every leaf of ``config`` (pure)."""
    values: dict[str, str] = {}
    _flatten(config, normalize_prefix(prefix), "config", values)
    return values


def _flatten(value: Any, name: str, path: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{name}/{key}", child_path(path, key), out)
        return
    if not _NAME.fullmatch(name) or "//" in name:
        raise BadInput(
            f"{path}: parameter name {name!r} is not allowed by SSM "
            "(letters, digits and _.-/ only)"
        )
    if name.count("/") > _MAX_DEPTH:
        raise BadInput(f"{path}: {name!r} is deeper than SSM's {_MAX_DEPTH} levels")
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if not text:
        raise BadInput(f"{path}: SSM parameters cannot hold an empty string")
    if len(text.encode("utf-8")) > _MAX_VALUE:
        raise BadInput(f"{path}: longer than SSM's {_MAX_VALUE} bytes per parameter")
    out[name] = text


def plan_parameters(
    values: dict[str, str],
    prefix: str,
    existing: dict[str, Existing],
    prune: bool = False,
    kms_key_arn: str | None = None,
) -> ParameterPlan:
    """The changes that make the parameters under ``prefix`` hold ``values`` (pure)."""
    prefix = normalize_prefix(prefix)
    mark = marker(prefix)
    wanted_key = kms_key_arn or _DEFAULT_KEY
    changes: list[Change] = []
    unchanged = 0
    for name, value in values.items():
        found = existing.get(name)
        big = len(value.encode("utf-8")) > _MAX_STANDARD
        # SSM never turns an advanced parameter back into a standard one.
        tier = "Advanced" if big or (found and found.tier == "Advanced") else "Standard"
        if found is None:
            changes.append(Change("create", name, value, tier))
        elif (found.type, found.key_id, found.description, found.value) == (
            "SecureString",
            wanted_key,
            mark,
            value,
        ):
            unchanged += 1
        else:
            action: Literal["update", "overwrite"] = (
                "update" if found.description == mark else "overwrite"
            )
            changes.append(Change(action, name, value, tier))
    others = [found for name, found in existing.items() if name not in values]
    ours = sorted(found.name for found in others if found.description == mark)
    if prune:
        changes.extend(Change("delete", name) for name in ours)
    foreign = len(others) - len(ours)
    return ParameterPlan(prefix, kms_key_arn, tuple(changes), unchanged, foreign)


def read_existing(ssm: Any, prefix: str, names: Iterable[str]) -> dict[str, Existing]:
    """The parameters under ``prefix`` (recursively), with the current value
    of those among ``names`` (the ones an upload may write)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        found: dict[str, Existing] = {}
        paginator = ssm.get_paginator("describe_parameters")
        pages = paginator.paginate(
            ParameterFilters=[
                {"Key": "Path", "Option": "Recursive", "Values": [prefix]}
            ]
        )
        for page in pages:
            for item in page["Parameters"]:
                found[item["Name"]] = Existing(
                    name=item["Name"],
                    type=item.get("Type", ""),
                    key_id=item.get("KeyId"),
                    description=item.get("Description", ""),
                    tier=item.get("Tier", "Standard"),
                )
        wanted = sorted(set(names) & set(found))
        for start in range(0, len(wanted), 10):  # GetParameters takes 10
            batch = ssm.get_parameters(
                Names=wanted[start : start + 10], WithDecryption=True
            )
            for item in batch["Parameters"]:
                found[item["Name"]] = replace(found[item["Name"]], value=item["Value"])
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "ClientError")
        raise FleeceError(
            f"could not read the parameters under {prefix}: {code}"
        ) from None
    except BotoCoreError as error:
        raise FleeceError(
            f"could not read the parameters under {prefix}: {type(error).__name__}"
        ) from None
    return found


def apply_plan(ssm: Any, plan: ParameterPlan) -> None:
    """Make the changes of ``plan``."""
    from botocore.exceptions import BotoCoreError, ClientError

    extra = {"KeyId": plan.kms_key_arn} if plan.kms_key_arn else {}
    writes = [change for change in plan.changes if change.action != "delete"]
    deletes = [change.name for change in plan.changes if change.action == "delete"]
    name = plan.prefix
    try:
        for change in writes:
            name = change.name
            ssm.put_parameter(
                Name=change.name,
                Value=change.value,
                Type="SecureString",
                Description=marker(plan.prefix),
                Overwrite=True,
                Tier=change.tier,
                **extra,
            )
        for start in range(0, len(deletes), 10):  # DeleteParameters takes 10
            name = deletes[start]
            ssm.delete_parameters(Names=deletes[start : start + 10])
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "ClientError")
        raise FleeceError(f"could not write parameter {name}: {code}") from None
    except BotoCoreError as error:
        raise FleeceError(
            f"could not write parameter {name}: {type(error).__name__}"
        ) from None
