"""The plan of an update: every write, in order, decided in memory before the first one.

``plan_update`` merges each file the template renders (base, yours, theirs;
see ``fleece.service.merge``), adds the generator-owned files and, last,
``.fleece/`` (the conflict record, the new pristine base, the answers), so that
``.fleece/`` describes the old render until every other file is written. It
also returns the obstacles: writes that cannot be made (a folder where a file
goes, a link out of the service), found here rather than half-way through.
"""

from dataclasses import dataclass, field
from typing import Any

from fleece import __version__
from fleece.service.base import Base, legacy_paths, pack_base, pristine
from fleece.service.conflicts import (
    OURS_MARKER,
    ConflictRecord,
    block_lines,
    dump_conflicts,
    theirs_marker,
)
from fleece.service.findings import Finding, finding, outside_finding
from fleece.service.journal import Journal, Step
from fleece.service.layout import (
    ANSWERS_FILE,
    BASE_ARCHIVE,
    CONFLICTS_FILE,
    RUNTIME_MODULE,
)
from fleece.service.merge import merge_file
from fleece.service.render import Template, Tree
from fleece.service.worktree import Location, Worktree

__all__ = [
    "BACKUP_SUFFIX",
    "FileChange",
    "Plan",
    "change",
    "pending",
    "plan_update",
]

# --force keeps a hand-edited generator-owned file beside the new one, as FILE.orig.
BACKUP_SUFFIX = ".orig"


@dataclass(frozen=True)
class FileChange:
    """One file an update writes; ``before``/``after`` in repository form, None: absent."""

    path: str
    action: str  # created, updated, merged, conflict, deleted, replaced, saved
    before: bytes | None
    after: bytes | None
    # Where and what is written (links resolved, working-tree line endings).
    step: Step


@dataclass(frozen=True)
class Plan:
    """Every write of an update, in the order it makes them."""

    template: str
    from_version: str
    to_version: str
    changes: tuple[FileChange, ...]
    conflicts: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def journal(self) -> Journal:
        """The plan as the update journal records it."""
        return Journal(
            self.from_version, self.to_version, tuple(c.step for c in self.changes)
        )


def plan_update(
    worktree: Worktree,
    template: Template,
    recorded: dict[str, Any],
    base: Base,
    rendered: Tree,
    notes: list[str],
    generated: list[FileChange],
) -> tuple[Plan, list[Finding]]:
    """The plan, and the obstacles to it (each found before the first write)."""
    new_base = pristine(rendered)
    worktree.prepare(base.tree.keys() | new_base.keys())
    label = f"fleece {__version__}"
    merged = _merge_user_files(worktree, base.tree, new_base, label)
    changes = [*merged.changes, *generated]
    state = _fleece_state(worktree, base, new_base, rendered)
    if changes or state:
        changes += _conflict_record(worktree, merged.records) + state
    saved = [
        f"saved your edited {c.path.removesuffix(BACKUP_SUFFIX)} as {c.path} "
        "(--force): move your changes out of it, then delete it"
        for c in changes
        if c.action == "saved"
    ]
    plan = Plan(
        template=template.name,
        from_version=str(recorded.get("_fleece_version", "unknown")),
        to_version=__version__,
        changes=tuple(changes),
        conflicts=tuple(r.path for r in merged.records),
        notes=tuple(notes + merged.notes + saved + _answers_notes(state)),
    )
    return plan, merged.obstacles + _obstacles(worktree, changes)


