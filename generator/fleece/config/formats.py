"""The text of config files: YAML (with YAML 1.2 scalars) and JSON, in and out.

PyYAML reads YAML 1.1, where ``yes``, ``on``, ``1:30`` and ``0777`` are not the
strings they look like. The original fleece read config files with ruamel's
YAML 1.2 reader, so this module does too: only ``true``/``false`` are booleans,
``null``/``~``/empty is null, and numbers are decimal, ``0o`` octal or ``0x``
hex. Dates stay strings. The writer quotes every string that either YAML 1.1 or
1.2 would read as something else, so what it writes reads back the same in
both. Duplicate keys are an error instead of a silent "last one wins".
"""

import json
import math
import re
from typing import Any

import yaml

from fleece.errors import BadInput

__all__ = ["dump_json", "dump_yaml", "load_text"]

# ---------------------------------------------------------------------------
# YAML 1.2 core schema scalars
# ---------------------------------------------------------------------------

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_RESOLVERS: list[tuple[str, re.Pattern[str], list[str | None]]] = [
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", _BOOL, list("tTfF")),
    ("tag:yaml.org,2002:int", _INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789.")),
]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars and no duplicate keys."""

    # Only the YAML 1.2 resolvers below: no timestamps, no YAML 1.1 booleans,
    # no ``<<`` merge keys (YAML 1.2 has none; the original never read them).
    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool):
                continue  # not hashable; the config checks reject it with a path
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: yaml.SafeLoader, node: Any) -> int:
    value = str(loader.construct_scalar(node))
    if value.startswith("0o"):
        return int(value[2:], 8)
    if value.startswith("0x"):
        return int(value[2:], 16)
    return int(value, 10)


def _construct_float(loader: yaml.SafeLoader, node: Any) -> float:
    value = str(loader.construct_scalar(node)).lower()
    if value.endswith(".inf"):
        return -math.inf if value.startswith("-") else math.inf
    if value == ".nan":
        return math.nan
    return float(value)


for _tag, _pattern, _first in _RESOLVERS:
    _Loader.add_implicit_resolver(_tag, _pattern, _first)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes what YAML 1.1 or 1.2 would not read as a string."""

    yaml_implicit_resolvers: dict[Any, Any] = {  # noqa: RUF012
        key: list(value)
        for key, value in yaml.SafeDumper.yaml_implicit_resolvers.items()
    }

    def ignore_aliases(self, data: Any) -> bool:
        return True  # no &id001 anchors: every value is written where it is


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Multi-line strings (PEM keys, templates) read best as literal blocks;
    # PyYAML falls back to quoting when a block cannot hold the text exactly.
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


for _tag, _pattern, _first in _RESOLVERS:
    _Dumper.add_implicit_resolver(_tag, _pattern, _first)
_Dumper.add_representer(str, _represent_str)


# ---------------------------------------------------------------------------
# Reading and writing
# ---------------------------------------------------------------------------


def load_text(text: str, source: str) -> Any:
    """Parse YAML or JSON (a document starting with ``{``) text.

    Syntax errors become ``BadInput`` naming ``source`` and the line.
    """
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as error:
            raise BadInput(
                f"{source}: line {error.lineno}: invalid JSON: {error.msg}"
            ) from None
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f" line {mark.line + 1}:" if mark is not None else ""
        problem = error.problem or error.context or "syntax error"
        raise BadInput(f"{source}:{line} invalid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise BadInput(f"{source}: invalid YAML: {type(error).__name__}") from None


def dump_yaml(data: Any) -> str:
    """Block-style YAML, keys in their order, long strings never folded."""
    text: str = yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=1 << 30,
    )
    return text


def dump_json(data: Any) -> str:
    """Indented JSON with a final newline."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
