"""What each `fleece config` subcommand does, as plain functions.

Every function reads the user's files, resolves its stages once (``Stages``,
``Stage``), decides (pure, ``fleece.config.model``), talks to AWS through
``kms`` and ``parameter_store``, and only then writes, atomically. A failure
before the writes leaves every file as it was.
"""

import difflib
import hashlib
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleece.aws.environments import Environments, load_environments
from fleece.config.formats import decode_text, dump_json, dump_yaml, load_text
from fleece.config.kms import (
    check_keys,
    decrypt_secrets,
    encrypt_secrets,
    key_arn,
    try_decrypt_secrets,
)
from fleece.config.model import (
    BOUND_FORMAT,
    DECRYPT,
    ENCRYPT,
    ConfigFile,
    Secret,
    check_stage_key,
    document,
    parse_config,
    stage_values,
    to_data,
    walk_secrets,
)
from fleece.config.module import render_python_module, seal_payload
from fleece.config.parameter_store import (
    apply_plan,
    flatten,
    normalize_prefix,
    plan_parameters,
    read_existing,
)
from fleece.config.stages import Stage, Stages
from fleece.errors import BadInput
from fleece.files import atomic_write
from fleece.service.layout import (
    CONFIG_MODULE,
    SETTINGS_FILE,
    ConfigModule,
    load_settings,
    save_settings,
)

__all__ = [
    "ConfigRun",
    "ImportResult",
    "diff_config",
    "export_config",
    "forget_modules",
    "import_config",
    "migrate_config",
    "render_config",
    "render_module_file",
    "skeleton",
    "upload_parameters",
]

RenderFormat = Literal["yaml", "json", "encrypt", "python"]

_DEFAULT_HEADER = (
    "# Configuration of this service, safe to commit: secrets are stored as KMS\n"
    "# ciphertexts. Change it with `fleece config edit` (see docs/config.md).\n"
)
_FORMAT_LINE = (
    f"format: {BOUND_FORMAT}  # each secret is bound to its stage and key path\n"
)


def _quiet(message: str) -> None:
    pass


@dataclass(frozen=True)
class ConfigRun:
    """One `fleece config` command: the files it works on, and where its notes
    (things worth knowing that are not errors) go."""

    config: Path = Path("config.yml")
    environments: Path = Path("environments.yml")
    environments_given: bool = False  # -e was given: the file must exist
    notify: Callable[[str], None] = field(default=_quiet, compare=False, repr=False)

    @property
    def root(self) -> Path:
        """The service root: the folder holding config.yml."""
        return self.config.resolve().parent


@dataclass(frozen=True)
class ImportResult:
    """What an import changed."""

    changed: bool
    encrypted: int = 0
    kept: int = 0
    modules: list[str] = field(default_factory=list)
    migrated: bool = False  # config.yml was fleece 1.x's: every secret is bound now


# ---------------------------------------------------------------------------
# Reading the user's files
# ---------------------------------------------------------------------------


def _environments(run: ConfigRun) -> Environments | None:
    # Without environments.yml every stage uses boto3's standard credential
    # chain (AWS_PROFILE, env vars, SSO...): fine for one-account services.
    if run.environments.exists() or run.environments_given:
        return load_environments(run.environments)
    return None


def _read_closed(run: ConfigRun) -> tuple[ConfigFile, bytes] | None:
    raw = _raw_or_none(run.config)
    if raw is None:
        return None
    source = str(run.config)
    text = decode_text(raw, source)
    return parse_config(load_text(text, source), source, "closed"), raw


def _require_closed(run: ConfigRun) -> tuple[ConfigFile, bytes]:
    found = _read_closed(run)
    if found is None:
        raise BadInput(
            f"{run.config}: no such file; create it with `fleece config edit` "
            "or `fleece config import`"
        )
    return found


def _raw_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise BadInput(f"{path}: cannot read it: {error.strerror}") from None


