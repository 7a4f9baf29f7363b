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

from tests.wheelhouse import (
    DEV_LOCK,
    host_folder,
    host_wanted,
    is_complete,
    runtime_folder,
    runtime_interpreter,
    runtime_wanted,
)

REPO = Path(__file__).resolve().parents[1]


def host_wheelhouse() -> Path:
    """The host wheelhouse; the test fails, saying how to fetch it, when absent."""
    return _complete(host_folder(), host_wanted(), "this Python")


def runtime_wheelhouse(python: str) -> Path:
    """The wheelhouse of Python ``python`` ("3.13"); the test fails when absent."""
    return _complete(runtime_folder(python), runtime_wanted(python), f"Python {python}")


def runtime_python(python: str) -> Path:
    """The CPython ``python`` ("3.13") of this machine; the test fails without one."""
    interpreter = runtime_interpreter(python)
    if interpreter is None:
        pytest.fail(f"this test runs Python {python}: install it (pyenv, uv) first")
    return interpreter


def _complete(folder: Path, wanted: dict[str, object], python: str) -> Path:
    if not is_complete(folder, wanted):
        pytest.fail(
            f"this test installs from the wheels in {folder}, made for {DEV_LOCK.name} "
            f"and {python}: run `python tests/wheelhouse.py` first (it needs PyPI)"
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


def create_environment(folder: Path, python: Path | None = None) -> Path:
    """A fresh virtual environment with pip and nothing else; its python.

    Made by this interpreter, or by ``python`` (another CPython) when given.
    """
    if python is None:
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    else:
        command = [str(python), "-m", "venv", "--clear", str(folder)]
        subprocess.run(command, check=True, env=offline_environ(), timeout=300)
    return folder / "bin" / "python"


def pip_install(
    python: Path,
    *requirements: str,
    cwd: Path | None = None,
    find_links: tuple[Path, ...] = (),
    wheelhouse: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``pip install REQUIREMENTS`` into ``python``'s environment, offline.

    Packages come from the ``wheelhouse`` (the host's unless given) and the
    ``find_links`` folders only.
    """
    command = [str(python), "-m", "pip", "install", "--quiet", "--no-index"]
    for folder in (wheelhouse or host_wheelhouse(), *find_links):
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
