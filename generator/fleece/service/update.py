"""``fleece update``: re-render a service with the installed fleece, keeping edits.

A service holds its own pristine render (``fleece.service.base``), so update
never needs the template version that made it:

- base   = the pristine render of the last update, in ``.fleece/base.tar.bz2``;
- ours   = ``<path>``, the user's file;
- theirs = the render of the recorded answers (plus ``--data``) by the
  installed fleece.

User-owned files are merged three ways (``fleece.service.merge``); generator-owned
ones (``src/fleece_runtime.py``, the config stub) are replaced, unless edited by
hand. ``.fleece/`` is written last, so it describes the old render until every
other file is written.

The flow is a straight line: finish an interrupted update if there is one ->
check the git state -> ``assess`` (the same function as ``fleece check``: read,
render, plan every write in memory, find every obstacle) -> ``--pretend``: show
the plan and the refusals -> refuse, or write the plan through the journal.
"""

import difflib
from dataclasses import dataclass, replace
from pathlib import Path

from fleece import __version__
from fleece.errors import BadInput
from fleece.service.findings import Finding
from fleece.service.git import git
from fleece.service.interrupts import interruptible, remove_stale_scratch
from fleece.service.journal import (
    Journal,
    Recovery,
    finish,
    load_journal,
    remove_leftovers,
    run_journal,
    written_steps,
)
from fleece.service.plan import FileChange
from fleece.service.state import Options, ServiceState, assess, service_root

__all__ = [
    "UpdateRefused",
    "UpdateRequest",
    "UpdateResult",
    "unified_diff",
    "update_service",
]

# Refusals whose diff update shows: what --force would overwrite.
_SHOW_DIFF = ("runtime-edited", "config-stub-edited")


@dataclass(frozen=True)
class UpdateRequest:
    """Every setting of one ``fleece update`` run."""

    path: Path = Path()
    data: tuple[str, ...] = ()
    template: str | None = None
    pretend: bool = False
    force: bool = False
    allow_downgrade: bool = False
    abort: bool = False


@dataclass(frozen=True)
class UpdateResult:
    """What ``fleece update`` changed, or (``pretend``) would change."""

    path: Path
    template: str
    from_version: str
    to_version: str
    changes: tuple[FileChange, ...] = ()
    conflicts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # What stands in the way, one line each: update refuses (--pretend: would).
    refusals: tuple[str, ...] = ()
    written: bool = False
    # An interrupted update this run completed or rolled back (or would).
    recovery: Recovery | None = None

    def diff(self) -> str:
        """The unified diff of every change, as ``git diff`` would show it."""
        return "".join(unified_diff(c.path, c.before, c.after) for c in self.changes)


class UpdateRefused(BadInput):
    """Update will not run: one line per finding in its way; ``diff``: what --force would undo."""

    def __init__(self, refusals: tuple[Finding, ...], diff: str) -> None:
        super().__init__("\n".join(f.line() for f in refusals))
        self.refusals = refusals
        self.diff = diff


def update_service(request: UpdateRequest) -> UpdateResult:
    """Merge the installed fleece's render into the service; see the module docstring."""
    with interruptible():
        remove_stale_scratch()
        root = service_root(request.path)
        journal = load_journal(root)
        if journal is not None:
            return _finish_interrupted(root, journal, request)
        if request.abort:
            raise BadInput(
                f"{root} has no interrupted update to abort (no .fleece/update-journal.json)"
            )
        unclean = None
        if request.pretend:
            unclean = _unclean_git(root)
        else:
            remove_leftovers(root, None)
            _require_clean_git(root)
        options = Options(
            data=request.data,
            template=request.template,
            force=request.force,
            allow_downgrade=request.allow_downgrade,
        )
        state = assess(root, options)
        result = _result(state, written=not request.pretend)
        if request.pretend:
            if unclean is not None:
                return replace(result, refusals=(unclean, *result.refusals))
            return result
        if state.blockers:
            raise UpdateRefused(state.blockers, _refusal_diff(state, result))
        assert state.plan is not None  # only blockers stop the planning
        run_journal(root, state.plan.journal())
        return result


def unified_diff(path: str, before: bytes | None, after: bytes | None) -> str:
    """A git-style unified diff of one file (``/dev/null`` for an absent side)."""
    old = "/dev/null" if before is None else f"a/{path}"
    new = "/dev/null" if after is None else f"b/{path}"
    if b"\0" in (before or b"") or b"\0" in (after or b""):
        return f"Binary files {old} and {new} differ\n"
    lines = difflib.unified_diff(
        _lines(before), _lines(after), fromfile=old, tofile=new
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
        for line in lines
    )


def _result(state: ServiceState, written: bool) -> UpdateResult:
    plan = state.plan
    config_notes = tuple(
        f.line()
        for f in state.findings
        if f.kind.startswith("config-") and not f.blocking
    )
    refusals = tuple(f.line() for f in state.blockers)
    if plan is None:
        return UpdateResult(
            path=state.root,
            template="",
            from_version="unknown",
            to_version=__version__,
            notes=config_notes,
            refusals=refusals,
        )
    return UpdateResult(
        path=state.root,
        template=plan.template,
        from_version=plan.from_version,
        to_version=plan.to_version,
        changes=plan.changes,
        conflicts=plan.conflicts,
        notes=plan.notes + config_notes,
        refusals=refusals,
        written=written and not state.blockers,
    )


def _refusal_diff(state: ServiceState, result: UpdateResult) -> str:
    shown = {f.path for f in state.blockers if f.kind in _SHOW_DIFF}
    return "".join(
        unified_diff(c.path, c.before, c.after)
        for c in result.changes
        if c.path in shown
    )


def _finish_interrupted(
    root: Path, journal: Journal, request: UpdateRequest
) -> UpdateResult:
    """Complete (or, with --abort, roll back) the update a kill interrupted."""
    if request.pretend:
        written = written_steps(root, journal)
        recovery = Recovery(journal, written, completed=not request.abort)
    else:
        recovery = finish(root, journal, abort=request.abort)
    return UpdateResult(
        path=root,
        template="",
        from_version=journal.from_version,
        to_version=journal.to_version,
        written=not request.pretend,
        recovery=recovery,
    )


def _require_clean_git(root: Path) -> None:
    unclean = _unclean_git(root)
    if unclean is not None:
        raise BadInput(unclean)


def _unclean_git(root: Path) -> str | None:
    """Why the git state of ``root`` does not allow an update; None if it does."""
    inside = git(root, "rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return (
            f"{root} is not a git repository: fleece update merges into your files, "
            "so commit them first to review and undo it (git init && git add -A && git commit)"
        )
    status = git(root, "status", "--porcelain", "--untracked-files=all", "--", ".")
    if status.stdout.strip():
        first = status.stdout.splitlines()[0][3:]
        return (
            f"{root} has uncommitted changes (e.g. {first}): commit or stash them "
            "first, so the update can be reviewed and undone with git"
        )
    return None


def _lines(data: bytes | None) -> list[str]:
    return [] if data is None else data.decode("utf-8", "replace").splitlines(True)