def _note_legacy(run: ConfigRun, config: ConfigFile, source: str) -> None:
    if not config.bound and config.secrets():
        run.notify(
            f"{source} is in fleece 1.x's format: its secrets are not bound to "
            "their stage and key path, so one could be moved to another place "
            "unnoticed; `fleece config migrate` rewrites them bound"
        )


def _header(raw: bytes | None) -> str:
    """The comment lines a config.yml starts with, kept across imports."""
    if raw is None:
        return _DEFAULT_HEADER
    lines = []
    for line in raw.decode("utf-8", errors="replace").splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


def _plaintexts(
    config: ConfigFile, stages: Stages, secrets: list[Secret] | None = None
) -> dict[str, str]:
    """Key path -> plaintext of ``secrets`` (default: all), decrypting those
    that have none with their entry's stage."""
    secrets = config.secrets() if secrets is None else secrets
    plain = {s.path: s.plaintext for s in secrets if s.plaintext is not None}
    sealed = [s for s in secrets if s.plaintext is None]
    decrypted = decrypt_secrets(
        [(s, stages.of_entry(s.entry)) for s in sealed], bound=config.bound
    )
    plain.update(zip([s.path for s in sealed], decrypted, strict=True))
    return plain


# ---------------------------------------------------------------------------
# export, import, migrate
# ---------------------------------------------------------------------------


def skeleton(as_json: bool) -> str:
    """The open format of an empty config, for `edit` without a config.yml."""
    if as_json:
        return dump_json({"stages": {}, "config": {}})
    return (
        "# A new config.yml (see docs/config.md). For example:\n"
        "# stages:\n"
        "#   prod: {environment: prod, key: alias/prod-config}\n"
        "#   /.*/: {environment: dev, key: alias/dev-config}\n"
        "# config:\n"
        "#   log_level: INFO\n"
        "#   password: {+prod: ':encrypt:...', +/.*/: ':encrypt:...'}\n"
        "stages: {}\n"
        "config: {}\n"
    )


def export_config(run: ConfigRun, as_json: bool = False) -> str:
    """config.yml in the open format: secrets decrypted, as ``:encrypt:VALUE``."""
    config, _ = _require_closed(run)
    stages = Stages(config, _environments(run))
    _note_legacy(run, config, str(run.config))
    data = _open_document(config, stages)
    return dump_json(data) if as_json else dump_yaml(data)


def _open_document(config: ConfigFile, stages: Stages) -> dict[str, Any]:
    plain = _plaintexts(config, stages)
    return document(config, lambda s: ENCRYPT + plain[s.path])


def import_config(
    run: ConfigRun, text: str, source: str = "<stdin>", allow_empty: bool = False
) -> ImportResult:
    """Write config.yml from the open format ``text``, and re-render the
    recorded ``fleece_config.py`` modules when config.yml changed.

    A secret whose plaintext, stage entry and key are unchanged keeps its
    ciphertext, so config.yml only changes where the config did. Text with
    nothing in it (empty, comments, no ``stages:``/``config:``) never replaces
    a config.yml with something in it, unless ``allow_empty``.
    """
    data = load_text(text, source)
    new = parse_config(data, source, "open")
    try:
        found = _read_closed(run)
    except BadInput:
        found = None  # a broken config.yml is being replaced: nothing to keep
    old, old_raw = found if found else (None, _raw_or_none(run.config))
    if not allow_empty:
        _refuse_wipe(run, source, text, data, new, old, old_raw)
    return _write_config(run, new, old, old_raw)


def migrate_config(run: ConfigRun) -> ImportResult:
    """Rewrite a fleece 1.x config.yml with every secret bound to its stage
    entry and key path; values, stages and the comment header stay as they are.

    ``changed`` is False when config.yml has no 1.x secret to rewrite.
    """
    old, raw = _require_closed(run)
    if old.bound or not old.secrets():
        return ImportResult(changed=False)
    stages = Stages(old, _environments(run))
    source = str(run.config)
    new = parse_config(_open_document(old, stages), source, "open")
    return _write_config(run, new, old, raw)


