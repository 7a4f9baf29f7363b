"""Services made by an older fleece, and the CLI run in-process against them.

``templates/v1`` and ``templates/v2`` are two versions of a small test template
(not the bundled one). An "old service" is what fleece 1.9.0 wrote from v1: the
render with a 1.9.0 runtime in ``src/fleece_runtime.py``, 1.9.0 recorded in
``.fleece/answers.yml``, the pristine render in ``.fleece/base.tar.bz2``, all
committed. Updating it with ``--template v2`` is what a newer fleece with a
newer template does. A "legacy" service keeps its pristine render as plain files
in ``.fleece/base/``, as fleece 2.0 did.
"""

import difflib
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from fleece import __version__
from fleece.service.base import pristine, unpack_base, with_base
from fleece.service.generated import render_generated
from fleece.service.layout import (
    ANSWERS_FILE,
    BASE_ARCHIVE,
    GENERATOR_OWNED,
    LEGACY_BASE_DIR,
    RUNTIME_MODULE,
)
from fleece.service.render import Tree, load_template, render

TEMPLATES = Path(__file__).parent / "templates"
V1 = TEMPLATES / "v1"
V2 = TEMPLATES / "v2"
OLD_VERSION = "1.9.0"
OLD_RUNTIME_BODY = '"""fleece runtime of fleece 1.9.0."""\n\n\ndef log(message: str) -> None:\n    print(message)\n'


@dataclass(frozen=True)
class Run:
    """The exit code and output of one ``fleece`` command."""

    code: int
    stdout: str
    stderr: str


FleeceCli = Callable[..., Run]


def git(root: Path, *args: str) -> str:
    """Run git in ``root``; fail the test if git fails."""
    result = subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def commit_all(root: Path, message: str = "user edits") -> None:
    git(root, "add", "--all")
    git(root, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", message)


def read_tree(root: Path) -> Tree:
    """Every file under ``root`` except git's own."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] != ".git"
    }


@cache
def old_tree(answers: tuple[tuple[str, str], ...]) -> Tree:
    """The files fleece 1.9.0 wrote from v1 with ``answers``."""
    return with_base(_old_render(answers))


def legacy_tree(answers: tuple[tuple[str, str], ...]) -> Tree:
    """The same service, with the pristine render as plain files (fleece 2.0)."""
    tree = _old_render(answers)
    base = {f"{LEGACY_BASE_DIR}/{path}": data for path, data in pristine(tree).items()}
    return {**tree, **base}


@cache
def _old_render(answers: tuple[tuple[str, str], ...]) -> Tree:
    tree = render(load_template(V1), dict(answers))
    tree[RUNTIME_MODULE] = render_generated(OLD_RUNTIME_BODY, OLD_VERSION).encode()
    recorded = tree[ANSWERS_FILE].decode()
    tree[ANSWERS_FILE] = recorded.replace(
        f"_fleece_version: {__version__}", f"_fleece_version: {OLD_VERSION}"
    ).encode()
    assert f"_fleece_version: {OLD_VERSION}\n" in tree[ANSWERS_FILE].decode()
    return tree


def write_service(root: Path, tree: Tree) -> Path:
    """Write ``tree`` into ``root`` and commit it as one git repository."""
    for relative, data in tree.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    git(root, "init", "--quiet")
    commit_all(root, "service from fleece")
    return root


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must be there) by ``new`` in a file."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def append(path: Path, text: str) -> None:
    """Add ``text`` at the end of a file, as a user appending code does."""
    with path.open("a") as handle:
        handle.write(text)


def added_lines(before: bytes | None, after: bytes | None) -> list[str]:
    """The lines ``after`` has that ``before`` did not: what one side wrote."""
    old = (before or b"").decode().splitlines()
    new = (after or b"").decode().splitlines()
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    return [
        line
        for tag, _, _, j1, j2 in matcher.get_opcodes()
        if tag in ("replace", "insert")
        for line in new[j1:j2]
    ]


def user_owned(tree: Tree) -> Tree:
    return {
        path: data
        for path, data in tree.items()
        if not path.startswith(".fleece/") and path not in GENERATOR_OWNED
    }


def recorded_base(root: Path) -> Tree:
    """The pristine render the service records (archive, or fleece 2.0's folder)."""
    archive = root / BASE_ARCHIVE
    if archive.is_file():
        return unpack_base(archive.read_bytes())
    return read_tree(root / LEGACY_BASE_DIR)


def assert_nothing_lost(
    old_base: Tree, ours: Tree, new_base: Tree, after: Tree
) -> None:
    """The update's promise, file by file.

    Every line the user wrote is in the result (as a plain line, or inside a
    conflict block); every line the template added is in the result unless the
    user deleted the file; a file without user changes equals the new render.
    """
    for path in sorted(old_base.keys() | new_base.keys() | user_owned(ours).keys()):
        base, mine, theirs, result = (
            t.get(path) for t in (old_base, ours, new_base, after)
        )
        result_lines = (result or b"").decode().splitlines()
        for line in added_lines(base, mine):
            assert line in result_lines, f"{path}: the user's line {line!r} was lost"
        if mine is None and base is not None:
            assert result is None, f"{path}: the user deleted it, update restored it"
            continue
        for line in added_lines(base, theirs):
            assert line in result_lines, f"{path}: template line {line!r} missing"
        if mine == base and theirs is not None:
            assert (
                result == theirs
            ), f"{path}: unchanged by the user, not the new render"
