"""The text of config files: YAML (with YAML 1.2 scalars) and JSON, in and out.

PyYAML reads YAML 1.1, where ``yes``, ``on``, ``1:30`` and ``0777`` are not the
strings they look like. The original fleece read config files with ruamel's
YAML 1.2 reader, so this module does too: only ``true``/``false`` are booleans,
``null``/``~``/empty is null, and numbers are decimal, ``0o`` octal or ``0x``
hex. Dates stay strings. The writer quotes every string that either YAML 1.1 or
1.2 would read as something else, so what it writes reads back the same in
both, whatever characters a string holds.

Config files come from pull requests too, so reading is bounded: at most
``MAX_BYTES`` of text, ``MAX_DEPTH`` levels of nesting, no YAML aliases (a
500-byte "billion laughs" document would expand to gigabytes), and duplicate
keys are an error in YAML and JSON alike instead of a silent "last one wins".
"""

import json
import math
import re
from typing import Any

import yaml

from fleece.errors import BadInput

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "decode_text",
    "dump_json",
    "dump_yaml",
    "load_text",
]

MAX_BYTES = 1 << 20  # 1 MiB: far more than any service's configuration
MAX_DEPTH = 32  # levels of nested mappings and lists

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
    """SafeLoader with YAML 1.2 core scalars, bounded nesting, no aliases and
    no duplicate keys."""

    # Only the YAML 1.2 resolvers below: no timestamps, no YAML 1.1 booleans,
    # no ``<<`` merge keys (YAML 1.2 has none; the original never read them).
    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        # The composer is the only recursive step of PyYAML's reader: bounding
        # it here bounds everything after it (construction, fleece's checks).
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None,
                None,
                f"alias *{event.anchor} is not allowed (write the value out)",
                event.start_mark,
            )
        if self.check_event(yaml.CollectionStartEvent):
            if self._depth >= MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_DEPTH} levels",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            self._depth += 1
            try:
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1
        return super().compose_node(parent, index)

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


# Characters a YAML reader takes as line breaks besides "\n". Written raw, as
# PyYAML does in plain, single-quoted and block scalars, they come back as a
# space or a "\n"; inside double quotes PyYAML escapes them.
_OTHER_LINE_BREAKS = frozenset("\x85\u2028\u2029")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # Multi-line strings (PEM keys, templates) read best as literal blocks;
    # PyYAML falls back to quoting when a block cannot hold the text exactly.
    style: str | None = "|" if "\n" in data else None
    if not _OTHER_LINE_BREAKS.isdisjoint(data):
        style = '"'
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


for _tag, _pattern, _first in _RESOLVERS:
    _Dumper.add_implicit_resolver(_tag, _pattern, _first)
_Dumper.add_representer(str, _represent_str)


# ---------------------------------------------------------------------------
# Reading and writing
# ---------------------------------------------------------------------------


def decode_text(raw: bytes, source: str) -> str:
    """The text of a config file's bytes: UTF-8, at most ``MAX_BYTES``."""
    _check_size(len(raw), source)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadInput(
            f"{source}: not UTF-8 text (byte {error.start}); config files are YAML or JSON"
        ) from None


def _check_size(size: int, source: str) -> None:
    if size > MAX_BYTES:
        raise BadInput(
            f"{source}: larger than the {MAX_BYTES // 1024} KiB fleece reads "
            "from a config file"
        )


def load_text(text: str, source: str) -> Any:
    """Parse YAML or JSON text (JSON first when it starts with ``{`` or ``[``;
    flow-style YAML such as ``{stages: {}}`` is YAML).

    Syntax errors, duplicate keys, aliases, too much nesting and too much text
    become ``BadInput`` naming ``source`` and, where known, the line.
    """
    if len(text) > MAX_BYTES // 4:  # cheap test first: UTF-8 takes <= 4 bytes
        _check_size(len(text.encode("utf-8", "surrogatepass")), source)
    if text.lstrip().startswith(("{", "[")):
        try:
            return _load_json(text, source)
        except json.JSONDecodeError as error:
            try:
                return _load_yaml(text, source)
            except BadInput:
                raise BadInput(
                    f"{source}: line {error.lineno}: invalid JSON: {error.msg}"
                ) from None
    return _load_yaml(text, source)


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f" line {mark.line + 1}:" if mark is not None else ""
        problem = error.problem or error.context or "syntax error"
        raise BadInput(f"{source}:{line} invalid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise BadInput(f"{source}: invalid YAML: {type(error).__name__}") from None


def _load_json(text: str, source: str) -> Any:
    depth = _json_depth(text)
    if depth > MAX_DEPTH:
        raise BadInput(f"{source}: invalid JSON: nested deeper than {MAX_DEPTH} levels")
    return json.loads(text, object_pairs_hook=lambda pairs: _json_object(pairs, source))


def _json_object(pairs: list[tuple[str, Any]], source: str) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise BadInput(f"{source}: invalid JSON: duplicate key {key!r}")
        data[key] = value
    return data


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)


def _json_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest outside strings (before json recurses)."""
    depth = deepest = 0
    for char in _JSON_STRING.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


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