@dataclass
class _Merged:
    changes: list[FileChange] = field(default_factory=list)
    records: list[ConflictRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    obstacles: list[Finding] = field(default_factory=list)


def _merge_user_files(worktree: Worktree, base: Tree, new: Tree, label: str) -> _Merged:
    result = _Merged()
    for path in sorted(base.keys() | new.keys()):
        before, theirs = base.get(path), new.get(path)
        if before == theirs:
            continue  # the template did not change it: the user's file stands
        location = worktree.locate(path)
        if location.outside:
            result.notes.append(_skipped(location, before, theirs))
            continue
        if location.problem is not None:
            result.obstacles.append(finding(path, "obstacle", location.problem))
            continue
        ours = worktree.read(path)
        if theirs is None:
            if ours is None:
                continue
            if ours != before:
                result.notes.append(
                    f"kept {path}: the template dropped it, but you changed it"
                )
            elif location.link == path:
                result.notes.append(
                    f"kept {path}: the template dropped it, and it is your link"
                )
            else:
                result.changes.append(change(worktree, path, "deleted", ours, None))
        elif ours is None:
            if before is None:
                result.changes.append(change(worktree, path, "created", None, theirs))
            else:
                result.notes.append(
                    f"left {path} deleted: you deleted it, the template changed it"
                )
        else:
            merge = merge_file(before, ours, theirs, label)
            if merge.conflict:
                end = theirs_marker(label)
                existing = len(block_lines(ours, OURS_MARKER, end))
                result.records.append(ConflictRecord(path, OURS_MARKER, end, existing))
            if merge.data != ours:
                action = (
                    "conflict"
                    if merge.conflict
                    else "updated" if merge.data == theirs else "merged"
                )
                result.changes.append(change(worktree, path, action, ours, merge.data))
    return result


def _skipped(location: Location, before: bytes | None, theirs: bytes | None) -> str:
    what = "added" if before is None else "dropped" if theirs is None else "changed"
    return (
        f"skipped {location.path}: the template {what} it, but {location.link} "
        f"leads outside the service ({location.real}), where update never writes"
    )


def _fleece_state(
    worktree: Worktree, base: Base, new_base: Tree, rendered: Tree
) -> list[FileChange]:
    """``.fleece/``: written last, so it describes the old render until the end."""
    changes = []
    for path in legacy_paths(worktree):
        changes.append(change(worktree, path, "deleted", worktree.read(path), None))
    if base.legacy or base.tree != new_base:
        old = worktree.read(BASE_ARCHIVE)
        changes.append(
            change(
                worktree,
                BASE_ARCHIVE,
                "created" if old is None else "replaced",
                old,
                pack_base(new_base),
            )
        )
    answers = rendered.get(ANSWERS_FILE)
    current = worktree.read(ANSWERS_FILE)
    if answers is not None and answers != current:
        changes.append(change(worktree, ANSWERS_FILE, "replaced", current, answers))
    return changes


def _conflict_record(
    worktree: Worktree, records: list[ConflictRecord]
) -> list[FileChange]:
    current = worktree.read(CONFLICTS_FILE)
    if records:
        data = dump_conflicts(records)
        if data != current:
            action = "created" if current is None else "replaced"
            return [change(worktree, CONFLICTS_FILE, action, current, data)]
    elif current is not None:
        return [change(worktree, CONFLICTS_FILE, "deleted", current, None)]
    return []


def _answers_notes(state: list[FileChange]) -> list[str]:
    """A note when rewriting .fleece/answers.yml drops the user's comments."""
    rewritten = next((c for c in state if c.path == ANSWERS_FILE), None)
    if rewritten is None or rewritten.before is None:
        return []
    kept = set((rewritten.after or b"").decode("utf-8", "replace").splitlines())
    dropped = [
        line
        for line in rewritten.before.decode("utf-8", "replace").splitlines()
        if line not in kept and (line.lstrip().startswith("#") or " #" in line)
    ]
    if not dropped:
        return []
    count = f"{len(dropped)} line{'s' if len(dropped) > 1 else ''}"
    return [
        f"{ANSWERS_FILE} is rewritten by every update: your comments in it "
        f"({count}, e.g. {dropped[0].strip()!r}) are dropped; they stay in git "
        "history, keep such notes elsewhere"
    ]


def change(
    worktree: Worktree,
    path: str,
    action: str,
    before: bytes | None,
    after: bytes | None,
) -> FileChange:
    """The change of ``path`` from ``before`` to ``after``, with the write it takes."""
    location = worktree.locate(path)
    written = after
    if after is not None and path != BASE_ARCHIVE:  # the archive is binary
        written = worktree.worktree_form(path, after)
    blocked = location.problem is not None or location.outside
    target = path if blocked else worktree.relative(location)
    step = Step(target, worktree.raw(path), written, prune=location.link is None)
    return FileChange(path, action, before, after, step)


def _obstacles(worktree: Worktree, changes: list[FileChange]) -> list[Finding]:
    """Every planned write that cannot be made: found before the first write."""
    found = []
    for change in changes:
        location = worktree.locate(change.path)
        if location.problem is not None:
            found.append(finding(change.path, "obstacle", location.problem))
        elif location.outside:
            found.append(outside_finding(location))
    return found


def pending(plan: Plan, recorded: dict[str, Any]) -> list[Finding]:
    """One finding for what update would change beyond the runtime's own findings."""
    paths = [c.path for c in plan.changes if c.path != RUNTIME_MODULE]
    if not paths:
        return []
    shown = ", ".join(paths[:5]) + (
        f" and {len(paths) - 5} more" if len(paths) > 5 else ""
    )
    made_by = recorded.get("_fleece_version")
    what = (
        f"rendered by fleece {made_by}; "
        if made_by is not None and str(made_by) != __version__
        else ""
    )
    count = f"{len(paths)} file{'s' if len(paths) > 1 else ''}"
    return [
        finding(
            ANSWERS_FILE,
            "update-pending",
            f"{what}fleece update would change {count}: {shown} (run `fleece update`)",
        )
    ]
