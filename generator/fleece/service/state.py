"""The state of a service: ``assess``, the one function behind ``fleece check`` and ``fleece update``.

``assess`` reads the service (answers, pristine base, files, conflict record,
update journal), renders the recorded answers with the installed fleece and
plans, in memory, every write an update would make. It returns that plan and
the findings:

- blocking ones stand in update's way (a hand-edited runtime, a damaged base,
  conflict markers left to resolve, a folder where a file goes, a downgrade):
  update refuses while any remains, unless the run's options lift it;
- pending ones say what update would change (a stale runtime, template changes);
- ``config-*`` ones belong to ``fleece config``: update leaves those files alone.

``fleece check`` prints the findings (exit 1 if any); ``fleece update`` prints
them too, refuses on the blocking ones, or writes the plan. The two cannot
disagree, because neither decides anything on its own.

Every path in a plan is the template's (``src/demo/handler.py``); where it is
written is decided by ``fleece.service.worktree`` (links kept, nothing outside
the service).
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fleece import __version__
from fleece.errors import BadInput
from fleece.service.base import Base, BaseProblem, legacy_paths, read_base
from fleece.service.conflicts import legacy_record, parse_conflicts
from fleece.service.findings import Finding, finding, outside_finding
from fleece.service.generated import parse_generated
from fleece.service.journal import Journal, Step, load_journal
from fleece.service.layout import (
    ANSWERS_FILE,
    BASE_ARCHIVE,
    CONFIG_MODULE,
    CONFLICTS_FILE,
    JOURNAL_FILE,
    LEGACY_BASE_DIR,
    RUNTIME_MODULE,
    load_settings,
)
from fleece.service.plan import (
    BACKUP_SUFFIX,
    FileChange,
    Plan,
    change,
    pending,
    plan_update,
)
from fleece.service.render import (
    InvalidAnswer,
    Template,
    Tree,
    answer_problem,
    config_stub_text,
    load_template,
    parse_data,
    render,
    runtime_module_text,
)
from fleece.service.worktree import Worktree

__all__ = ["Options", "ServiceState", "assess", "next_answers", "service_root"]

# copier.yml key through which a template declares renamed questions, so the
# recorded answer carries over: `_fleece_renamed_questions: {old: new}`.
RENAMED_QUESTIONS_KEY = "_fleece_renamed_questions"
DEFAULT_TEMPLATE = "service"
CONFIG_FILE = "config.yml"


# -- Data ---------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    """What an update run asks for; ``fleece check`` assesses with the defaults."""

    data: tuple[str, ...] = ()
    template: str | None = None
    force: bool = False
    allow_downgrade: bool = False


@dataclass(frozen=True)
class ServiceState:
    """What ``assess`` found: the findings, the plan when one could be made."""

    root: Path
    findings: tuple[Finding, ...]
    plan: Plan | None = None

    @property
    def blockers(self) -> tuple[Finding, ...]:
        """The findings update refuses on."""
        return tuple(f for f in self.findings if f.blocking)


# -- The state ----------------------------------------------------------------


def service_root(path: Path) -> Path:
    """The service folder ``path`` names, as an absolute path."""
    root = Path(path).absolute()
    if not root.is_dir():
        raise BadInput(f"{root} is not a directory")
    return root


def assess(path: Path, options: Options = Options()) -> ServiceState:
    """The findings and the update plan of the service at ``path``; see the module docstring."""
    root = service_root(path)
    journal = load_journal(root)
    if journal is not None:
        return ServiceState(root, (_interrupted(journal),))
    worktree = Worktree(root)
    findings: list[Finding] = []
    recorded = _recorded_answers(worktree, findings)
    template = _template(recorded, options, findings)
    base = _base(worktree, findings)
    findings += _downgrades(recorded, template, options)
    findings += _leftover_conflicts(worktree)
    generated, backups = _generated_files(worktree, options, findings)
    findings += _config_module_findings(root, worktree)
    if recorded is None or template is None or base is None:
        return ServiceState(root, tuple(findings))
    rendered = _render(template, recorded, options, findings)
    if rendered is None:
        return ServiceState(root, tuple(findings))
    tree, notes = rendered
    plan, obstacles = plan_update(
        worktree, template, recorded, base, tree, notes, [*backups, *generated]
    )
    findings += obstacles
    findings += pending(plan, recorded)
    return ServiceState(root, tuple(findings), plan)


def next_answers(
    template: Template, recorded: dict[str, Any], data: Iterable[str]
) -> tuple[dict[str, Any], list[str]]:
    """The answers to render with: recorded ones, renamed and pruned, then ``data``.

    Returns the answers and one note per renamed or dropped answer; a recorded
    answer the template does not accept (and ``data`` does not replace) raises
    InvalidAnswer naming ``.fleece/answers.yml``.
    """
    answers = {k: v for k, v in recorded.items() if not str(k).startswith("_")}
    notes: list[str] = []
    for old, new in _renamed_questions(template).items():
        if old in answers and new not in answers:
            answers[new] = answers.pop(old)
            notes.append(f"answer {old} is now called {new}")
    for key in [k for k in answers if k not in template.questions]:
        value = answers.pop(key)
        notes.append(
            f"answer {key}={value!r} dropped: the {template.name} template no longer asks it"
        )
    given = parse_data(template, list(data))
    for key, value in answers.items():
        reason = answer_problem(template.questions[key], value)
        if key not in given and reason is not None:
            raise InvalidAnswer(key, value, reason, ANSWERS_FILE)
    return {**answers, **given}, notes


# -- Reading what the service records ------------------------------------------


def _interrupted(journal: Journal) -> Finding:
    return finding(
        JOURNAL_FILE,
        "update-interrupted",
        f"an update from fleece {journal.from_version} to {journal.to_version} was "
        "interrupted (run `fleece update` to complete it, or "
        "`fleece update --abort` to roll it back)",
    )


def _recorded_answers(
    worktree: Worktree, findings: list[Finding]
) -> dict[str, Any] | None:
    location = worktree.locate(ANSWERS_FILE)
    if location.outside:
        findings.append(outside_finding(location))
        return None
    data = worktree.read(ANSWERS_FILE)
    if data is None:
        findings.append(
            finding(
                ANSWERS_FILE,
                "answers-missing",
                "the answers file is missing (restore it from git history: "
                "fleece update renders the service from it)",
            )
        )
        return None
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or "unreadable"
        findings.append(
            finding(
                ANSWERS_FILE,
                "answers-invalid",
                f"not valid YAML{where}: {problem} (fix it, or restore it from git history)",
            )
        )
        return None
    if not isinstance(raw, dict):
        findings.append(
            finding(
                ANSWERS_FILE,
                "answers-invalid",
                "must be a mapping of answers (restore it from git history)",
            )
        )
        return None
    return raw


def _template(
    recorded: dict[str, Any] | None, options: Options, findings: list[Finding]
) -> Template | None:
    if options.template is not None:
        return load_template(options.template)
    if recorded is None:
        return None
    name = str(recorded.get("_fleece_template") or DEFAULT_TEMPLATE)
    try:
        return load_template(name)
    except BadInput:
        findings.append(
            finding(
                ANSWERS_FILE,
                "template-unknown",
                f"rendered from the template {name!r}, which this fleece does not "
                "bundle (pass --template NAME or --template PATH)",
            )
        )
        return None


def _renamed_questions(template: Template) -> dict[str, str]:
    raw = yaml.safe_load((template.path / "copier.yml").read_text(encoding="utf-8"))
    renames = (raw or {}).get(RENAMED_QUESTIONS_KEY) or {}
    if not isinstance(renames, dict):
        raise BadInput(
            f"{template.path}/copier.yml: {RENAMED_QUESTIONS_KEY} must map old names to new"
        )
    return {str(old): str(new) for old, new in renames.items()}


def _base(worktree: Worktree, findings: list[Finding]) -> Base | None:
    try:
        return read_base(worktree)
    except BaseProblem as problem:
        findings.append(finding(problem.path, problem.kind, problem.message))
        return None


def _downgrades(
    recorded: dict[str, Any] | None, template: Template | None, options: Options
) -> list[Finding]:
    if recorded is None:
        return []
    findings = []
    made_by = str(recorded.get("_fleece_version", ""))
    if _newer(made_by, __version__):
        findings.append(
            finding(
                ANSWERS_FILE,
                "fleece-outdated",
                f"rendered by fleece {made_by}, newer than this fleece {__version__}: "
                "an update would undo the newer template's changes (install "
                f"fleece>={made_by}, or pass --allow-downgrade)",
                lifted=options.allow_downgrade,
            )
        )
    recorded_template = recorded.get("_fleece_template_version")
    if (
        template is not None
        and template.version is not None
        and recorded_template is not None
        and _newer(str(recorded_template), template.version)
    ):
        findings.append(
            finding(
                ANSWERS_FILE,
                "template-outdated",
                f"rendered from version {recorded_template} of its template, newer "
                f"than the {template.name} template at hand (version "
                f"{template.version}): an update would undo its changes (use the "
                "newer template, or pass --allow-downgrade)",
                lifted=options.allow_downgrade,
            )
        )
    return findings


def _newer(version: str, than: str) -> bool:
    """True if ``version`` is a newer version than ``than`` (False if unparsable)."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version) > Version(than)
    except InvalidVersion:
        return False


