"""The pristine base: what fleece rendered last time, the ancestor of update's merge.

It lives in the service as one compressed archive, ``.fleece/base.tar.bz2``:
the files of the last render (those update merges), byte for byte. Being
compressed, no editor, search-and-replace or formatter reaches into it, so a
rename across the project cannot also rename it and turn the user's edit into
"what fleece rendered" (docs/update.md weighs this against the alternatives).
The archive is deterministic (sorted entries, fixed times and modes), so two
branches that update to the same render hold the same bytes. It is compressed
with bzip2, not gzip: zlib's output differs between zlib and zlib-ng (Fedora's
system zlib, CPython 3.14's Windows and macOS builds), while libbzip2 has
written the same bytes for decades, so two machines agree.

Services made by fleece 2.0 keep the base as plain files in ``.fleece/base/``.
Update reads them once and replaces them with the archive. Plain files can have
been edited by accident, so they are accepted only if git shows them unchanged
since the last commit that wrote ``.fleece/answers.yml`` (the last ``fleece new``
or ``fleece update``).
"""

import bz2
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fleece.service.git import git
from fleece.service.layout import (
    ANSWERS_FILE,
    BASE_ARCHIVE,
    FLEECE_DIR,
    GENERATOR_OWNED,
    LEGACY_BASE_DIR,
)
from fleece.service.render import Tree
from fleece.service.worktree import Worktree

__all__ = [
    "Base",
    "BaseProblem",
    "legacy_paths",
    "pack_base",
    "pristine",
    "read_base",
    "unpack_base",
    "with_base",
]


@dataclass(frozen=True)
class Base:
    """The pristine render update merges against, and where it was read from."""

    tree: Tree
    # Read from the plain files of .fleece/base/ (made by fleece 2.0).
    legacy: bool = False


class BaseProblem(Exception):
    """The base cannot be used: ``kind`` is the finding of ``fleece check``."""

    def __init__(self, kind: str, path: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.path = path
        self.message = message


# A rendered service is kilobytes; a base past this is not fleece's, and is
# refused before it is read into memory (a bzip2 bomb in a pull request).
MAX_BASE_BYTES = 64 * 1024 * 1024


def pristine(tree: Tree) -> Tree:
    """The files of a render that update merges: all but fleece's own."""
    return {
        path: data
        for path, data in tree.items()
        if path not in GENERATOR_OWNED and not path.startswith(f"{FLEECE_DIR}/")
    }


def with_base(tree: Tree) -> Tree:
    """A render plus its own pristine base, as ``fleece new`` writes it."""
    return {**tree, BASE_ARCHIVE: pack_base(pristine(tree))}


def pack_base(tree: Tree) -> bytes:
    """The archive of ``tree``: the same bytes for the same files, on any machine."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(tree):
            info = tarfile.TarInfo(path)
            info.size = len(tree[path])
            info.mode = 0o644
            info.mtime = 0
            tar.addfile(info, io.BytesIO(tree[path]))
    return bz2.compress(buffer.getvalue(), compresslevel=9)


def unpack_base(data: bytes) -> Tree:
    """The files in an archive made by ``pack_base``; ValueError if it is damaged."""
    tree: Tree = {}
    unpacked = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:bz2") as tar:
            for member in tar:
                name = PurePosixPath(member.name)
                if not member.isfile() or name.is_absolute() or ".." in name.parts:
                    raise ValueError(f"unexpected entry {member.name!r}")
                unpacked += member.size + 512  # and its header
                if unpacked > MAX_BASE_BYTES:
                    raise ValueError(f"larger than {MAX_BASE_BYTES} bytes unpacked")
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file
                tree[name.as_posix()] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise ValueError(str(error) or type(error).__name__) from None
    return tree


def read_base(worktree: Worktree) -> Base:
    """The service's pristine base; BaseProblem when it is missing or not pristine."""
    archive = worktree.raw(BASE_ARCHIVE)
    if archive is not None:
        try:
            return Base(unpack_base(archive))
        except ValueError as error:
            raise BaseProblem(
                "base-edited",
                BASE_ARCHIVE,
                f"the pristine render is damaged ({error}): restore it from git "
                f"history (git checkout <commit> -- {BASE_ARCHIVE})",
            ) from None
    legacy = worktree.root / LEGACY_BASE_DIR
    if not legacy.is_dir() or legacy.is_symlink():
        raise BaseProblem(
            "base-missing",
            BASE_ARCHIVE,
            "the pristine render update merges against is missing: restore it from "
            f"git history (git checkout <commit> -- {BASE_ARCHIVE})",
        )
    _require_unchanged_since_last_update(worktree.root)
    return Base(_read_legacy(worktree, legacy), legacy=True)


def legacy_paths(worktree: Worktree) -> list[str]:
    """Every file of ``.fleece/base/`` (relative to the service root), if any."""
    legacy = worktree.root / LEGACY_BASE_DIR
    if not legacy.is_dir() or legacy.is_symlink():
        return []
    found = []
    for folder, _, names in os.walk(legacy):
        for name in names:
            found.append((Path(folder) / name).relative_to(worktree.root).as_posix())
    return sorted(found)


def _read_legacy(worktree: Worktree, legacy: Path) -> Tree:
    prefix = f"{LEGACY_BASE_DIR}/"
    worktree.prepare(legacy_paths(worktree))
    tree: Tree = {}
    for path in legacy_paths(worktree):
        data = worktree.read(path)
        if data is not None:
            tree[path[len(prefix) :]] = data
    return tree


def _require_unchanged_since_last_update(root: Path) -> None:
    """Refuse plain base files that changed after the last render wrote them."""
    last = git(root, "log", "-1", "--format=%h", "--", ANSWERS_FILE, check=False)
    commit = last.stdout.strip()
    if last.returncode != 0 or not commit:
        return  # not in git, or never committed: nothing to compare with
    changed = git(
        root, "diff", "--quiet", commit, "--", LEGACY_BASE_DIR, check=False
    ).returncode
    if changed == 1:
        raise BaseProblem(
            "base-edited",
            f"{LEGACY_BASE_DIR}/",
            f"the pristine render in {LEGACY_BASE_DIR}/ changed after the last "
            f"update (commit {commit}), e.g. by a search-and-replace: merging "
            "against it would undo those changes in your files; restore it with "
            f"`git checkout {commit} -- {LEGACY_BASE_DIR}` and commit, then "
            "run fleece update again",
        )
