"""The names a service cannot take for its project or its package.

A service's package sits at the top of ``src/``, beside ``fleece_runtime.py``,
and at the root of the function's zip, beside its dependencies: named like a
module that the service imports (the standard library, a dependency, one of
its own files), one of the two would shadow the other. Its project name is a
distribution's name: named like one the service installs, pip could not
install both. The template lists what its services install
(``_fleece_installs`` in its copier.yml); the standard library and the
service's own files are known here.
"""

import keyword
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from packaging.utils import canonicalize_name

from fleece.errors import BadInput

__all__ = ["Installed", "NameProblem", "name_problem", "parse_installs"]

# Top-level modules of the Python versions Lambda runs that are newer than the
# oldest Python fleece runs on (sys.stdlib_module_names knows its own only).
_NEWER_STDLIB = frozenset({"annotationlib", "compression"})
_PACKAGE_HINT = "pass --data package_name=NAME with another name"
_PROJECT_HINT = "choose another project name"


@dataclass(frozen=True)
class Installed:
    """A requirement of the service, and the distributions it brings with it."""

    requirement: str
    # What uses it, as a user reads it: "the service's checks".
    used_by: str
    # Distribution name -> the top-level modules it provides.
    distributions: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class NameProblem:
    """Why the answer to ``question`` cannot be ``value``."""

    question: str
    value: str
    reason: str

    @property
    def message(self) -> str:
        """The one line that ``fleece new`` gives."""
        if self.question == "package_name":
            return f"package name {self.value!r} {self.reason}: {_PACKAGE_HINT}"
        return f"project name {self.value!r} {self.reason}: {_PROJECT_HINT}"


def parse_installs(raw: Any, source: str) -> tuple[Installed, ...]:
    """The ``_fleece_installs`` of a template's copier.yml (``source``); () if absent."""
    if raw is None:
        return ()
    problem = f"{source}: _fleece_installs must map each requirement to its "
    problem += "'used_by' and the 'brings' map of distribution: [modules]"
    if not isinstance(raw, dict):
        raise BadInput(problem)
    installs = []
    for requirement, spec in raw.items():
        brings = spec.get("brings") if isinstance(spec, dict) else None
        if not isinstance(brings, dict) or not all(
            isinstance(modules, list) for modules in brings.values()
        ):
            raise BadInput(problem)
        installs.append(
            Installed(
                requirement=str(requirement),
                used_by=str(spec.get("used_by", "")),
                distributions={
                    str(name): tuple(str(m) for m in modules)
                    for name, modules in brings.items()
                },
            )
        )
    return tuple(installs)


def name_problem(
    answers: Mapping[str, Any],
    files: Collection[str],
    installs: tuple[Installed, ...],
) -> NameProblem | None:
    """The first reason a render cannot keep its names, or None.

    ``answers`` and ``files`` (its paths) are the render's. The project name
    is checked first, then the package name (which defaults to the project's).
    """
    project = str(answers.get("project_name") or "")
    if project:
        reason = _project_clash(project, installs)
        if reason is not None:
            return NameProblem("project_name", project, reason)
    package = str(answers.get("package_name") or "")
    if package:
        reason = _package_clash(package, files, installs)
        if reason is not None:
            return NameProblem("package_name", package, reason)
    return None


def _project_clash(project: str, installs: tuple[Installed, ...]) -> str | None:
    wanted = canonicalize_name(project)
    for installed in installs:
        for distribution in installed.distributions:
            if canonicalize_name(distribution) == wanted:
                return (
                    f"is taken by the distribution {distribution}"
                    f"{_used(installed, distribution)}, and pip cannot install both"
                )
    return None


def _package_clash(
    package: str, files: Collection[str], installs: tuple[Installed, ...]
) -> str | None:
    if keyword.iskeyword(package) or keyword.issoftkeyword(package):
        return "is a Python keyword"
    if package in sys.stdlib_module_names or package in _NEWER_STDLIB:
        return "would shadow the standard library module"
    own = _own_modules(files, package)
    if package in own:
        return f"would shadow {own[package]}"
    for installed in installs:
        for distribution, modules in installed.distributions.items():
            if package in modules:
                return f"would shadow the module {package}" + _used(
                    installed, distribution
                )
    return None


def _used(installed: Installed, distribution: str) -> str:
    """The end of a reason: ', which connexion needs (used by the openapi style's handler)'."""
    if canonicalize_name(distribution) == canonicalize_name(installed.requirement):
        return f", used by {installed.used_by}" if installed.used_by else ""
    needs = f", which {installed.requirement} needs"
    return f"{needs} (used by {installed.used_by})" if installed.used_by else needs


def _own_modules(files: Collection[str], package: str) -> dict[str, str]:
    """The top-level modules of the service's own files, other than its package.

    Those of ``src/`` (the runtime, the config module) and of ``tests/``, whose
    modules pytest imports by their bare names (``conftest``, ``test_handler``).
    """
    own = {"tests": "the service's tests/ folder"}
    for name in files:
        path = PurePosixPath(name)
        if len(path.parts) < 2 or path.parts[0] not in ("src", "tests"):
            continue
        top = path.parts[1]
        if len(path.parts) == 2:
            if not top.endswith(".py"):
                continue
            module = top.removesuffix(".py")
        elif path.parts[0] == "src" and top == package:
            continue  # the package itself
        else:
            module = top
        if module.isidentifier():
            own.setdefault(module, "/".join(path.parts[:2]))
    return own
