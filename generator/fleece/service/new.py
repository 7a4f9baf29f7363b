"""``fleece new``: render a service from a bundled template into a new folder.

All or nothing: the service is rendered in memory, written into a temp folder
beside the destination, committed there, and only then renamed into place. Any
error before the rename leaves no directory behind.
"""

import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleece.errors import BadInput, FleeceError
from fleece.files import atomic_write
from fleece.service.base import with_base
from fleece.service.git import git
from fleece.service.render import Tree, answers_of, load_template, parse_data, render

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class NewService:
    """Every setting of one ``fleece new`` run."""

    name: str
    destination: Path | None = None
    template: str = "service"
    data: tuple[str, ...] = ()
    defaults: bool = False
    git: bool = True
    force: bool = False


@dataclass(frozen=True)
class CreatedService:
    """What ``fleece new`` made."""

    path: Path
    answers: dict[str, Any]
    files: int
    overwritten: tuple[str, ...] = ()
    enclosing_repository: Path | None = None


def create_service(request: NewService) -> CreatedService:
    """Validate, render and write a new service; see the module docstring."""
    if not _NAME.fullmatch(request.name):
        raise BadInput(
            f"invalid service name {request.name!r}: use letters, digits, - and _, "
            "starting with a letter (64 characters at most)"
        )
    # abspath: `../svc` is reported as the folder it names, symlinks left alone.
    destination = Path(os.path.abspath(request.destination or request.name))
    _check_destination(destination, request.force)
    template = load_template(request.template)
    answers = parse_data(template, list(request.data))
    if answers.setdefault("project_name", request.name) != request.name:
        raise BadInput(
            "--data project_name conflicts with the NAME argument; give the name once"
        )
    interactive = not request.defaults
    if interactive and not sys.stdin.isatty():
        raise BadInput(
            "standard input is not a terminal: pass --defaults (and --data KEY=VALUE) to answer without prompts"
        )
    tree = with_base(render(template, answers, interactive=interactive))
    # A service inside another repository (a monorepo) belongs to that one:
    # no nested repository, and its files are left for the user to commit.
    enclosing = _enclosing_repository(destination.parent) if request.git else None
    git = request.git and enclosing is None
    overwritten = tuple(sorted(p for p in tree if (destination / p).exists()))
    if destination.exists():
        _write_into(destination, tree)
        if git:
            _commit(destination, sorted(tree))
    else:
        _write_new(destination, tree, git)
    return CreatedService(
        path=destination,
        answers=answers_of(tree),
        files=len(tree),
        overwritten=overwritten,
        enclosing_repository=enclosing,
    )


def _check_destination(destination: Path, force: bool) -> None:
    if destination.exists() and not destination.is_dir():
        raise BadInput(f"{destination} exists and is not a directory")
    if destination.is_dir() and any(destination.iterdir()) and not force:
        raise BadInput(
            f"{destination} is not empty: choose another DEST, or pass --force to render into it"
        )
    if not destination.parent.is_dir():
        raise BadInput(f"{destination.parent} does not exist")


def _write_new(destination: Path, tree: Tree, git: bool) -> None:
    staging = Path(
        tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent)
    )
    try:
        _write_into(staging, tree)
        if git:
            _commit(staging, sorted(tree))
        staging.chmod(0o755)
        os.rename(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_into(root: Path, tree: Tree) -> None:
    for relative, data in tree.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)


def _enclosing_repository(folder: Path) -> Path | None:
    if shutil.which("git") is None:
        return None
    result = git(folder, "rev-parse", "--show-toplevel", check=False)
    return Path(result.stdout.strip()) if result.returncode == 0 else None


def _commit(root: Path, paths: list[str]) -> None:
    if shutil.which("git") is None:
        raise FleeceError("git is not installed: install it, or pass --no-git")
    identity = []
    if not git(root, "config", "user.email", check=False).stdout.strip():
        identity = ["-c", "user.name=fleece", "-c", "user.email=fleece@localhost"]
    if not (root / ".git").exists():
        git(root, "init", "--quiet")
    # Only the rendered files: --force may render into a folder holding others.
    git(root, "add", "--", *paths)
    git(
        root,
        *identity,
        "commit",
        "--quiet",
        "--no-verify",
        "-m",
        "New service from fleece",
        "--only",
        "--",
        *paths,
    )
