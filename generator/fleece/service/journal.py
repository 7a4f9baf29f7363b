"""The update journal: after a kill at any moment, update can finish or undo its writes.

Before its first write, ``fleece update`` stores its whole write plan in
``.fleece/update-journal.json``: for every file, in order, the bytes it has and
the bytes it gets (None: absent). Then it writes the files, the service's first
and ``.fleece/`` last, and deletes the journal: that deletion is the moment the
update is done. Signals wait for the writing to end (``signals_deferred``), so
only a kill (SIGKILL, a power cut) can stop it half-way:

- killed before the journal exists: nothing was written (at most a temp file
  of the journal itself, which the next update removes);
- killed after: the journal is there, and every file it lists holds either its
  old bytes or its new ones. ``fleece update`` writes the rest (completes the
  update); ``fleece update --abort`` puts the old bytes back (rolls it back).
"""

import base64
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleece.errors import BadInput, FleeceError
from fleece.files import atomic_write
from fleece.service.interrupts import signals_deferred
from fleece.service.layout import FLEECE_DIR, JOURNAL_FILE

__all__ = [
    "Journal",
    "Recovery",
    "Step",
    "finish",
    "load_journal",
    "remove_leftovers",
    "run_journal",
    "written_steps",
]

_FORMAT = 1


@dataclass(frozen=True)
class Step:
    """One file write: ``path`` (relative to the root, links resolved) from ``before`` to ``after``."""

    path: str
    before: bytes | None
    after: bytes | None
    # After a deletion, remove the folders it leaves empty.
    prune: bool = True


@dataclass(frozen=True)
class Journal:
    """The write plan of one update."""

    from_version: str
    to_version: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Recovery:
    """What ``finish`` did with an interrupted update."""

    journal: Journal
    # Files the interrupted update had written already.
    written: int
    completed: bool


def run_journal(root: Path, journal: Journal) -> None:
    """Write every step of ``journal`` into the service at ``root``; see the module docstring."""
    with signals_deferred(
        "stopped after writing the whole update (review it with `git diff`)"
    ):
        try:
            atomic_write(root / JOURNAL_FILE, _dump(journal))
        except OSError as error:
            raise FleeceError(
                f"cannot write {JOURNAL_FILE} ({error.strerror}): nothing was written"
            ) from None
        for step in journal.steps:
            try:
                _write(root, step, step.after)
            except OSError as error:
                raise FleeceError(
                    f"writing {step.path} failed ({error.strerror}): the update is "
                    "half-written; fix the cause, then `fleece update` completes it "
                    "(or `fleece update --abort` rolls it back)"
                ) from None
        (root / JOURNAL_FILE).unlink()


def load_journal(root: Path) -> Journal | None:
    """The journal of an interrupted update, if there is one."""
    path = root / JOURNAL_FILE
    try:
        raw: Any = json.loads(path.read_bytes())
        if raw.get("format") != _FORMAT:
            raise ValueError(f"format {raw.get('format')!r}")
        return Journal(
            from_version=str(raw["from"]),
            to_version=str(raw["to"]),
            steps=tuple(
                Step(
                    path=str(step["path"]),
                    before=_decode(step["before"]),
                    after=_decode(step["after"]),
                    prune=bool(step.get("prune", True)),
                )
                for step in raw["steps"]
            ),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise BadInput(
            f"{path} cannot be read ({error}): it records an interrupted update; "
            "`git restore . && git clean -fd` undoes the update's writes"
        ) from None


def finish(root: Path, journal: Journal, *, abort: bool) -> Recovery:
    """Complete the interrupted update (or, with ``abort``, roll it back)."""
    written = written_steps(root, journal)
    what = "rolling back" if abort else "completing"
    with signals_deferred(f"stopped after {what} the interrupted update"):
        for step in reversed(journal.steps) if abort else journal.steps:
            _write(root, step, step.before if abort else step.after)
        remove_leftovers(root, journal)
        (root / JOURNAL_FILE).unlink()
    return Recovery(journal, written=written, completed=not abort)


def written_steps(root: Path, journal: Journal) -> int:
    """How many files the interrupted update wrote; BadInput if one changed since."""
    written, diverged = 0, []
    for step in journal.steps:
        current = _current(root, step.path)
        if current == step.after:
            written += 1
        elif current != step.before:
            diverged.append(step.path)
    if diverged:
        shown = ", ".join(diverged[:3]) + (" ..." if len(diverged) > 3 else "")
        them = "them" if len(diverged) > 1 else "it"
        raise BadInput(
            f"the interrupted update to fleece {journal.to_version} cannot be "
            f"finished: {shown} changed since; restore {them} with git and run "
            f"fleece update again, or undo the whole update: remove {JOURNAL_FILE}, "
            "then `git restore . && git clean -fd`"
        )
    return written


def remove_leftovers(root: Path, journal: Journal | None) -> None:
    """Remove the temp files that a kill left beside the journal and its files."""
    steps = journal.steps if journal is not None else ()
    for path in {JOURNAL_FILE, *(step.path for step in steps)}:
        target = root / path
        if not target.parent.is_dir():
            continue
        leftover = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp")
        for entry in target.parent.iterdir():
            if leftover.fullmatch(entry.name) and entry.is_file():
                entry.unlink()


def _write(root: Path, step: Step, data: bytes | None) -> None:
    target = root / step.path
    if not target.parent.resolve().is_relative_to(root.resolve()):
        raise BadInput(f"{step.path} is now outside the service: nothing written there")
    if data is None:
        if target.is_file() or target.is_symlink():
            target.unlink()
        if step.prune:
            _remove_empty_parents(target.parent, root)
    elif _current(root, step.path) != data:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, data)


def _current(root: Path, path: str) -> bytes | None:
    try:
        return (root / path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _remove_empty_parents(folder: Path, root: Path) -> None:
    keep = {root, root / FLEECE_DIR}
    while folder not in keep and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def _dump(journal: Journal) -> bytes:
    return json.dumps(
        {
            "format": _FORMAT,
            "from": journal.from_version,
            "to": journal.to_version,
            "steps": [
                {
                    "path": step.path,
                    "before": _encode(step.before),
                    "after": _encode(step.after),
                    "prune": step.prune,
                }
                for step in journal.steps
            ],
        }
    ).encode("utf-8")


def _encode(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def _decode(text: object) -> bytes | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("a step's content must be base64 text")
    return base64.b64decode(text, validate=True)
