"""A service's files as ``fleece update`` and ``fleece check`` see them.

Paths are the template's (``src/demo/handler.py``), relative to the service
root. This module answers, for each path, two questions before anything is
written:

- what is there: the content in its repository form (line endings as git
  stores them, see ``fleece.service.eol``), or nothing;
- where a write would land: a symlink is followed only while it stays inside
  the service, and is kept as a link (the update goes to its target); a write
  that would land outside the service, on a folder, or through a file is
  refused before the first write, not discovered half-way.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from fleece.service.eol import (
    EolSettings,
    LineEndings,
    eol_settings,
    line_endings,
    to_repository,
    to_worktree,
)

__all__ = ["Location", "Worktree"]


@dataclass(frozen=True)
class Location:
    """Where the content of one template path lives in the service."""

    path: str
    real: Path
    # The first symlink on the way (the path itself or a folder above it).
    link: str | None = None
    outside: bool = False
    # Why nothing can be read or written there (a folder in the way, ...).
    problem: str | None = None


class Worktree:
    """The files of the service at ``root``; every read is cached for one run."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._locations: dict[str, Location] = {}
        self._raw: dict[Path, bytes | None] = {}
        self._rules: dict[str, LineEndings] = {}
        self._eol: EolSettings | None = None

    def locate(self, path: str) -> Location:
        """Where ``path`` lives; see the module docstring."""
        if path not in self._locations:
            self._locations[path] = self._locate(path)
        return self._locations[path]

    def relative(self, location: Location) -> str:
        """The real place of ``location``, relative to the root (posix)."""
        return location.real.relative_to(self.root).as_posix()

    def raw(self, path: str) -> bytes | None:
        """The bytes of ``path`` as they are on disk; None if absent or unreadable."""
        location = self.locate(path)
        if location.problem is not None or location.outside:
            return None
        if location.real not in self._raw:
            self._raw[location.real] = _read(location.real)
        return self._raw[location.real]

    def read(self, path: str) -> bytes | None:
        """The content of ``path`` in its repository form; None if absent."""
        data = self.raw(path)
        if data is None:
            return None
        return to_repository(data, self.rule(path))

    def worktree_form(self, path: str, data: bytes) -> bytes:
        """``data`` (repository form) as it should be written at ``path``."""
        return to_worktree(data, self.rule(path), self.raw(path))

    def rule(self, path: str) -> LineEndings:
        """git's line-ending conversion for the real place of ``path``."""
        location = self.locate(path)
        if location.outside or location.problem is not None:
            return LineEndings()
        real = self.relative(location)
        if real not in self._rules:
            self._rules.update(line_endings(self.root, [real], self._settings()))
        return self._rules[real]

    def prepare(self, paths: Iterable[str]) -> None:
        """Ask git about the line endings of all ``paths`` in one call."""
        inside = [
            self.relative(location)
            for location in map(self.locate, paths)
            if not location.outside and location.problem is None
        ]
        wanted = [path for path in inside if path not in self._rules]
        self._rules.update(line_endings(self.root, wanted, self._settings()))

    def _settings(self) -> EolSettings:
        if self._eol is None:
            self._eol = eol_settings(self.root)
        return self._eol

    def _locate(self, path: str) -> Location:
        parts = PurePosixPath(path).parts
        current = self.root
        link: str | None = None
        for index, part in enumerate(parts):
            here = "/".join(parts[: index + 1])
            candidate = current / part
            if candidate.is_symlink():
                link = link or here
                try:
                    current = candidate.resolve()
                except (OSError, RuntimeError):
                    return Location(
                        path, candidate, link, problem=f"{here} is a symlink loop"
                    )
                if not current.is_relative_to(self.root):
                    return Location(path, current, link, outside=True)
            else:
                current = candidate
            last = index == len(parts) - 1
            if not last and current.exists() and not current.is_dir():
                return Location(
                    path,
                    current,
                    link,
                    problem=f"{here} is a file where the template has a folder "
                    "(move it, then run fleece update again)",
                )
        problem = None
        if current.is_dir():
            problem = (
                "a folder is where the template has this file "
                "(move it, then run fleece update again)"
            )
        elif current.exists() and not current.is_file():
            problem = "not a regular file: update cannot merge into it"
        elif current.is_file():
            try:
                with current.open("rb"):
                    pass
            except OSError as error:
                problem = (
                    f"cannot be read ({error.strerror}): update needs to merge into it"
                )
        return Location(path, current, link, problem=problem)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