def _refuse_wipe(
    run: ConfigRun,
    source: str,
    text: str,
    data: Any,
    new: ConfigFile,
    old: ConfigFile | None,
    old_raw: bytes | None,
) -> None:
    """Nothing in, something there: refuse (an export that failed upstream of
    ``fleece config export | ... | fleece config import`` gives empty input)."""
    if not _holds_something(old, old_raw):
        return
    if data is None:
        reason = "is empty" if not text.strip() else "holds only comments"
    else:
        lost = [
            name
            for name in ("stages", "config")
            if name not in data and (old is None or getattr(old, name))
        ]
        if lost:
            reason = f"has no {lost[0]}: section"
        elif not new.stages and not new.config:
            reason = "has no stages and no values"
        else:
            return
    raise BadInput(
        f"{source} {reason}: importing it would empty {run.config}; nothing was "
        f"written (an export always has stages: and config:; to empty {run.config} "
        "on purpose, pass --allow-empty)"
    )


def _holds_something(old: ConfigFile | None, raw: bytes | None) -> bool:
    if old is not None:
        return bool(old.stages or old.config)
    if raw is None:
        return False
    lines = raw.decode("utf-8", "replace").splitlines()
    return any(line.strip() and not line.lstrip().startswith("#") for line in lines)


def _write_config(
    run: ConfigRun, new: ConfigFile, old: ConfigFile | None, old_raw: bytes | None
) -> ImportResult:
    stages = Stages(new, _environments(run))
    check_keys(
        [
            stage
            for stage in stages.entries()
            if old is None or old.stages.get(stage.entry) != new.stages[stage.entry]
        ]
    )
    kept = _kept_ciphertexts(new, old, stages)
    fresh = [s for s in new.secrets() if s.path not in kept]
    ciphertexts = dict(kept)
    encrypted = encrypt_secrets([(s, stages.of_entry(s.entry)) for s in fresh])
    ciphertexts.update(zip([s.path for s in fresh], encrypted, strict=True))
    data = document(new, lambda s: DECRYPT + ciphertexts[s.path])
    new_raw = (_header(old_raw) + _FORMAT_LINE + dump_yaml(data)).encode("utf-8")
    if new_raw == old_raw:
        return ImportResult(changed=False, kept=len(kept))
    modules = _rerender_modules(run, new, new_raw, stages)
    atomic_write(run.config, new_raw)
    for path, module_text in modules:
        atomic_write(run.root / path, module_text)
    return ImportResult(
        changed=True,
        encrypted=len(fresh),
        kept=len(kept),
        modules=[path for path, _ in modules],
        migrated=old is not None and not old.bound and bool(old.secrets()),
    )


def _kept_ciphertexts(
    new: ConfigFile, old: ConfigFile | None, stages: Stages
) -> dict[str, str]:
    # A 1.x ciphertext is never kept: importing over a 1.x config.yml binds
    # every secret anew.
    if old is None or not old.bound:
        return {}
    old_secrets = {s.path: s for s in old.secrets()}
    candidates: list[tuple[Secret, Secret]] = []
    for secret in new.secrets():
        before = old_secrets.get(secret.path)
        if (
            before is not None
            and before.entry == secret.entry
            and old.stages.get(secret.entry) == new.stages[secret.entry]
        ):
            candidates.append((secret, before))
    plaintexts = try_decrypt_secrets(
        [(before, stages.of_entry(before.entry)) for _, before in candidates]
    )
    return {
        secret.path: before.ciphertext
        for (secret, before), plaintext in zip(candidates, plaintexts, strict=True)
        if before.ciphertext is not None and plaintext == secret.plaintext
    }


