"""``fleece check``: tell CI whether a service's generated files are current.

Read-only and offline. Findings, each with what to do about it:

- ``answers-missing``: ``.fleece/answers.yml`` is gone (update needs it);
- ``base-missing``: ``.fleece/base/`` is gone (update merges against it);
- ``runtime-missing``, ``runtime-edited``, ``runtime-stale``: ``src/fleece_runtime.py``
  is absent, edited by hand, or not what the installed fleece writes;
- ``fleece-outdated``: the runtime comes from a newer fleece than the one
  installed, which cannot vouch for it;
- ``config-missing``, ``config-edited``, ``config-stale``: a config module listed
  in ``.fleece/settings.yml`` is absent, edited by hand, or rendered from
  another ``config.yml`` than the service's;
- ``conflict``: conflict markers left by ``fleece update``.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleece import __version__
from fleece.errors import BadInput
from fleece.service.generated import parse_generated
from fleece.service.layout import (
    ANSWERS_FILE,
    BASE_DIR,
    RUNTIME_MODULE,
    load_answers,
    load_settings,
)
from fleece.service.merge import first_conflict_line
from fleece.service.render import load_template, runtime_module_text

__all__ = ["CONFIG_FILE", "CheckResult", "Finding", "check_service"]

CONFIG_FILE = "config.yml"


@dataclass(frozen=True)
class Finding:
    """One thing ``fleece check`` found out of date, relative to the service root."""

    path: str
    kind: str
    message: str

    def line(self) -> str:
        """``<path>: <what> (<what to do>)``."""
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class CheckResult:
    """All findings for one service; ``ok`` when there are none."""

    path: Path
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when every generated file is current."""
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        """``{"ok": bool, "findings": [{"path", "kind", "message"}]}``."""
        return {
            "ok": self.ok,
            "findings": [
                {"path": f.path, "kind": f.kind, "message": f.message}
                for f in self.findings
            ],
        }


def check_service(path: Path) -> CheckResult:
    """Inspect the service at ``path``; see the module docstring."""
    root = path.absolute()
    if not root.is_dir():
        raise BadInput(f"{root} is not a directory")
    findings = [
        *_check_fleece_dir(root),
        *_check_runtime(root),
        *_check_config_modules(root),
        *conflict_findings(root),
        *_check_answers(root),
    ]
    return CheckResult(root, tuple(findings))


def _check_fleece_dir(root: Path) -> list[Finding]:
    findings = []
    if not (root / ANSWERS_FILE).is_file():
        findings.append(
            Finding(
                ANSWERS_FILE,
                "answers-missing",
                "the answers file is missing (restore it from git history: "
                "fleece update renders the service from it)",
            )
        )
    if not (root / BASE_DIR).is_dir():
        findings.append(
            Finding(
                f"{BASE_DIR}/",
                "base-missing",
                "the pristine render is missing (restore it from git history: "
                "fleece update merges against it)",
            )
        )
    return findings


def _check_runtime(root: Path) -> list[Finding]:
    path = root / RUNTIME_MODULE
    if not path.is_file():
        return [
            Finding(RUNTIME_MODULE, "runtime-missing", "missing (run `fleece update`)")
        ]
    text = path.read_bytes().decode("utf-8", "replace")
    installed = runtime_module_text()
    if text == installed:
        return []
    found = parse_generated(text)
    if found is None or found.edited:
        return [
            Finding(
                RUNTIME_MODULE,
                "runtime-edited",
                "edited by hand: its body no longer matches the sha256 in its header "
                "(move your changes out of it, then run `fleece update --force`)",
            )
        ]
    newer = _newer(found.version, __version__)
    if newer is True:
        return [
            Finding(
                RUNTIME_MODULE,
                "fleece-outdated",
                f"written by fleece {found.version}, newer than the installed fleece "
                f"{__version__} (install fleece>={found.version} where you run `fleece check`)",
            )
        ]
    what = (
        f"written by fleece {found.version}, older than the installed fleece {__version__}"
        if newer is False
        else f"differs from the runtime of the installed fleece {__version__}"
    )
    return [Finding(RUNTIME_MODULE, "runtime-stale", f"{what} (run `fleece update`)")]


def _newer(version: str, than: str) -> bool | None:
    """True if ``version`` is newer, False if older, None if equal or unparsable."""
    from packaging.version import InvalidVersion, Version

    try:
        mine, other = Version(version), Version(than)
    except InvalidVersion:
        return None
    return None if mine == other else mine > other


def _check_config_modules(root: Path) -> list[Finding]:
    findings = []
    config = root / CONFIG_FILE
    config_digest = (
        hashlib.sha256(config.read_bytes()).hexdigest() if config.is_file() else None
    )
    for module in load_settings(root).config_modules:
        render = (
            f"re-render it: `fleece config render {module.stage} --python "
            f"--output {module.path}`"
        )
        path = root / module.path
        if not path.is_file():
            findings.append(
                Finding(
                    module.path,
                    "config-missing",
                    f"listed in .fleece/settings.yml but missing ({render})",
                )
            )
            continue
        found = parse_generated(path.read_bytes().decode("utf-8", "replace"))
        if found is None or found.edited:
            findings.append(
                Finding(
                    module.path,
                    "config-edited",
                    "edited by hand: its body no longer matches the sha256 in its "
                    f"header ({render})",
                )
            )
        elif found.fields.get("config-sha256") != config_digest:
            what = (
                f"{CONFIG_FILE} is missing"
                if config_digest is None
                else f"rendered from another {CONFIG_FILE} than the current one"
            )
            findings.append(Finding(module.path, "config-stale", f"{what} ({render})"))
    return findings


def _check_answers(root: Path) -> list[Finding]:
    """Answers the bundled template no longer offers (a runtime Lambda retired)."""
    try:
        answers = load_answers(root)
        template = load_template(str(answers.get("_fleece_template", "service")))
    except BadInput:
        return []  # no answers file (reported above), or not a bundled template
    findings = []
    for key, value in answers.items():
        question = template.questions.get(str(key))
        if question is not None and str(value) in question.retired:
            findings.append(
                Finding(
                    ANSWERS_FILE,
                    "answer-retired",
                    f"{key}={value}: {question.retired[str(value)]} "
                    f"(run `fleece update --data {key}=...`)",
                )
            )
    return findings


def conflict_findings(root: Path) -> list[Finding]:
    """Conflict markers left in the service's files by an earlier update."""
    # fleece update writes conflict markers only into the files it renders,
    # which are exactly the ones its pristine copy lists.
    base = root / BASE_DIR
    if not base.is_dir():
        return []
    findings = []
    for pristine in sorted(base.rglob("*")):
        relative = pristine.relative_to(base).as_posix()
        path = root / relative
        if not pristine.is_file() or not path.is_file():
            continue
        line = first_conflict_line(path.read_bytes())
        if line is not None:
            findings.append(
                Finding(
                    relative,
                    "conflict",
                    f"conflict markers from `fleece update` at line {line} "
                    "(resolve them, then commit)",
                )
            )
    return findings
