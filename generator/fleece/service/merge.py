"""Three-way merge of one file: the pristine base, the user's file, the new render.

The text merge is git's own (``git merge-file``), so conflicts look exactly like
the ones a developer resolves after ``git merge``::

    <<<<<<< yours
    the user's lines
    =======
    the template's lines
    >>>>>>> fleece 2.1.0

Binary files cannot carry markers: when both sides changed one, the user's
version is kept and the file is reported as a conflict.
"""

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fleece.errors import FleeceError

__all__ = ["Merged", "first_conflict_line", "merge_file"]

_OURS_LABEL = "yours"


@dataclass(frozen=True)
class Merged:
    """The merged bytes of one file, and whether they hold a conflict."""

    data: bytes
    conflict: bool


def merge_file(
    base: bytes | None, ours: bytes, theirs: bytes, theirs_label: str
) -> Merged:
    """Merge the changes base -> ours and base -> theirs into one file.

    ``base`` None means the file is new on both sides: every difference between
    the two is then a conflict, so neither side's lines are lost.
    """
    if ours == theirs or base == theirs:
        return Merged(ours, conflict=False)
    if base == ours:
        return Merged(theirs, conflict=False)
    if any(b"\0" in data for data in (base or b"", ours, theirs)):
        return Merged(ours, conflict=True)
    return _git_merge_file(base or b"", ours, theirs, theirs_label)


def _git_merge_file(
    base: bytes, ours: bytes, theirs: bytes, theirs_label: str
) -> Merged:
    with tempfile.TemporaryDirectory(prefix="fleece-merge-") as tmp:
        paths = {}
        for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            paths[name] = Path(tmp) / name
            paths[name].write_bytes(data)
        try:
            result = subprocess.run(
                [
                    "git",
                    # Plain markers whatever the user's git config says.
                    "-c",
                    "merge.conflictStyle=merge",
                    "merge-file",
                    "--stdout",
                    "-L",
                    _OURS_LABEL,
                    "-L",
                    "base",
                    "-L",
                    theirs_label,
                    str(paths["ours"]),
                    str(paths["base"]),
                    str(paths["theirs"]),
                ],
                cwd=tmp,
                capture_output=True,
            )
        except FileNotFoundError:
            raise FleeceError("git is not installed: fleece update needs it") from None
    # The exit code is the number of conflicts; a negative one (>127) an error.
    if result.returncode > 127:
        message = result.stderr.decode("utf-8", "replace").strip()
        raise FleeceError(f"git merge-file failed: {message}")
    return Merged(result.stdout, conflict=result.returncode > 0)


def first_conflict_line(data: bytes) -> int | None:
    """The 1-based line of the first complete conflict block in ``data``, or None.

    A block is a ``<<<<<<<`` line, then a ``=======`` line, then a ``>>>>>>>``
    line; a lone ``=======`` (a Markdown heading underline) is not one.
    """
    start: int | None = None
    middle = False
    for number, raw in enumerate(data.splitlines(), start=1):
        line = raw.rstrip(b"\r")
        if _is_marker(line, b"<"):
            start, middle = number, False
        elif start is not None and line == b"=" * 7:
            middle = True
        elif start is not None and middle and _is_marker(line, b">"):
            return start
    return None


def _is_marker(line: bytes, char: bytes) -> bool:
    return line.startswith(char * 7) and line[7:8] in (b"", b" ")
