"""Conflict blocks that ``fleece update`` wrote, told apart from text that looks like one.

A README may show conflict markers in a fenced example, and a Markdown heading
is underlined with ``=======``: neither is a conflict left by an update. So
update records, in ``.fleece/conflicts.yml``, every file it wrote conflict
blocks into, their exact marker lines and how many blocks with those markers
the file already held. A conflict remains while the file holds more complete
blocks with those markers (a start line, ``=======``, an end line) than that.

Services updated by fleece 2.0 have no record: there, a block counts when its
markers are the ones fleece 2.0 wrote (``<<<<<<< yours`` ... ``>>>>>>> fleece X``).
"""

from dataclasses import dataclass
from typing import Any

import yaml

from fleece.errors import BadInput
from fleece.service.layout import CONFLICTS_FILE

__all__ = [
    "OURS_LABEL",
    "OURS_MARKER",
    "ConflictRecord",
    "block_lines",
    "dump_conflicts",
    "legacy_record",
    "parse_conflicts",
    "theirs_marker",
]

OURS_LABEL = "yours"
OURS_MARKER = f"<<<<<<< {OURS_LABEL}"
_MIDDLE = "======="
_LEGACY_END = ">>>>>>> fleece "


@dataclass(frozen=True)
class ConflictRecord:
    """The conflict blocks one update wrote into one file."""

    path: str
    start: str
    end: str
    # Complete blocks with these markers the file held before the update.
    existing: int = 0

    def remaining(self, data: bytes) -> list[int]:
        """The first lines of the blocks still to resolve in ``data``."""
        lines = block_lines(data, self.start, self.end)
        return lines[self.existing :] if len(lines) > self.existing else []


def theirs_marker(label: str) -> str:
    """The end marker of a block whose other side is ``label``."""
    return f">>>>>>> {label}"


def legacy_record(path: str) -> ConflictRecord:
    """How blocks written by fleece 2.0 (which kept no record) are recognised."""
    return ConflictRecord(path, OURS_MARKER, _LEGACY_END)


def block_lines(data: bytes, start: str, end: str) -> list[int]:
    """The 1-based first lines of the complete conflict blocks of ``data``.

    ``end`` ending with a space matches any end marker that starts with it.
    """
    found = []
    opened: int | None = None
    middle = False
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
        line = raw.rstrip("\r")
        if line == start:
            opened, middle = number, False
        elif opened is not None and line == _MIDDLE:
            middle = True
        elif opened is not None and middle and _ends(line, end):
            found.append(opened)
            opened = None
    return found


def parse_conflicts(data: bytes) -> list[ConflictRecord]:
    """The records in ``.fleece/conflicts.yml``."""
    try:
        raw: Any = yaml.safe_load(data.decode("utf-8")) or []
    except (yaml.YAMLError, UnicodeDecodeError):
        raw = None
    fields = ("path", "start", "end")
    if not isinstance(raw, list) or not all(
        isinstance(entry, dict)
        and all(isinstance(entry.get(name), str) for name in fields)
        and isinstance(entry.get("existing", 0), int)
        for entry in raw
    ):
        raise BadInput(
            f"{CONFLICTS_FILE} is not a list of {{path, start, end, existing}}: "
            "restore it from git history, or delete it once every conflict is resolved"
        )
    return [
        ConflictRecord(e["path"], e["start"], e["end"], e.get("existing", 0))
        for e in raw
    ]


def dump_conflicts(records: list[ConflictRecord]) -> bytes:
    """The text of ``.fleece/conflicts.yml`` for ``records``."""
    entries = [
        {"path": r.path, "start": r.start, "end": r.end, "existing": r.existing}
        for r in records
    ]
    return (
        "# Conflict blocks written by `fleece update`; `fleece check` reports them\n"
        "# until they are resolved. Managed by fleece.\n"
        + yaml.safe_dump(entries, sort_keys=False)
    ).encode("utf-8")


def _ends(line: str, end: str) -> bool:
    return line.startswith(end) if end.endswith(" ") else line == end
