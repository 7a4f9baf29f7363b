"""What each `fleece config` subcommand does, as plain functions.

Every function reads the user's files, decides (pure, ``fleece.config.model``),
talks to AWS through one ``Keyring``, and only then writes, atomically. A
failure before the writes leaves every file as it was.
"""

import difflib
import hashlib
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleece.aws.environments import Environments, load_environments
from fleece.config.formats import dump_json, dump_yaml, load_text
from fleece.config.kms import Keyring
from fleece.config.model import (
    DECRYPT,
    ENCRYPT,
    ConfigFile,
    Secret,
    document,
    parse_config,
    resolve_stage,
    to_data,
    walk_secrets,
)
from fleece.config.module import render_python_module, seal_payload
from fleece.config.parameter_store import (
    apply_plan,
    existing_parameters,
    plan_parameters,
)
from fleece.errors import BadInput, FleeceError
from fleece.files import atomic_write
from fleece.service.layout import ConfigModule, load_settings, save_settings

__all__ = [
    "ConfigPaths",
    "ImportResult",
    "diff_config",
    "export_config",
    "import_config",
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


@dataclass(frozen=True)
class ConfigPaths:
    """The files a `fleece config` command works on."""

    config: Path = Path("config.yml")
    environments: Path = Path("environments.yml")
    environments_given: bool = False  # -e was given: the file must exist

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


# ---------------------------------------------------------------------------
# Reading the user's files
# ---------------------------------------------------------------------------


def _environments(paths: ConfigPaths) -> Environments | None:
    # Without environments.yml every stage uses boto3's standard credential
    # chain (AWS_PROFILE, env vars, SSO...): fine for one-account services.
    if paths.environments.exists() or paths.environments_given:
        return load_environments(paths.environments)
    return None


def _check_environments(config: ConfigFile, environments: Environments | None) -> None:
    if environments is None:
        return
    for name, entry in config.stages.items():
        try:
            environments.get(entry.environment)
        except BadInput as error:
            raise BadInput(f"stages.{name}.environment: {error}") from None


def _read_closed(paths: ConfigPaths) -> tuple[ConfigFile, bytes] | None:
    try:
        raw = paths.config.read_bytes()
    except FileNotFoundError:
        return None
    source = str(paths.config)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"{source}: not UTF-8 text") from None
    return parse_config(load_text(text, source), source, "closed"), raw


def _require_closed(paths: ConfigPaths) -> tuple[ConfigFile, bytes]:
    found = _read_closed(paths)
    if found is None:
        raise BadInput(
            f"{paths.config}: no such file; create it with `fleece config edit` "
            "or `fleece config import`"
        )
    return found


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


def _plaintexts(config: ConfigFile, keyring: Keyring) -> dict[str, str]:
    secrets = config.secrets()
    return dict(
        zip([s.path for s in secrets], keyring.decrypt_secrets(secrets), strict=True)
    )


# ---------------------------------------------------------------------------
# export, import
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


def export_config(paths: ConfigPaths, as_json: bool = False) -> str:
    """config.yml in the open format: secrets decrypted, as ``:encrypt:VALUE``."""
    config, _ = _require_closed(paths)
    keyring = Keyring(config.stages, _environments(paths))
    plain = _plaintexts(config, keyring)
    data = document(config, lambda s: ENCRYPT + plain[s.path])
    return dump_json(data) if as_json else dump_yaml(data)


def import_config(
    paths: ConfigPaths, text: str, source: str = "<stdin>"
) -> ImportResult:
    """Write config.yml from the open format ``text``, and re-render the
    recorded ``fleece_config.py`` modules when config.yml changed.

    A secret whose plaintext, stage entry and key are unchanged keeps its
    ciphertext, so config.yml only changes where the config did.
    """
    new = parse_config(load_text(text, source), source, "open")
    environments = _environments(paths)
    _check_environments(new, environments)
    keyring = Keyring(new.stages, environments)
    try:
        old = _read_closed(paths)
    except BadInput:
        old = None  # a broken config.yml is being replaced: nothing to keep
    kept = _kept_ciphertexts(new, old[0] if old else None, keyring)
    fresh = [s for s in new.secrets() if s.path not in kept]
    ciphertexts = dict(kept)
    ciphertexts.update(
        zip([s.path for s in fresh], keyring.encrypt_secrets(fresh), strict=True)
    )
    old_raw = old[1] if old else _raw_or_none(paths.config)
    data = document(new, lambda s: DECRYPT + ciphertexts[s.path])
    new_raw = (_header(old_raw) + dump_yaml(data)).encode("utf-8")
    if new_raw == old_raw:
        return ImportResult(changed=False, kept=len(kept))
    modules = _rerender_modules(paths, new, new_raw, keyring)
    atomic_write(paths.config, new_raw)
    for path, module_text in modules:
        atomic_write(path, module_text)
    return ImportResult(
        changed=True,
        encrypted=len(fresh),
        kept=len(kept),
        modules=[str(path) for path, _ in modules],
    )


