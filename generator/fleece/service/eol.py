"""Line endings as git sees them: fleece compares the repository form of a file.

A Windows clone (``core.autocrlf=true``), or a ``.gitattributes`` line such as
``*.yaml eol=crlf``, keeps CRLF line endings in the working tree while the
repository, and fleece's render, hold LF. Comparing bytes there would take
every line for an edit. So ``fleece update`` and ``fleece check`` read each
file in its repository form (what ``git add`` would store), compare, digest and
merge that, and write a file back in the form ``git checkout`` would give it.

The rules follow git's own (``gitattributes(5)``, ``core.autocrlf``,
``core.eol``), read once per run with ``git check-attr`` and ``git config``.
One leniency over git: a file whose every line ends in CRLF is compared
without them even where git would store the CRs (a CRLF file committed with
``core.autocrlf=false``), and written back with CRLF.
"""

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fleece.errors import FleeceError
from fleece.service.git import git

__all__ = [
    "EolSettings",
    "LineEndings",
    "eol_settings",
    "line_endings",
    "to_repository",
    "to_worktree",
]

# How a path's content is converted when git stores it.
ALWAYS = "always"  # text: CRLF becomes LF
AUTO = "auto"  # text=auto (or core.autocrlf): as text unless the content looks binary
UNSET = "unset"  # no attribute, core.autocrlf=false: stored as it is
NEVER = "never"  # -text or binary: never converted


@dataclass(frozen=True)
class LineEndings:
    """git's conversion of one path: when it stores LF, and whether checkout writes CRLF."""

    convert: str = UNSET
    crlf: bool = False


@dataclass(frozen=True)
class EolSettings:
    """The repository's line-ending settings: ``core.autocrlf`` and ``core.eol``."""

    autocrlf: str = "false"  # true, input or false
    # Whether a text file without an eol attribute is checked out with CRLF.
    text_crlf: bool = False


def eol_settings(root: Path) -> EolSettings:
    """The settings git applies in ``root`` (the defaults outside a repository)."""
    autocrlf = _config(root, "core.autocrlf").lower()
    autocrlf = {"yes": "true", "on": "true", "1": "true"}.get(autocrlf, autocrlf)
    if autocrlf not in ("true", "input"):
        autocrlf = "false"
    core_eol = _config(root, "core.eol").lower()
    native_crlf = os.linesep == "\r\n"
    text_crlf = autocrlf == "true" or (
        autocrlf != "input"
        and (core_eol == "crlf" or (core_eol in ("", "native") and native_crlf))
    )
    return EolSettings(autocrlf, text_crlf)


def line_endings(
    root: Path, paths: Iterable[str], settings: EolSettings
) -> dict[str, LineEndings]:
    """The conversion git applies to each of ``paths`` (relative to ``root``).

    Outside a git repository (or without git) every path gets the default:
    stored as it is, with the CRLF leniency above.
    """
    wanted = sorted(set(paths))
    attrs = _attributes(root, wanted) if wanted else None
    if attrs is None:
        return {path: LineEndings() for path in wanted}
    return {
        path: _rule(*attrs.get(path, ("unspecified", "unspecified")), settings)
        for path in wanted
    }


def to_repository(data: bytes, rule: LineEndings) -> bytes:
    """``data`` from the working tree, as git stores it (and fleece compares it)."""
    if rule.convert == NEVER or b"\0" in data or b"\r\n" not in data:
        return data
    if rule.convert == AUTO and _has_lone_cr(data):
        return data  # git takes it for binary
    if rule.convert == UNSET and _style(data) != "crlf":
        return data
    return data.replace(b"\r\n", b"\n")


def to_worktree(data: bytes, rule: LineEndings, current: bytes | None) -> bytes:
    """``data`` (repository form) as it should be written over ``current``.

    A file keeps the line endings it has; a new file (or one with mixed
    endings) gets those ``git checkout`` would give it.
    """
    if rule.convert == NEVER or b"\0" in data or b"\n" not in data:
        return data
    style = _style(current) if current is not None else None
    if style is None:
        wants_crlf = rule.crlf and rule.convert in (ALWAYS, AUTO)
        if rule.convert == AUTO and b"\r" in data:
            wants_crlf = False  # git leaves such a file alone
        style = "crlf" if wants_crlf else "lf"
    if style == "lf":
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# -- git's rules --------------------------------------------------------------


def _rule(text: str, eol: str, settings: EolSettings) -> LineEndings:
    crlf = eol == "crlf" if eol in ("lf", "crlf") else settings.text_crlf
    if text == "unset":
        return LineEndings(NEVER)
    if text == "auto":
        return LineEndings(AUTO, crlf)
    if text == "set" or eol in ("lf", "crlf"):
        return LineEndings(ALWAYS, crlf)
    if settings.autocrlf == "true":
        return LineEndings(AUTO, crlf=True)
    if settings.autocrlf == "input":
        return LineEndings(AUTO, crlf=False)
    return LineEndings(UNSET)


def _attributes(root: Path, paths: list[str]) -> dict[str, tuple[str, str]] | None:
    """``{path: (text, eol)}`` from ``git check-attr``; None outside a repository."""
    try:
        result = git(
            root,
            *("check-attr", "-z", "--stdin", "text", "eol"),
            check=False,
            input="\0".join(paths) + "\0",
        )
    except FleeceError:  # git is not installed
        return None
    if result.returncode != 0:
        return None
    fields = result.stdout.split("\0")
    found: dict[str, dict[str, str]] = {}
    for index in range(0, len(fields) - 2, 3):
        path, name, value = fields[index : index + 3]
        found.setdefault(path, {})[name] = value
    return {
        path: (values.get("text", "unspecified"), values.get("eol", "unspecified"))
        for path, values in found.items()
    }


def _config(root: Path, name: str) -> str:
    try:
        return git(root, "config", "--get", name, check=False).stdout.strip()
    except FleeceError:  # git is not installed
        return ""


# -- content ------------------------------------------------------------------


def _style(data: bytes) -> str | None:
    """``crlf`` or ``lf`` when every line break of ``data`` is one; None otherwise."""
    crlf = data.count(b"\r\n")
    lf = data.count(b"\n") - crlf
    if crlf and not lf and not _has_lone_cr(data):
        return "crlf"
    if lf and not crlf:
        return "lf"
    return None


def _has_lone_cr(data: bytes) -> bool:
    return data.count(b"\r") != data.count(b"\r\n")
