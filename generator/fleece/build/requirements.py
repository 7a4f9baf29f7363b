"""What a requirements file makes pip read, and a copy of it all to install from.

pip's rules for paths in a requirements file: ``-r``/``-c`` includes are read
relative to the file that names them; local packages (``../libs/pkg``,
``-e ../shared``, ``file:`` URLs) relative to the folder pip runs in, which
fleece makes the requirements file's; ``--find-links`` folders next to the
file first, then there.

A build never installs from the user's folders directly. ``stage_requirements``
copies the requirements files and every local package into the build's scratch
folder and rewrites the copies to point at each other, with two changes:

- editable requirements (``-e ../shared``, ``-e git+https://...``) become plain
  ones: an editable install leaves in the zip a finder pointing at this
  machine's folder, not the package's code, and fails to import on Lambda;
- pip builds a local package inside its folder (``build/``, ``*.egg-info``):
  it does that in the copy, so the user's folder stays as it was.

The copies live at one absolute path, the same on this machine and inside the
build container (``fleece.build.container`` mounts it there).
"""

import hashlib
import os
import re
import shutil
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fleece.build.contents import collect_files

__all__ = [
    "RequirementInputs",
    "has_requirements",
    "package_files",
    "requirement_inputs",
    "stage_requirements",
]

# Folders never part of a local package: version control, virtual environments
# and tool caches (build leftovers are left out by ``collect_files``).
NOT_PACKAGE = (".git", ".hg", ".svn", ".venv", ".tox", ".nox")
_OPTION = re.compile(
    r"^(--requirement|--constraint|--editable|--find-links|-[rcef])(?:\s*=\s*|\s+|(?=\S))(\S+)(.*)$"
)
_SHORT = {
    "--requirement": "-r",
    "--constraint": "-c",
    "--editable": "-e",
    "--find-links": "-f",
}
_DIRECT_URL = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*\s*(?:\[[^\]]*\])?\s*@\s*)(?P<url>\S+)"
)
_EXTRAS = re.compile(r"\[[^\]]*\]$")


@dataclass(frozen=True)
class _Line:
    """One logical line of a requirements file, as far as paths go."""

    text: str
    option: str | None  # "-r", "-c", "-e", "-f" or None
    value: str  # the option's argument, or the whole requirement
    path: Path | None  # the local file or folder the line names, resolved


@dataclass(frozen=True)
class _File:
    path: Path
    lines: tuple[_Line, ...]


@dataclass(frozen=True)
class RequirementInputs:
    """The files a requirements file makes pip read, resolved.

    ``files``: the requirements file and those it includes (``-r``, ``-c``).
    ``local``: the local packages (folders or files) and ``--find-links``
    folders it names that exist.
    """

    files: tuple[Path, ...]
    local: tuple[Path, ...]
    tree: tuple[_File, ...]

    def digest(self) -> str:
        """A digest of the content of every input (local packages: their files).

        Paths are not part of it: the same packages in another checkout give
        the same digest, and the same installed files.
        """
        digest = hashlib.sha256()
        for path in self.files:
            digest.update(b"requirements\0" + path.read_bytes() + b"\0")
        for path in self.local:
            digest.update(b"local\0")
            for name, file in package_files(path):
                data = file.read_bytes()
                digest.update(f"{name}\0{len(data)}\0".encode() + data)
        return digest.hexdigest()


def has_requirements(path: Path) -> bool:
    """False for a file of comments and blank lines only: nothing to install."""
    return any(True for _ in _logical_lines(path.read_text(encoding="utf-8")))


def requirement_inputs(requirements: Path) -> RequirementInputs:
    """What ``requirements`` makes pip read; see ``RequirementInputs``."""
    folder = requirements.resolve().parent
    tree: list[_File] = []
    pending = [requirements.resolve()]
    while pending:
        path = pending.pop(0)
        if any(f.path == path for f in tree) or not path.is_file():
            continue  # a missing include: pip reports it
        text = path.read_text(encoding="utf-8", errors="replace")
        lines = tuple(_parse(line, path, folder) for line in _logical_lines(text))
        tree.append(_File(path, lines))
        pending += [line.path for line in lines if line.option in ("-r", "-c") and line.path]
    local = {
        line.path.resolve()
        for file in tree
        for line in file.lines
        if line.option not in ("-r", "-c") and line.path and line.path.exists()
    }
    return RequirementInputs(
        tuple(f.path for f in tree), tuple(sorted(local)), tuple(tree)
    )


