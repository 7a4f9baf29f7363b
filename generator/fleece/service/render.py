"""Rendering a service template into files: the one place rendering happens.

A render is a pure function of (template, answers, fleece version) and gives an
in-memory tree, ``{relative path: bytes}``. ``fleece new`` writes the tree;
``fleece update`` merges trees. Rendering goes through copier into a private
temp directory, then:

- every ``.py`` file is formatted with black for the service's Python version,
  so any answer (a long description, an odd name) still gives black-clean code;
- the generator-owned ``src/fleece_runtime.py`` is added, with its header.
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from fleece import __version__
from fleece.errors import BadInput, FleeceError
from fleece.resources import runtime_stub_dir, templates_dir
from fleece.service.generated import render_generated
from fleece.service.interrupts import scratch_dir
from fleece.service.layout import (
    ANSWERS_FILE,
    CONFIG_MODULE,
    FLEECE_DIR,
    RUNTIME_MODULE,
)
from fleece.service.names import Installed, name_problem, parse_installs

if TYPE_CHECKING:
    import black

Tree = dict[str, bytes]

# Questions fleece answers itself; a user never sets them.
_INTERNAL_QUESTIONS = frozenset({"fleece_version", "fleece_template"})
# copier.yml key of a template folder's own version; the answers record it, and
# `fleece update` refuses to replace a render by an older version of the template.
TEMPLATE_VERSION_KEY = "_fleece_template_version"


class InvalidAnswer(BadInput):
    """An answer the template does not accept; says where the answer came from."""

    def __init__(
        self,
        question: str,
        value: Any,
        reason: str,
        source: str,
        message: str | None = None,
    ) -> None:
        shown = str(value) if str(value).isprintable() else repr(str(value))
        super().__init__(message or f"{source} {question}={shown}: {reason}")
        self.question = question
        self.value = value
        self.shown = shown
        self.reason = reason


@dataclass(frozen=True)
class Question:
    """One question of a template's copier.yml, as far as validating --data goes."""

    name: str
    type: str = "str"
    choices: tuple[Any, ...] = ()
    help: str = ""
    # Answers no longer offered -> why (copier.yml's `_fleece_retired_answers`).
    retired: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Template:
    """A copier template bundled with fleece (or, in tests, any folder)."""

    name: str
    path: Path
    questions: dict[str, Question] = field(default_factory=dict)
    # The template folder's own version (copier.yml's _fleece_template_version).
    version: str | None = None
    # What its services install (copier.yml's _fleece_installs): names they cannot take.
    installs: tuple[Installed, ...] = ()


def available_templates() -> list[str]:
    """The names of the bundled templates."""
    return sorted(
        p.name for p in templates_dir().iterdir() if (p / "copier.yml").is_file()
    )


def load_template(name_or_path: str | Path) -> Template:
    """A bundled template by name, or a template folder by path."""
    path = Path(name_or_path)
    if not (path / "copier.yml").is_file():
        path = templates_dir() / str(name_or_path)
        if "/" in str(name_or_path) or not (path / "copier.yml").is_file():
            known = ", ".join(available_templates())
            raise BadInput(f"unknown template {str(name_or_path)!r} (bundled: {known})")
    raw = yaml.safe_load((path / "copier.yml").read_text(encoding="utf-8")) or {}
    retired = raw.get("_fleece_retired_answers") or {}
    questions = {
        key: Question(
            name=key,
            type=str(spec.get("type", "str")) if isinstance(spec, dict) else "str",
            choices=tuple(spec.get("choices") or ()) if isinstance(spec, dict) else (),
            help=str(spec.get("help", "")) if isinstance(spec, dict) else "",
            retired={str(k): str(v) for k, v in (retired.get(key) or {}).items()},
        )
        for key, spec in raw.items()
        if not key.startswith("_") and key not in _INTERNAL_QUESTIONS
    }
    version = raw.get(TEMPLATE_VERSION_KEY)
    return Template(
        name=path.name,
        path=path,
        questions=questions,
        version=None if version is None else str(version),
        installs=parse_installs(raw.get("_fleece_installs"), str(path / "copier.yml")),
    )


def parse_data(template: Template, pairs: list[str]) -> dict[str, Any]:
    """Turn ``KEY=VALUE`` strings into typed answers, checked against the questions."""
    answers: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise BadInput(f"--data {pair!r}: expected KEY=VALUE")
        question = template.questions.get(key)
        if question is None:
            known = ", ".join(template.questions)
            raise BadInput(
                f"--data {key}: unknown question (the {template.name} template asks: {known})"
            )
        value = _typed(question, text)
        reason = answer_problem(question, value)
        if reason is not None:
            raise InvalidAnswer(key, text, reason, "--data")
        answers[key] = value
    return answers


def answer_problem(question: Question, value: Any) -> str | None:
    """Why ``value`` is no answer to ``question`` (its type, choices, retirement)."""
    if str(value) in question.retired:
        return question.retired[str(value)]
    if question.type == "int" and (
        not isinstance(value, int) or isinstance(value, bool)
    ):
        return "expected a whole number"
    if question.type == "bool" and not isinstance(value, bool):
        return "expected true or false"
    if question.choices and value not in question.choices:
        offered = ", ".join(str(c) for c in question.choices)
        return f"not offered (choose one of: {offered})"
    return None