def _leftover_conflicts(worktree: Worktree) -> list[Finding]:
    data = worktree.read(CONFLICTS_FILE)
    if data is not None:
        records = parse_conflicts(data)
    elif worktree.raw(BASE_ARCHIVE) is None:
        # Updated by fleece 2.0, which kept no record (nor an archive).
        prefix = f"{LEGACY_BASE_DIR}/"
        records = [legacy_record(p[len(prefix) :]) for p in legacy_paths(worktree)]
    else:
        records = []
    findings = []
    for record in records:
        content = worktree.read(record.path)
        remaining = record.remaining(content) if content is not None else []
        if remaining:
            findings.append(
                finding(
                    record.path,
                    "conflict",
                    f"conflict markers from `fleece update` at line {remaining[0]} "
                    "(resolve them, then commit)",
                )
            )
    return findings


# -- Generator-owned files ----------------------------------------------------


def _generated_files(
    worktree: Worktree, options: Options, findings: list[Finding]
) -> tuple[list[FileChange], list[FileChange]]:
    """The runtime and the config stub: replaced whole, never merged.

    Returns their changes and the backups ``--force`` makes of hand-edited ones.
    """
    changes: list[FileChange] = []
    backups: list[FileChange] = []
    for path, theirs in (
        (RUNTIME_MODULE, runtime_module_text().encode("utf-8")),
        (CONFIG_MODULE, config_stub_text().encode("utf-8")),
    ):
        ours = worktree.read(path)
        if ours == theirs:
            continue
        if path == CONFIG_MODULE and _rendered_config(worktree, ours):
            continue  # a stage's rendered config: `fleece config` owns it
        location = worktree.locate(path)
        if location.outside:
            findings.append(outside_finding(location))
            continue
        found = _generated_finding(path, ours, options)
        if found is not None:
            findings.append(found)
        edited = found is not None and found.kind.endswith("-edited")
        if ours is not None and edited and options.force:
            backup = _backup(worktree, path, findings)
            if backup is not None:
                backups.append(backup)
        action = "created" if ours is None else "replaced"
        changes.append(change(worktree, path, action, ours, theirs))
    return changes, backups


