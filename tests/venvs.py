"""Virtual environments for tests, installed offline from the host wheelhouse.

A test environment sees neither the network nor the site-packages of the
interpreter running the tests (inside or outside a virtual environment): pip
installs only from ``tests/.wheelhouse/host`` (see ``tests/wheelhouse.py``), with
the machine's and the user's pip configuration switched off.
"""

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.wheelhouse import DEV_LOCK, host_folder, host_wanted, is_complete

REPO = Path(__file__).resolve().parents[1]


def host_wheelhouse() -> Path:
    """The host wheelhouse; the test fails, saying how to fetch it, when absent."""
    folder = host_folder()
    if not is_complete(folder, host_wanted()):
        pytest.fail(
            f"this test installs from the wheels in {folder}, made for {DEV_LOCK.name} "
            "and this Python: run `python tests/wheelhouse.py` first (it needs PyPI)"
        )
    return folder


def offline_environ(**extra: str) -> dict[str, str]:
    """This process's environment, minus what would point pip or Python elsewhere."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PIP_", "PYTEST", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(PIP_CONFIG_FILE=os.devnull, PYTHONNOUSERSITE="1")
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.update(extra)
    return env


def create_environment(folder: Path) -> Path:
    """A fresh virtual environment with pip and nothing else; its python."""
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    return folder / "bin" / "python"


def pip_install(
    python: Path,
    *requirements: str,
    cwd: Path | None = None,
    find_links: tuple[Path, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """``pip install REQUIREMENTS`` into ``python``'s environment, offline.

    Packages come from the host wheelhouse and the ``find_links`` folders only.
    """
    command = [str(python), "-m", "pip", "install", "--quiet", "--no-index"]
    for folder in (host_wheelhouse(), *find_links):
        command += ["--find-links", str(folder)]
    command += requirements
    return subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        env=offline_environ(),
        timeout=900,
    )


def build_fleece_wheel(folder: Path, source: Path = REPO) -> Path:
    """fleece's wheel, built from ``source`` (this checkout) into ``folder``, offline.

    The build backend is installed from the host wheelhouse into pip's isolated
    build environment, as it would be for a user, whatever this one holds.
    """
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet"]
    command += ["--no-index", "--find-links", str(host_wheelhouse())]
    subprocess.run(
        [*command, "--wheel-dir", str(folder), str(source)],
        check=True,
        capture_output=True,
        env=offline_environ(),
    )
    (wheel,) = folder.glob("fleece-*.whl")
    return wheel
