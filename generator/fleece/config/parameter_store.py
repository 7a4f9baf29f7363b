"""`render --parameter-store`: a stage's config as SSM SecureString parameters.

One parameter per leaf: nested keys are joined with ``/`` under the prefix,
strings are stored as they are, other scalars as JSON (``42``, ``1.5``,
``true``, ``null``) and lists as JSON. Planning is pure; ``apply_plan`` is the
only step that writes.
"""

import json
import re
from dataclasses import dataclass, field
from typing import Any

from fleece.config.model import child_path
from fleece.errors import BadInput, FleeceError

__all__ = ["ParameterPlan", "apply_plan", "existing_parameters", "plan_parameters"]

_NAME = re.compile(r"/[A-Za-z0-9_.\-/]*")
_MAX_DEPTH = 15  # SSM allows 15 levels of hierarchy
_MAX_VALUE = 8192  # advanced parameters hold up to 8 KB


@dataclass(frozen=True)
class ParameterPlan:
    """What an upload does: parameters to write and parameters to delete."""

    prefix: str
    values: dict[str, str]
    existing: frozenset[str] = frozenset()
    deletes: tuple[str, ...] = ()
    kms_key_arn: str | None = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """The plan, one line per parameter, without values."""
        key = self.kms_key_arn or "the default key alias/aws/ssm"
        lines = [f"SecureString parameters under {self.prefix}, encrypted with {key}:"]
        for name in self.values:
            verb = "overwrite" if name in self.existing else "create"
            lines.append(f"  {verb} {name}")
        lines.extend(f"  delete {name}" for name in self.deletes)
        return "\n".join(lines) + "\n"


def plan_parameters(
    config: dict[str, Any],
    prefix: str,
    existing: frozenset[str] = frozenset(),
    prune: bool = False,
    kms_key_arn: str | None = None,
) -> ParameterPlan:
    """The parameters of ``config`` under ``prefix`` (pure)."""
    prefix = normalize_prefix(prefix)
    values: dict[str, str] = {}
    _flatten(config, prefix, "config", values)
    deletes = tuple(sorted(existing - set(values))) if prune else ()
    return ParameterPlan(prefix, values, existing, deletes, kms_key_arn)


def normalize_prefix(prefix: str) -> str:
    """``prefix`` without a trailing slash; BadInput when SSM would refuse it."""
    if not prefix.startswith("/") or not _NAME.fullmatch(prefix):
        raise BadInput(
            f"parameter store prefix {prefix!r} must start with / and use only "
            "letters, digits and _.-/"
        )
    return prefix.rstrip("/") or ""


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


def existing_parameters(ssm: Any, prefix: str) -> frozenset[str]:
    """The names of the parameters under ``prefix`` (recursively)."""
    names: set[str] = set()
    paginator = ssm.get_paginator("get_parameters_by_path")
    for page in paginator.paginate(Path=prefix or "/", Recursive=True):
        names.update(parameter["Name"] for parameter in page["Parameters"])
    return frozenset(names)


def apply_plan(ssm: Any, plan: ParameterPlan) -> None:
    """Write and delete what ``plan`` says."""
    from botocore.exceptions import ClientError

    extra = {"KeyId": plan.kms_key_arn} if plan.kms_key_arn else {}
    for name, value in plan.values.items():
        tier = "Advanced" if len(value.encode("utf-8")) > 4096 else "Standard"
        try:
            ssm.put_parameter(
                Name=name,
                Value=value,
                Type="SecureString",
                Overwrite=True,
                Tier=tier,
                **extra,
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "ClientError")
            raise FleeceError(f"could not write parameter {name}: {code}") from None
    for start in range(0, len(plan.deletes), 10):  # DeleteParameters takes 10
        ssm.delete_parameters(Names=list(plan.deletes[start : start + 10]))
