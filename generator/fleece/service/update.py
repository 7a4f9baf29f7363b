"""``fleece update``: re-render a service with the installed fleece, keeping edits.

A service holds its own pristine render in ``.fleece/base/`` (see
``fleece.service.layout``), so update never needs the template version that made it:

- base   = ``.fleece/base/<path>``, what fleece rendered last time;
- ours   = ``<path>``, the user's file;
- theirs = the render of the recorded answers (plus ``--data``) by the
  installed fleece.

User-owned files are merged three ways (``fleece.service.merge``); generator-owned ones
(``src/fleece_runtime.py``, ``.fleece/answers.yml``) are replaced, unless the
runtime was edited by hand. Then ``.fleece/base/`` becomes the new render.

The flow is a straight line: check the git state -> read answers and files ->
render -> plan every change in memory -> (``--pretend``: show the plan) -> write.
Nothing is written before the whole plan is known.
"""

import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleece import __version__
from fleece.errors import BadInput, FleeceError
from fleece.files import atomic_write
from fleece.service.check import conflict_findings
from fleece.service.generated import parse_generated
from fleece.service.git import git
from fleece.service.layout import (
    BASE_DIR,
    CONFIG_MODULE,
    FLEECE_DIR,
    GENERATOR_OWNED,
    load_answers,
    load_settings,
)
from fleece.service.merge import Merged, merge_file
from fleece.service.render import (
    Template,
    Tree,
    load_template,
    parse_data,
    render,
    with_base,
)

__all__ = [
    "FileChange",
    "GeneratedFileEdited",
    "UpdateRequest",
    "UpdateResult",
    "next_answers",
    "unified_diff",
    "update_service",
]

# copier.yml key through which a template declares renamed questions, so the
# recorded answer carries over: `_fleece_renamed_questions: {old: new}`.
RENAMED_QUESTIONS_KEY = "_fleece_renamed_questions"
DEFAULT_TEMPLATE = "service"


# -- Data ---------------------------------------------------------------------


@dataclass(frozen=True)
class UpdateRequest:
    """Every setting of one ``fleece update`` run."""

    path: Path = Path()
    data: tuple[str, ...] = ()
    template: str | None = None
    pretend: bool = False
    force: bool = False


@dataclass(frozen=True)
class FileChange:
    """One file update writes: ``before``/``after`` None mean absent."""

    path: str
    action: str  # created, updated, merged, conflict, deleted, replaced
    before: bytes | None
    after: bytes | None


@dataclass(frozen=True)
class UpdateResult:
    """What ``fleece update`` changed, or (``pretend``) would change."""

    path: Path
    template: str
    from_version: str
    to_version: str
    changes: tuple[FileChange, ...]
    conflicts: tuple[str, ...]
    notes: tuple[str, ...] = ()
    written: bool = False

    def diff(self) -> str:
        """The unified diff of every change, as ``git diff`` would show it."""
        return "".join(unified_diff(c.path, c.before, c.after) for c in self.changes)


class GeneratedFileEdited(FleeceError):
    """A generator-owned file was edited by hand; ``diff`` is what update would undo."""

    def __init__(self, message: str, diff: str) -> None:
        super().__init__(message)
        self.diff = diff


# -- The command --------------------------------------------------------------


def update_service(request: UpdateRequest) -> UpdateResult:
    """Merge the installed fleece's render into the service; see the module docstring."""
    root = request.path.absolute()
    if not root.is_dir():
        raise BadInput(f"{root} is not a directory")
    if not request.pretend:
        _require_clean_git(root)
    if not request.pretend:
        _require_no_leftover_conflicts(root)
    recorded = load_answers(root)
    template = _recorded_template(root, recorded, request.template)
    answers, notes = next_answers(template, recorded, request.data)
    rendered = with_base(render(template, answers))
    changes, conflicts, merge_notes = _plan(root, rendered, request.force)
    result = UpdateResult(
        path=root,
        template=template.name,
        from_version=str(recorded.get("_fleece_version", "unknown")),
        to_version=__version__,
        changes=tuple(changes),
        conflicts=tuple(conflicts),
        notes=tuple(notes + merge_notes + _config_module_notes(root)),
        written=not request.pretend,
    )
    if not request.pretend:
        _write(root, result.changes)
    return result