def _generated_finding(
    path: str, ours: bytes | None, options: Options
) -> Finding | None:
    runtime = path == RUNTIME_MODULE
    if ours is None:
        if runtime:
            return finding(path, "runtime-missing", "missing (run `fleece update`)")
        return None  # part of update-pending
    found = parse_generated(ours.decode("utf-8", "replace"))
    if found is None or found.edited:
        what = "edited by hand: its body no longer matches the sha256 in its header"
        return finding(
            path,
            "runtime-edited" if runtime else "config-stub-edited",
            f"{what} (move your changes out of it, then run `fleece update --force`, "
            f"which saves your version as {path}{BACKUP_SUFFIX})",
            lifted=options.force,
        )
    if _newer(found.version, __version__):
        return finding(
            path,
            "fleece-outdated",
            f"written by fleece {found.version}, newer than the installed fleece "
            f"{__version__} (install fleece>={found.version} where you run fleece)",
            lifted=options.allow_downgrade,
        )
    if not runtime:
        return None  # part of update-pending
    what = (
        f"written by fleece {found.version}, older than the installed fleece {__version__}"
        if _newer(__version__, found.version)
        else f"differs from the runtime of the installed fleece {__version__}"
    )
    return finding(path, "runtime-stale", f"{what} (run `fleece update`)")