def _typed(question: Question, text: str) -> Any:
    if question.type == "int":
        try:
            return int(text)
        except ValueError:
            raise BadInput(
                f"--data {question.name}={text}: expected a whole number"
            ) from None
    if question.type == "bool":
        lowered = text.lower()
        if lowered in {"true", "yes", "on", "1"}:
            return True
        if lowered in {"false", "no", "off", "0"}:
            return False
        raise BadInput(f"--data {question.name}={text}: expected true or false")
    return text


def render(
    template: Template, answers: dict[str, Any], *, interactive: bool = False
) -> Tree:
    """Render ``template`` with ``answers``; with ``interactive``, copier asks the rest."""
    from copier import run_copy
    from copier.errors import CopierAnswersInterrupt, CopierError

    with scratch_dir("render") as tmp:
        out = tmp / "service"
        try:
            run_copy(
                str(template.path),
                out,
                data={
                    **answers,
                    "fleece_version": __version__,
                    # The answers file may record it, so `fleece update` finds
                    # the template again.
                    "fleece_template": template.name,
                },
                defaults=not interactive,
                quiet=True,
                unsafe=False,
                overwrite=True,
                skip_tasks=True,
            )
        except CopierAnswersInterrupt:
            raise FleeceError("interrupted: nothing was written") from None
        except (CopierError, ValueError) as error:
            raise _copier_error(str(error), answers) from None
        tree = _read_tree(out)
    # Before formatting: a keyword as a package name would not even parse.
    problem = name_problem(
        answers_of(tree), [*tree, RUNTIME_MODULE, CONFIG_MODULE], template.installs
    )
    if problem is not None:
        raise InvalidAnswer(
            problem.question,
            problem.value,
            problem.reason,
            "--data",
            message=problem.message,
        )
    if template.version is not None:
        tree[ANSWERS_FILE] = _with_template_version(
            tree.get(ANSWERS_FILE, b""), template.version
        )
    tree = {path: _format_python(path, data) for path, data in tree.items()}
    tree[RUNTIME_MODULE] = runtime_module_text().encode("utf-8")
    # The config module starts as the stub (an empty configuration) so the
    # handler can import it; `fleece config render --python` fills it in.
    tree[CONFIG_MODULE] = config_stub_text().encode("utf-8")
    return tree


def runtime_module_text() -> str:
    """``fleece_runtime.py`` as it goes into a service: the stub with its header."""
    body = (runtime_stub_dir() / "fleece_runtime.py").read_text(encoding="utf-8")
    return render_generated(body, str(__version__))


def config_stub_text() -> str:
    """``fleece_config.py`` before any stage was rendered into it."""
    body = (runtime_stub_dir() / "fleece_config.py").read_text(encoding="utf-8")
    return render_generated(
        body, str(__version__), refreshed_by="fleece config render STAGE --python"
    )


def answers_of(tree: Tree) -> dict[str, Any]:
    """The answers recorded in a rendered tree."""
    raw = yaml.safe_load(tree.get(ANSWERS_FILE, b"{}").decode("utf-8"))
    return raw if isinstance(raw, dict) else {}


def _with_template_version(answers: bytes, version: str) -> bytes:
    text = answers.decode("utf-8")
    if text and not text.endswith("\n"):
        text += "\n"
    line = yaml.safe_dump({TEMPLATE_VERSION_KEY: version}, default_style=None)
    return (text + line).encode("utf-8")


def _read_tree(root: Path) -> Tree:
    tree: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            tree[path.relative_to(root).as_posix()] = path.read_bytes()
    return tree


def _format_python(path: str, data: bytes) -> bytes:
    if not path.endswith(".py") or path.startswith(f"{FLEECE_DIR}/"):
        return data
    import black

    try:
        return black.format_str(data.decode("utf-8"), mode=_black_mode()).encode(
            "utf-8"
        )
    except black.parsing.InvalidInput as error:
        raise FleeceError(
            f"the template rendered invalid Python in {path}: {error}"
        ) from None


def _black_mode() -> "black.mode.Mode":
    import black

    # The oldest Python fleece runs on: black's output is then valid on every
    # Lambda runtime, and `black --check` agrees whichever Python runs it.
    return black.mode.Mode(target_versions={black.mode.TargetVersion.PY311})


def _copier_error(text: str, answers: dict[str, Any]) -> BadInput:
    # copier: "Validation error for question 'memory_size': must be between ..."
    one_line = re.sub(r"\s+", " ", text).strip()
    match = re.fullmatch(r"Validation error for question '(\w+)': (.*)", one_line)
    if match and match[1] in answers:
        return InvalidAnswer(match[1], answers[match[1]], match[2], "--data")
    if match:
        return BadInput(f"{match[1]}: {match[2]}")
    return BadInput(one_line)