def _require_no_leftover_conflicts(root: Path) -> None:
    leftover = conflict_findings(root)
    if leftover:
        where = ", ".join(f.path for f in leftover)
        raise BadInput(
            f"conflict markers from an earlier update remain in {where}: "
            "resolve them and commit, then run fleece update again"
        )


def next_answers(
    template: Template, recorded: dict[str, Any], data: Iterable[str]
) -> tuple[dict[str, Any], list[str]]:
    """The answers to render with: recorded ones, renamed and pruned, then ``data``.

    Returns the answers and one note per renamed or dropped answer.
    """
    answers = {k: v for k, v in recorded.items() if not str(k).startswith("_")}
    notes: list[str] = []
    for old, new in _renamed_questions(template).items():
        if old in answers and new not in answers:
            answers[new] = answers.pop(old)
            notes.append(f"answer {old} is now called {new}")
    for key in [k for k in answers if k not in template.questions]:
        value = answers.pop(key)
        notes.append(
            f"answer {key}={value!r} dropped: the {template.name} template no longer asks it"
        )
    answers.update(parse_data(template, list(data)))
    return answers, notes


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


# -- Reading the service ------------------------------------------------------


def _require_clean_git(root: Path) -> None:
    inside = git(root, "rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        raise BadInput(
            f"{root} is not a git repository: fleece update merges into your files, "
            "so commit them first to review and undo it (git init && git add -A && git commit)"
        )
    status = git(root, "status", "--porcelain", "--untracked-files=all", "--", ".")
    if status.stdout.strip():
        first = status.stdout.splitlines()[0][3:]
        raise BadInput(
            f"{root} has uncommitted changes (e.g. {first}): commit or stash them "
            "first, so the update can be reviewed and undone with git"
        )


def _recorded_template(
    root: Path, recorded: dict[str, Any], requested: str | None
) -> Template:
    if requested is not None:
        return load_template(requested)
    name = str(recorded.get("_fleece_template") or DEFAULT_TEMPLATE)
    try:
        return load_template(name)
    except BadInput:
        raise BadInput(
            f"{root} was rendered from the template {name!r}, which this fleece "
            "does not bundle: pass --template NAME or --template PATH"
        ) from None


def _renamed_questions(template: Template) -> dict[str, str]:
    raw = yaml.safe_load((template.path / "copier.yml").read_text(encoding="utf-8"))
    renames = (raw or {}).get(RENAMED_QUESTIONS_KEY) or {}
    if not isinstance(renames, dict):
        raise FleeceError(
            f"{template.path}/copier.yml: {RENAMED_QUESTIONS_KEY} must map old names to new"
        )
    return {str(old): str(new) for old, new in renames.items()}


def _read_tree(root: Path) -> Tree:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


# -- Deciding (in memory) -----------------------------------------------------


def _plan(
    root: Path, rendered: Tree, force: bool
) -> tuple[list[FileChange], list[str], list[str]]:
    """Every change, the conflicted paths and notes; nothing is written."""
    base_dir = root / BASE_DIR
    if not base_dir.is_dir():
        raise BadInput(
            f"{base_dir} is missing: it holds the pristine render update merges "
            "against; restore it from git history (git checkout <commit> -- .fleece/base)"
        )
    base = _read_tree(base_dir)
    prefix = f"{BASE_DIR}/"
    new_base = {
        p[len(prefix) :]: d for p, d in rendered.items() if p.startswith(prefix)
    }

    changes, conflicts, notes = _merge_user_files(root, base, new_base)
    for path, data in rendered.items():
        if path in new_base or path.startswith(prefix):
            continue
        change = _replace_generated(root, path, data, force, notes)
        if change is not None:
            changes.append(change)
    changes += _refresh_base(base, new_base)
    return changes, conflicts, notes


