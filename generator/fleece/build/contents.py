"""What a folder contributes to the zip: its files, minus excludes and leftovers.

Exclude globs match like ``.gitignore`` lines: a glob without ``/`` matches the
name of a file or folder at any depth (``*.md``, ``tests``); a glob with ``/``
matches the path from the zip root (``boto3/*``, ``*/tests/*``). Excluding a
folder excludes everything in it.

Bytecode (``__pycache__``, ``*.pyc``) is never taken from a folder: fleece
compiles the zip's modules itself, with the runtime's Python
(``fleece.build.bytecode``). The service's source also leaves out what tools
leave behind: ``*.egg-info`` (``pip install -e .``), the
``build/`` folder of a Python project (a folder holding ``pyproject.toml``,
``setup.py`` or ``setup.cfg``), and the caches of pytest, mypy and ruff.

Symbolic links are followed: the zip holds what they point to, as plain files.
A link to nothing (an editor's ``.#handler.py`` lock, a moved target) is
skipped with a warning; a link to one of its own parent folders would make the
zip endless and is refused.
"""

import errno
import fnmatch
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fleece.errors import BadInput

__all__ = ["Contents", "collect_files", "is_excluded"]

_BYTECODE = ("__pycache__", "*.pyc", "*.pyo")
_LEFTOVER_FOLDERS = {".pytest_cache", ".mypy_cache", ".ruff_cache"}
_PROJECT_FILES = {"pyproject.toml", "setup.py", "setup.cfg"}


@dataclass
class Contents:
    """The files of a folder for the zip, and what was skipped on the way."""

    files: dict[str, Path] = field(default_factory=dict)  # zip path -> file
    warnings: list[str] = field(default_factory=list)


def is_excluded(path: str, globs: Iterable[str]) -> bool:
    """True when ``path`` (relative, with ``/``) or one of its folders matches a glob."""
    parts = PurePosixPath(path).parts
    for glob in globs:
        glob = glob.strip("/")
        if "/" in glob:
            prefixes = ("/".join(parts[: i + 1]) for i in range(len(parts)))
            if any(fnmatch.fnmatchcase(prefix, glob) for prefix in prefixes):
                return True
        elif any(fnmatch.fnmatchcase(part, glob) for part in parts):
            return True
    return False


def _is_leftover(folder: str, in_project: bool) -> bool:
    """True for a folder a build or a tool left in a source tree.

    ``in_project``: the folder holding it is a Python project's root.
    """
    return (
        folder in _LEFTOVER_FOLDERS
        or folder.endswith(".egg-info")
        or (folder == "build" and in_project)
    )


def collect_files(
    root: Path, excludes: Iterable[str], *, leftovers: bool, label: str | None = None
) -> Contents:
    """Every regular file under ``root`` not excluded, keyed by its path in the zip.

    ``leftovers``: also leave out what tools leave behind (see the module
    docstring), for the service's own source. ``label`` names ``root`` in warnings and errors (default: its path).
    """
    globs = [*_BYTECODE, *excludes]
    contents = Contents()
    shown = label if label is not None else str(root)
    top = os.stat(root)
    # (folder, its zip prefix, the (device, inode) of it and its parents)
    pending = [(root, "", frozenset({(top.st_dev, top.st_ino)}))]
    while pending:
        folder, prefix, parents = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            raise BadInput(f"{folder}: cannot read it ({error.strerror})") from None
        in_project = any(entry.name in _PROJECT_FILES for entry in entries)
        for entry in entries:
            name = prefix + entry.name
            if is_excluded(name, globs):
                continue
            where = f"{shown}/{name}"
            try:
                info = os.stat(entry.path)  # through links
            except OSError as error:
                if error.errno == errno.ELOOP:
                    raise BadInput(
                        f"{where}: a symbolic link that loops: remove it, or "
                        "leave it out with --exclude"
                    ) from None
                if error.errno == errno.ENOENT and entry.is_symlink():
                    contents.warnings.append(
                        f"skipped {where}: a symbolic link to nothing "
                        f"({os.readlink(entry.path)})"
                    )
                    continue
                raise BadInput(f"{where}: cannot read it ({error.strerror})") from None
            if stat.S_ISDIR(info.st_mode):
                if leftovers and _is_leftover(entry.name, in_project):
                    continue
                identity = (info.st_dev, info.st_ino)
                if identity in parents:
                    raise BadInput(
                        f"{where}: a symbolic link to one of its own parent "
                        "folders, which would make the zip endless: remove it, "
                        "or leave it out with --exclude"
                    )
                pending.append((Path(entry.path), name + "/", parents | {identity}))
            elif stat.S_ISREG(info.st_mode):
                contents.files[name] = Path(entry.path)
            else:
                contents.warnings.append(
                    f"skipped {where}: not a regular file (a socket, pipe or device)"
                )
    return contents