def _rerender_modules(
    run: ConfigRun, config: ConfigFile, raw: bytes, stages: Stages
) -> list[tuple[str, str]]:
    """The recorded modules (path in the service, text), rendered from the new
    (open) config."""
    digest = hashlib.sha256(raw).hexdigest()
    rendered = []
    for module in load_settings(run.root).config_modules:
        try:
            stage = stages.resolve(module.stage)
            data = _stage_data(config, stages, stage)
        except BadInput as error:
            raise BadInput(
                f"{module.path} is kept current for stage {module.stage} "
                f"({SETTINGS_FILE}), which the new config cannot render: {error}; "
                f"nothing was written (keep the stage, or run `fleece config forget "
                f"{module.stage}` first)"
            ) from None
        payload = seal_payload(data, stage)
        rendered.append((module.path, render_python_module(payload, digest)))
    return rendered


# ---------------------------------------------------------------------------
# render
# ---------------------------------------------------------------------------


def _stage_data(config: ConfigFile, stages: Stages, stage: Stage) -> dict[str, Any]:
    """The plain config of ``stage``, secrets decrypted where needed.

    Refuses a secret that is not encrypted with the stage's own key.
    """
    values = stage_values(config, stage.name)
    check_stage_key(config, stage.name, stage.entry, values)
    plain = _plaintexts(config, stages, list(walk_secrets(values)))
    data = to_data(values, lambda s: plain[s.path])
    assert isinstance(data, dict)
    return data


def _rendered_stage(
    run: ConfigRun, name: str, one_word: bool = False
) -> tuple[bytes, Stage, dict[str, Any]]:
    """config.yml's bytes, the stage ``name`` (resolved here, once) and its config."""
    config, raw = _require_closed(run)
    stages = Stages(config, _environments(run))
    stage = stages.resolve(name)
    if one_word and (not name or any(ch.isspace() for ch in name)):
        raise BadInput(f"stage name {name!r} must be one word")
    _note_legacy(run, config, str(run.config))
    return raw, stage, _stage_data(config, stages, stage)


def render_config(run: ConfigRun, stage: str, fmt: RenderFormat) -> str:
    """The config of ``stage`` as YAML, JSON, an encrypted payload or a module."""
    raw, resolved, data = _rendered_stage(
        run, stage, one_word=fmt in ("encrypt", "python")
    )
    if fmt == "yaml":
        return dump_yaml(data)
    if fmt == "json":
        return dump_json(data)
    payload = seal_payload(data, resolved)
    if fmt == "encrypt":
        return payload.as_json()
    return render_python_module(payload, hashlib.sha256(raw).hexdigest())


def render_module_file(run: ConfigRun, stage: str, output: Path) -> str | None:
    """Write ``fleece_config.py`` for ``stage`` to ``output`` and record it in
    ``.fleece/settings.yml``; returns its recorded path (None: outside the service)."""
    text = render_config(run, stage, "python")
    root = run.root
    target = output.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(target, text)
    except OSError as error:
        raise BadInput(f"cannot write {output}: {error.strerror}") from None
    try:
        relative = target.relative_to(root).as_posix()
    except ValueError:
        return None
    settings = load_settings(root)
    recorded = ConfigModule(stage, relative)
    if recorded not in settings.config_modules:
        settings.config_modules = [
            m for m in settings.config_modules if m.path != relative
        ] + [recorded]
        save_settings(root, settings)
    return relative


def forget_modules(run: ConfigRun, stage: str) -> list[tuple[str, str]]:
    """Stop keeping the modules of ``stage`` current: each is removed from
    ``.fleece/settings.yml``; the service's own ``src/fleece_config.py`` goes
    back to the empty stub a new service has, another path is deleted.

    Returns (path, what happened to it) for each module.
    """
    from fleece.service.render import config_stub_text

    root = run.root
    settings = load_settings(root)
    forgotten = [m for m in settings.config_modules if m.stage == stage]
    if not forgotten:
        recorded = ", ".join(f"{m.path} ({m.stage})" for m in settings.config_modules)
        raise BadInput(
            f"{SETTINGS_FILE} records no module for stage {stage!r} "
            f"(it records: {recorded or 'none'})"
        )
    done = []
    for module in forgotten:
        path = root / module.path
        if module.path == CONFIG_MODULE:
            atomic_write(path, config_stub_text())
            done.append((module.path, "now the empty stub of a new service"))
        else:
            path.unlink(missing_ok=True)
            done.append((module.path, "deleted"))
    settings.config_modules = [m for m in settings.config_modules if m.stage != stage]
    save_settings(root, settings)
    return done


