"""Where the bundled templates and runtime live.

In a wheel they are data inside the package (``fleece/templates``,
``fleece/runtime_stub``); in a source checkout or an editable install they are
the repository's top-level ``templates/`` and ``runtime_stub/`` folders (the
package itself is ``generator/fleece``).
"""

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _bundled(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parents[1] / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"fleece is installed without its {name}/ folder; reinstall it")


def templates_dir() -> Path:
    """The folder holding one copier template per sub-folder."""
    return _bundled("templates")


def runtime_stub_dir() -> Path:
    """The folder holding ``fleece_runtime.py`` and the config module source."""
    return _bundled("runtime_stub")