def _merge_user_files(
    root: Path, base: Tree, new: Tree
) -> tuple[list[FileChange], list[str], list[str]]:
    changes: list[FileChange] = []
    conflicts: list[str] = []
    notes: list[str] = []
    label = f"fleece {__version__}"
    for path in sorted(base.keys() | new.keys()):
        before, theirs, ours = base.get(path), new.get(path), _read(root / path)
        if theirs is None:
            if ours is not None and ours == before:
                changes.append(FileChange(path, "deleted", ours, None))
            elif ours is not None:
                notes.append(
                    f"kept {path}: the template dropped it, but you changed it"
                )
        elif ours is None:
            if before is None:
                changes.append(FileChange(path, "created", None, theirs))
            elif theirs != before:
                notes.append(
                    f"left {path} deleted: you deleted it, the template changed it"
                )
        else:
            merged = merge_file(before, ours, theirs, label)
            if merged.conflict:
                conflicts.append(path)
            if merged.data != ours:
                changes.append(
                    FileChange(path, _action(merged, theirs), ours, merged.data)
                )
    return changes, conflicts, notes


def _action(merged: Merged, theirs: bytes) -> str:
    if merged.conflict:
        return "conflict"
    return "updated" if merged.data == theirs else "merged"


def _replace_generated(
    root: Path, path: str, data: bytes, force: bool, notes: list[str]
) -> FileChange | None:
    current = _read(root / path)
    if current == data:
        return None
    if (
        path == CONFIG_MODULE
        and current is not None
        and _rendered_config(root, current)
    ):
        return None  # a stage's rendered config: `fleece config` owns it
    if current is not None and path in GENERATOR_OWNED and _hand_edited(current):
        diff = unified_diff(path, current, data)
        if not force:
            raise GeneratedFileEdited(
                f"{path} was edited by hand (its body no longer matches the sha256 "
                "in its header); the diff above is what update would undo: move "
                "your changes elsewhere, or pass --force to overwrite them",
                diff,
            )
        notes.append(f"overwrote your edits to {path} (--force)")
    return FileChange(path, "created" if current is None else "replaced", current, data)


def _rendered_config(root: Path, data: bytes) -> bool:
    if CONFIG_MODULE in {m.path for m in load_settings(root).config_modules}:
        return True
    generated = parse_generated(data.decode("utf-8", "replace"))
    return generated is not None and "stage" in generated.fields


def _hand_edited(data: bytes) -> bool:
    generated = parse_generated(data.decode("utf-8", "replace"))
    return generated is None or generated.edited


def _refresh_base(base: Tree, new: Tree) -> list[FileChange]:
    changes = []
    for path in sorted(base.keys() | new.keys()):
        before, after = base.get(path), new.get(path)
        if before != after:
            action = "deleted" if after is None else "replaced"
            changes.append(FileChange(f"{BASE_DIR}/{path}", action, before, after))
    return changes


def _config_module_notes(root: Path) -> list[str]:
    notes = []
    for module in load_settings(root).config_modules:
        data = _read(root / module.path)
        if data is not None and _hand_edited(data):
            notes.append(
                f"{module.path} was edited by hand and is left as it is: re-render it "
                f"with `fleece config render {module.stage} --python --output {module.path}`"
            )
    return notes


def _lines(data: bytes | None) -> list[str]:
    return [] if data is None else data.decode("utf-8", "replace").splitlines(True)


# -- Writing ------------------------------------------------------------------


def _write(root: Path, changes: Iterable[FileChange]) -> None:
    # The user's files first, fleece's own last: if an update is interrupted,
    # .fleece/ still describes the old render and `git restore .` undoes it.
    ordered = sorted(changes, key=lambda c: c.path.startswith(f"{FLEECE_DIR}/"))
    for change in ordered:
        target = root / change.path
        if change.after is None:
            target.unlink(missing_ok=True)
            _remove_empty_parents(target.parent, root)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, change.after)


def _remove_empty_parents(folder: Path, root: Path) -> None:
    while folder != root and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