def _raw_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _kept_ciphertexts(
    new: ConfigFile, old: ConfigFile | None, keyring: Keyring
) -> dict[str, str]:
    if old is None:
        return {}
    old_secrets = {s.path: s for s in old.secrets()}
    candidates: list[tuple[Secret, Secret]] = []
    for secret in new.secrets():
        before = old_secrets.get(secret.path)
        if (
            before is not None
            and before.stage == secret.stage
            and old.stages.get(secret.stage) == new.stages[secret.stage]
        ):
            candidates.append((secret, before))
    plaintexts = keyring.try_decrypt_secrets([before for _, before in candidates])
    return {
        secret.path: before.ciphertext
        for (secret, before), plaintext in zip(candidates, plaintexts, strict=True)
        if before.ciphertext is not None and plaintext == secret.plaintext
    }


def _rerender_modules(
    paths: ConfigPaths, config: ConfigFile, raw: bytes, keyring: Keyring
) -> list[tuple[Path, str]]:
    """The recorded modules, rendered from the new (open) config."""
    settings = load_settings(paths.root)
    digest = hashlib.sha256(raw).hexdigest()
    rendered = []
    for module in settings.config_modules:
        data = _stage_data(config, module.stage, {})
        entry = config.stage_entry(module.stage).name
        payload = seal_payload(data, module.stage, entry, keyring)
        rendered.append(
            (paths.root / module.path, render_python_module(payload, digest))
        )
    return rendered


# ---------------------------------------------------------------------------
# render
# ---------------------------------------------------------------------------


def _stage_data(
    config: ConfigFile, stage: str, plaintexts: dict[str, str]
) -> dict[str, Any]:
    """The plain config of ``stage``; secrets from their plaintext or ``plaintexts``."""

    def reveal(secret: Secret) -> str:
        if secret.plaintext is not None:
            return secret.plaintext
        return plaintexts[secret.path]

    data = to_data(resolve_stage(config, stage), reveal)
    assert isinstance(data, dict)
    return data


def _decrypted_stage(
    paths: ConfigPaths, stage: str
) -> tuple[ConfigFile, bytes, Keyring, dict[str, Any]]:
    config, raw = _require_closed(paths)
    resolved = resolve_stage(config, stage)
    keyring = Keyring(config.stages, _environments(paths))
    needed = list(walk_secrets(resolved))
    plaintexts = dict(
        zip([s.path for s in needed], keyring.decrypt_secrets(needed), strict=True)
    )
    return config, raw, keyring, _stage_data(config, stage, plaintexts)


def render_config(paths: ConfigPaths, stage: str, fmt: RenderFormat) -> str:
    """The config of ``stage`` as YAML, JSON, an encrypted payload or a module."""
    config, raw, keyring, data = _decrypted_stage(paths, stage)
    if fmt == "yaml":
        return dump_yaml(data)
    if fmt == "json":
        return dump_json(data)
    _check_stage_word(stage)
    payload = seal_payload(data, stage, config.stage_entry(stage).name, keyring)
    if fmt == "encrypt":
        return payload.as_json()
    return render_python_module(payload, hashlib.sha256(raw).hexdigest())


def _check_stage_word(stage: str) -> None:
    if not stage or any(ch.isspace() for ch in stage):
        raise BadInput(f"stage name {stage!r} must be one word")


def render_module_file(paths: ConfigPaths, stage: str, output: Path) -> str | None:
    """Write ``fleece_config.py`` for ``stage`` to ``output`` and record it in
    ``.fleece/settings.yml``; returns its recorded path (None: outside the service)."""
    text = render_config(paths, stage, "python")
    root = paths.root
    target = output.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, text)
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


