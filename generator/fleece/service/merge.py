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
from dataclasses import dataclass

from fleece.errors import FleeceError
from fleece.service.conflicts import OURS_LABEL
from fleece.service.interrupts import scratch_dir

__all__ = ["Merged", "merge_file"]


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
    with scratch_dir("merge") as tmp:
        paths = {}
        for name, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            paths[name] = tmp / name
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
                    OURS_LABEL,
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
