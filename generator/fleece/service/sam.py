"""The Lambda function a service's ``template.yaml`` (AWS SAM) declares.

Only what running the function locally needs: its handler, runtime, timeout,
memory, name and environment variables, with ``Globals.Function`` applied.
CloudFormation's tags (``!Ref``, ``!Sub``...) are read as the objects they
stand for; environment values that only CloudFormation can resolve (a
``!GetAtt``, a ``!Ref`` of a resource) are reported, not guessed.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleece.errors import BadInput

TEMPLATE_FILE = "template.yaml"
FUNCTION_TYPE = "AWS::Serverless::Function"
# SAM's defaults when neither the function nor Globals set them.
DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY = 128


@dataclass(frozen=True)
class SamFunction:
    """One ``AWS::Serverless::Function`` of a template, Globals applied."""

    logical_id: str
    handler: str
    runtime: str | None
    timeout: int = DEFAULT_TIMEOUT
    memory_size: int = DEFAULT_MEMORY
    function_name: str | None = None
    # Name -> value, for the values the template alone determines.
    environment: dict[str, str] = field(default_factory=dict)
    # Name -> why the template alone cannot give its value.
    unresolved: dict[str, str] = field(default_factory=dict)


def load_function(
    service: Path, logical_id: str | None = None, region: str = "us-east-1"
) -> SamFunction:
    """The function ``logical_id`` of the service's template (the only one, if None).

    ``region`` stands for ``AWS::Region`` in the values of variables.
    """
    path = Path(service) / TEMPLATE_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path} is missing: is {service} a service?") from None
    try:
        template = yaml.load(text, Loader=_CloudFormationLoader)
    except yaml.YAMLError as error:
        raise BadInput(f"{path} is not valid YAML: {error}") from None
    if not isinstance(template, dict):
        raise BadInput(f"{path} is not a template: it holds no mapping")
    resources = template.get("Resources")
    functions = {
        name: resource.get("Properties") or {}
        for name, resource in (resources if isinstance(resources, dict) else {}).items()
        if isinstance(resource, dict) and resource.get("Type") == FUNCTION_TYPE
    }
    if logical_id is None:
        if len(functions) != 1:
            found = ", ".join(sorted(functions)) or "none"
            raise BadInput(
                f"{path} declares {len(functions)} functions ({found}): "
                f"name one with --function"
            )
        logical_id = next(iter(functions))
    if logical_id not in functions:
        found = ", ".join(sorted(functions)) or "none"
        raise BadInput(
            f"{path} has no function {logical_id!r} (its functions: {found})"
        )
    globals_ = template.get("Globals")
    defaults = globals_.get("Function") if isinstance(globals_, dict) else None
    properties = {**(defaults if isinstance(defaults, dict) else {})}
    properties.update(functions[logical_id])
    parameters = _parameter_defaults(template.get("Parameters"), region)
    return _function(path, logical_id, properties, defaults, parameters)


class _CloudFormationLoader(yaml.SafeLoader):
    """A safe loader that reads ``!Ref X`` as ``{"Ref": "X"}`` and ``!Sub`` as ``Fn::Sub``."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _construct_tag)


def _function(
    path: Path,
    logical_id: str,
    properties: dict[str, Any],
    defaults: Any,
    parameters: dict[str, str],
) -> SamFunction:
    handler = properties.get("Handler")
    if not isinstance(handler, str) or "." not in handler:
        raise BadInput(
            f"{path}: {logical_id} has no Handler of the form module.function"
        )
    variables: dict[str, Any] = {}
    for source in (defaults, properties):
        environment = source.get("Environment") if isinstance(source, dict) else None
        values = environment.get("Variables") if isinstance(environment, dict) else None
        if isinstance(values, dict):
            variables.update(values)
    resolved: dict[str, str] = {}
    unresolved: dict[str, str] = {}
    for variable, value in variables.items():
        text = _resolve(value, parameters)
        if text is None:
            unresolved[str(variable)] = "only CloudFormation can resolve its value"
        else:
            resolved[str(variable)] = text
    name = properties.get("FunctionName")
    return SamFunction(
        logical_id=logical_id,
        handler=handler,
        runtime=_optional_str(properties.get("Runtime")),
        timeout=_number(path, "Timeout", properties, parameters, DEFAULT_TIMEOUT),
        memory_size=_number(path, "MemorySize", properties, parameters, DEFAULT_MEMORY),
        function_name=name if isinstance(name, str) else None,
        environment=resolved,
        unresolved=unresolved,
    )


def _parameter_defaults(parameters: Any, region: str) -> dict[str, str]:
    """What ``!Ref`` gives for the template's parameters and the pseudo-parameters."""
    values = {
        "AWS::Region": region,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
    }
    for name, declared in (parameters if isinstance(parameters, dict) else {}).items():
        if isinstance(declared, dict) and "Default" in declared:
            default = _scalar(declared["Default"])
            if default is not None:
                values[str(name)] = default
    return values


def _resolve(value: Any, parameters: dict[str, str]) -> str | None:
    """A variable's value, as CloudFormation would give it; None if only it can."""
    scalar = _scalar(value)
    if scalar is not None:
        return scalar
    if isinstance(value, dict) and len(value) == 1:
        ((kind, argument),) = value.items()
        if kind == "Ref" and isinstance(argument, str):
            return parameters.get(argument)
        if kind == "Fn::Sub" and isinstance(argument, str):
            missing: list[str] = []

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name.startswith("!"):
                    return "${" + name[1:] + "}"
                if name not in parameters:
                    missing.append(name)
                    return ""
                return parameters[name]

            text = re.sub(r"\$\{([^}]*)\}", substitute, argument)
            return None if missing else text
    return None


def _scalar(value: Any) -> str | None:
    """A plain value as CloudFormation passes it to Lambda (booleans lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(
    path: Path,
    name: str,
    properties: dict[str, Any],
    parameters: dict[str, str],
    default: int,
) -> int:
    """A whole-number property (``Timeout``, ``MemorySize``), given or ``!Ref``'d."""
    value = properties.get(name)
    if value is None:
        return default
    text = None if isinstance(value, bool) else _resolve(value, parameters)
    if text is None or not text.isdigit() or int(text) < 1:
        raise BadInput(f"{path}: {name} must be a positive whole number, not {value!r}")
    return int(text)