def package_files(path: Path) -> Iterator[tuple[str, Path]]:
    """The files of a local package (or the file itself), sorted by relative name.

    Left out: version control, virtual environments, caches, bytecode, and
    what pip's build leaves in a package (``*.egg-info``, its ``build/``).
    """
    if path.is_file():
        yield path.name, path
        return
    found = collect_files(path, NOT_PACKAGE, leftovers=True).files
    yield from sorted(found.items())


def stage_requirements(inputs: RequirementInputs, folder: Path) -> Path:
    """Copy the requirements and local packages into ``folder`` (new), rewritten
    as the module docstring says; the copy of the top requirements file."""
    folder = folder.resolve()
    # Each copy keeps its name (pip reads a wheel's or sdist's file name).
    staged: dict[Path, Path] = {}
    for index, package in enumerate(inputs.local):
        copy = folder / "local" / str(index) / package.name
        for name, file in package_files(package):
            target = copy if package.is_file() else copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
        staged[package] = copy
    for index, requirements in enumerate(inputs.tree):
        name = requirements.path.name
        staged[requirements.path] = folder / "requirements" / str(index) / name
    for requirements in inputs.tree:
        text = "".join(_rewrite(line, staged) + "\n" for line in requirements.lines)
        staged[requirements.path].parent.mkdir(parents=True, exist_ok=True)
        staged[requirements.path].write_text(text, encoding="utf-8")
    return staged[inputs.tree[0].path]


# -- reading lines ------------------------------------------------------------


def _logical_lines(text: str) -> Iterator[str]:
    """pip's lines: ``\\`` continues a line, ``#`` after a space starts a comment."""
    for line in re.sub(r"\\\n", "", text).splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            yield line


def _parse(text: str, file: Path, folder: Path) -> _Line:
    """``text`` from ``file``; ``folder`` is where pip runs (local paths)."""
    option = _OPTION.match(text)
    if option is None:
        if text.startswith("-"):
            return _Line(text, None, text, None)  # --index-url and the like
        return _Line(text, None, text, _local_path(text, folder))
    name, value = _SHORT.get(option.group(1), option.group(1)), option.group(2)
    if name in ("-r", "-c", "-f") and "://" in value:
        return _Line(text, name, value, None)  # a URL: nothing local to copy
    if name in ("-r", "-c"):
        return _Line(text, name, value, (file.parent / value).resolve())
    if name == "-f":
        # pip looks for a --find-links path next to the file first.
        beside = file.parent / value
        return _Line(text, name, value, (beside if beside.exists() else folder / value))
    # -e: the rest of the line (markers, options) belongs to the requirement.
    value = value + option.group(3)
    return _Line(text, name, value, _local_path(value, folder))


def _reference(spec: str) -> tuple[int, int] | None:
    """Where in ``spec`` the local path or ``file:`` URL it installs from is."""
    if direct := _DIRECT_URL.match(spec):
        return direct.start("url"), direct.end("url")
    token = re.match(r"\S+", spec)
    if token is None:
        return None
    reference = token.group(0).split(";", 1)[0]
    if reference.startswith("file:"):
        return 0, len(reference)
    if "://" in reference or not (
        reference.startswith((".", "/", "~")) or "/" in reference
    ):
        return None  # a name from the index, or a remote URL
    extras = _EXTRAS.search(reference)
    return 0, len(reference) - (len(extras.group(0)) if extras else 0)


def _local_path(spec: str, folder: Path) -> Path | None:
    span = _reference(spec)
    if span is None:
        return None
    reference = spec[span[0] : span[1]]
    if reference.startswith("file:"):
        from urllib.request import url2pathname  # with ssl and http: only here

        url = urllib.parse.urlsplit(reference)
        if url.scheme != "file":
            return None
        return (folder / url2pathname(url.path)).resolve()
    if "://" in reference:
        return None
    return (folder / os.path.expanduser(reference)).resolve()


# -- rewriting lines for the staged copy --------------------------------------


def _rewrite(line: _Line, staged: dict[Path, Path]) -> str:
    if line.option in ("-r", "-c", "-f"):
        if line.path is None:
            return line.text
        target = staged.get(line.path.resolve(), line.path)
        return f"{line.option} {target}"
    spec = line.value  # an editable requirement loses its -e here
    path = line.path.resolve() if line.path else None
    if path is None or path not in staged:
        return spec
    span = _reference(spec)
    assert span is not None
    start, end = span
    reference = spec[start:end]
    if reference.startswith("file:"):
        fragment = urllib.parse.urlsplit(reference).fragment
        replacement = staged[path].as_uri() + (f"#{fragment}" if fragment else "")
    else:
        replacement = str(staged[path])
    return spec[:start] + replacement + spec[end:]
