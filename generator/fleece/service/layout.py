"""The layout of a generated service, as far as fleece's own files go.

Everything fleece keeps about a service lives in its ``.fleece/`` folder, which
is committed with the service::

    .fleece/answers.yml    copier's answers file: the answers to the template's
                           questions and the fleece version that rendered it
    .fleece/settings.yml   fleece settings: the config modules it rendered
    .fleece/base.tar.bz2    the pristine render of the answers by that fleece
                           version: the common ancestor of `fleece update`'s merge
                           (fleece 2.0 kept it as plain files in .fleece/base/)
    .fleece/conflicts.yml  the conflict blocks the last update wrote, until resolved

and, only while an update is being written, ``.fleece/update-journal.json``.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleece.errors import BadInput
from fleece.files import atomic_write

FLEECE_DIR = ".fleece"
ANSWERS_FILE = f"{FLEECE_DIR}/answers.yml"
SETTINGS_FILE = f"{FLEECE_DIR}/settings.yml"
BASE_ARCHIVE = f"{FLEECE_DIR}/base.tar.bz2"
LEGACY_BASE_DIR = f"{FLEECE_DIR}/base"
CONFLICTS_FILE = f"{FLEECE_DIR}/conflicts.yml"
JOURNAL_FILE = f"{FLEECE_DIR}/update-journal.json"
RUNTIME_MODULE = "src/fleece_runtime.py"
CONFIG_MODULE = "src/fleece_config.py"
# Files fleece owns whole: rendered with a header, replaced (never merged) by update.
GENERATOR_OWNED = (RUNTIME_MODULE, CONFIG_MODULE)


@dataclass(frozen=True)
class ConfigModule:
    """A ``fleece_config.py`` rendered for one stage, relative to the service root."""

    stage: str
    path: str


@dataclass
class Settings:
    """The contents of ``.fleece/settings.yml``."""

    config_modules: list[ConfigModule] = field(default_factory=list)


def load_settings(service: Path) -> Settings:
    """Read the service's settings; an absent file means defaults."""
    path = Path(service) / SETTINGS_FILE
    if not path.exists():
        return Settings()
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError:
        raise BadInput(f"{path} is not valid YAML") from None
    modules = raw.get("config_modules") or [] if isinstance(raw, dict) else None
    if not isinstance(modules, list) or not all(
        isinstance(m, dict)
        and isinstance(m.get("stage"), str)
        and isinstance(m.get("path"), str)
        for m in modules
    ):
        raise BadInput(
            f"{path}: config_modules must be a list of {{stage, path}} entries"
        )
    return Settings([ConfigModule(m["stage"], m["path"]) for m in modules])


def save_settings(service: Path, settings: Settings) -> None:
    """Write ``.fleece/settings.yml`` atomically."""
    path = Path(service) / SETTINGS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "config_modules": [
            {"stage": m.stage, "path": m.path} for m in settings.config_modules
        ]
    }
    atomic_write(
        path,
        "# fleece settings for this service; managed by fleece.\n"
        + yaml.safe_dump(data, sort_keys=False),
    )


def load_answers(service: Path) -> dict[str, Any]:
    """The answers a service was rendered with (``.fleece/answers.yml``)."""
    path = Path(service) / ANSWERS_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(
            f"{path} is missing: is {service} a service made by `fleece new`?"
        ) from None
    except yaml.YAMLError:
        raise BadInput(f"{path} is not valid YAML") from None
    if not isinstance(raw, dict):
        raise BadInput(f"{path} must be a mapping of answers")
    return raw