def upload_parameters(
    paths: ConfigPaths,
    stage: str,
    prefix: str,
    ssm_kms_key: str | None = None,
    prune: bool = False,
    dry_run: bool = False,
) -> str:
    """Write the config of ``stage`` to SSM Parameter Store; returns the plan."""
    config, _, keyring, data = _decrypted_stage(paths, stage)
    plan = plan_parameters(data, prefix)  # checks every name before AWS is touched
    entry = config.stage_entry(stage).name
    ssm = keyring.client(entry, "ssm")
    key_arn = keyring.key_arn(entry, ssm_kms_key) if ssm_kms_key else None
    existing = _existing(ssm, plan.prefix)
    plan = plan_parameters(data, prefix, existing, prune, key_arn)
    if not dry_run:
        apply_plan(ssm, plan)
    return plan.describe()


def _existing(ssm: Any, prefix: str) -> frozenset[str]:
    from botocore.exceptions import ClientError

    try:
        return existing_parameters(ssm, prefix)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "ClientError")
        raise FleeceError(f"could not list parameters under {prefix}: {code}") from None


# ---------------------------------------------------------------------------
# diff
# ---------------------------------------------------------------------------


def diff_config(
    paths: ConfigPaths, other: str = "HEAD", show_secrets: bool = False
) -> str:
    """A unified diff of the open formats of ``other`` (a file or git revision)
    and the working config.yml; secrets are masked unless ``show_secrets``."""
    current, _ = _require_closed(paths)
    other_text, label = _other_config(paths, other)
    before = parse_config(load_text(other_text, label), label, "any")
    environments = _environments(paths)
    now_keys = Keyring(current.stages, environments)
    then_keys = Keyring(before.stages, environments)
    now_text, then_text = _masked(current, before, now_keys, then_keys, show_secrets)
    lines = difflib.unified_diff(
        then_text.splitlines(keepends=True),
        now_text.splitlines(keepends=True),
        fromfile=label,
        tofile=f"{paths.config} (working)",
    )
    return "".join(lines)


def _other_config(paths: ConfigPaths, other: str) -> tuple[str, str]:
    candidate = Path(other)
    if candidate.is_file():
        return candidate.read_text(encoding="utf-8"), str(candidate)
    result = subprocess.run(
        ["git", "show", f"{other}:./{paths.config.name}"],
        cwd=paths.root,
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
    if result.returncode != 0:
        raise BadInput(
            f"{other!r} is neither a file nor a git revision holding "
            f"{paths.config.name} ({result.stderr.strip().splitlines()[-1:] or '?'})"
        )
    return result.stdout, f"{paths.config.name} ({other})"


def _masked(
    now: ConfigFile,
    then: ConfigFile,
    now_keys: Keyring,
    then_keys: Keyring,
    show_secrets: bool,
) -> tuple[str, str]:
    then_by_path = {s.path: s for s in then.secrets()}
    if show_secrets:
        now_plain = _plaintexts(now, now_keys)
        then_plain = _known_plaintexts(then, then_keys)
        return (
            dump_yaml(document(now, lambda s: ENCRYPT + now_plain[s.path])),
            dump_yaml(document(then, lambda s: ENCRYPT + then_plain[s.path])),
        )
    # Compare without showing: same ciphertext means same value; otherwise
    # decrypt both sides and compare the plaintexts.
    changed: set[str] = set()
    pairs = [(s, then_by_path.get(s.path)) for s in now.secrets()]
    to_check = [
        (s, b)
        for s, b in pairs
        if b is not None and (s.ciphertext != b.ciphertext or s.stage != b.stage)
    ]
    now_values = now_keys.decrypt_secrets([s for s, _ in to_check])
    then_values = [_plain_or_decrypt(b, then_keys) for _, b in to_check]
    for (secret, _), a, b in zip(to_check, now_values, then_values, strict=True):
        if a != b:
            changed.add(secret.path)
    hidden = ENCRYPT + "<hidden>"
    return (
        dump_yaml(
            document(
                now,
                lambda s: (
                    ENCRYPT + "<hidden, changed>" if s.path in changed else hidden
                ),
            )
        ),
        dump_yaml(document(then, lambda s: hidden)),
    )


def _plain_or_decrypt(secret: Secret, keyring: Keyring) -> str:
    if secret.plaintext is not None:
        return secret.plaintext
    return keyring.decrypt_secrets([secret])[0]


def _known_plaintexts(config: ConfigFile, keyring: Keyring) -> dict[str, str]:
    return {s.path: _plain_or_decrypt(s, keyring) for s in config.secrets()}