def upload_parameters(
    run: ConfigRun,
    stage: str,
    prefix: str,
    ssm_kms_key: str | None = None,
    prune: bool = False,
    dry_run: bool = False,
) -> str:
    """Write the config of ``stage`` to SSM Parameter Store; returns the plan."""
    path = normalize_prefix(prefix)  # before anything is decrypted
    _, resolved, data = _rendered_stage(run, stage)
    values = flatten(data, path)  # checks every name before SSM is touched
    ssm = resolved.credentials.client("ssm")
    kms_key = key_arn(resolved, ssm_kms_key) if ssm_kms_key else None
    existing = read_existing(ssm, path, values)
    plan = plan_parameters(values, path, existing, prune, kms_key)
    if not dry_run:
        apply_plan(ssm, plan)
    return plan.describe()


# ---------------------------------------------------------------------------
# diff
# ---------------------------------------------------------------------------


def diff_config(run: ConfigRun, other: str = "HEAD", show_secrets: bool = False) -> str:
    """A unified diff of the open formats of ``other`` (a file or git revision)
    and the working config.yml; secrets are masked unless ``show_secrets``."""
    now, _ = _require_closed(run)
    other_text, label = _other_config(run, other)
    then = parse_config(load_text(other_text, label), label, "any")
    environments = _environments(run)
    now_stages, then_stages = Stages(now, environments), Stages(then, environments)
    _note_legacy(run, now, str(run.config))
    _note_legacy(run, then, label)
    if show_secrets:
        now_doc = _open_document(now, now_stages)
        then_doc = _open_document(then, then_stages)
    else:
        changed = _changed_secrets(now, then, now_stages, then_stages)
        now_doc = document(
            now,
            lambda s: ENCRYPT
            + ("<hidden, changed>" if s.path in changed else "<hidden>"),
        )
        then_doc = document(then, lambda s: ENCRYPT + "<hidden>")
    lines = difflib.unified_diff(
        dump_yaml(then_doc).splitlines(keepends=True),
        dump_yaml(now_doc).splitlines(keepends=True),
        fromfile=label,
        tofile=f"{run.config} (working)",
    )
    return "".join(lines)


def _changed_secrets(
    now: ConfigFile, then: ConfigFile, now_stages: Stages, then_stages: Stages
) -> set[str]:
    """Paths of secrets in both versions whose values differ. The same
    ciphertext at the same place is the same value; others are decrypted."""
    then_by_path = {s.path: s for s in then.secrets()}
    pairs = [
        (secret, then_by_path[secret.path])
        for secret in now.secrets()
        if secret.path in then_by_path
    ]
    pairs = [
        (a, b) for a, b in pairs if a.ciphertext != b.ciphertext or a.entry != b.entry
    ]
    now_plain = _plaintexts(now, now_stages, [a for a, _ in pairs])
    then_plain = _plaintexts(then, then_stages, [b for _, b in pairs])
    return {a.path for a, b in pairs if now_plain[a.path] != then_plain[b.path]}


def _other_config(run: ConfigRun, other: str) -> tuple[str, str]:
    candidate = Path(other)
    if candidate.is_file():
        raw = _raw_or_none(candidate) or b""
        return decode_text(raw, str(candidate)), str(candidate)
    result = subprocess.run(
        ["git", "show", f"{other}:./{run.config.name}"],
        cwd=run.root,
        capture_output=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if result.returncode != 0:
        reason = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise BadInput(
            f"{other!r} is neither a file nor a git revision holding "
            f"{run.config.name} ({reason[0] if reason else '?'})"
        )
    label = f"{run.config.name} ({other})"
    return decode_text(result.stdout, label), label