def _backup(
    worktree: Worktree, path: str, findings: list[Finding]
) -> FileChange | None:
    """``--force`` keeps the hand-edited version of ``path`` beside the new one."""
    backup = f"{path}{BACKUP_SUFFIX}"
    ours = worktree.raw(path)
    existing = worktree.raw(backup)
    if existing == ours:
        return None
    location = worktree.locate(backup)
    if existing is not None or location.problem is not None or location.outside:
        findings.append(
            finding(
                backup,
                "obstacle",
                f"is in the way: --force saves your edited {path} there; move it first",
            )
        )
        return None
    return FileChange(
        backup,
        "saved",
        None,
        worktree.read(path),
        Step(worktree.relative(location), None, ours),
    )


def _rendered_config(worktree: Worktree, data: bytes | None) -> bool:
    if CONFIG_MODULE in {m.path for m in load_settings(worktree.root).config_modules}:
        return True
    if data is None:
        return False
    generated = parse_generated(data.decode("utf-8", "replace"))
    return generated is not None and "stage" in generated.fields


def _config_module_findings(root: Path, worktree: Worktree) -> list[Finding]:
    """Config modules listed in .fleece/settings.yml: `fleece config` renders them."""
    findings = []
    config = worktree.raw(CONFIG_FILE)
    config_digest = hashlib.sha256(config).hexdigest() if config is not None else None
    for module in load_settings(root).config_modules:
        render_it = (
            f"re-render it: `fleece config render {module.stage} --python "
            f"--output {module.path}`"
        )
        data = worktree.read(module.path)
        if data is None:
            findings.append(
                finding(
                    module.path,
                    "config-missing",
                    f"listed in .fleece/settings.yml but missing ({render_it})",
                )
            )
            continue
        found = parse_generated(data.decode("utf-8", "replace"))
        if found is None or found.edited:
            findings.append(
                finding(
                    module.path,
                    "config-edited",
                    "edited by hand: its body no longer matches the sha256 in its "
                    f"header ({render_it})",
                )
            )
        elif found.fields.get("config-sha256") != config_digest:
            what = (
                f"{CONFIG_FILE} is missing"
                if config_digest is None
                else f"rendered from another {CONFIG_FILE} than the current one"
            )
            findings.append(
                finding(module.path, "config-stale", f"{what} ({render_it})")
            )
    return findings


# -- Rendering -----------------------------------------------------------------


def _render(
    template: Template,
    recorded: dict[str, Any],
    options: Options,
    findings: list[Finding],
) -> tuple[Tree, list[str]] | None:
    """The new render and the notes on the answers; None when an answer stops it."""
    try:
        answers, notes = next_answers(template, recorded, options.data)
        return render(template, answers), notes
    except InvalidAnswer as error:
        given = {pair.partition("=")[0] for pair in options.data}
        if error.question in given:
            raise
        question = template.questions.get(error.question)
        retired = question is not None and str(error.value) in question.retired
        findings.append(
            finding(
                ANSWERS_FILE,
                "answer-retired" if retired else "answers-invalid",
                f"{error.question}={error.shown}: {error.reason} (correct it there, "
                f"or run `fleece update --data {error.question}=...`)",
            )
        )
        return None
