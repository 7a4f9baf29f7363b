"""Generated services pass their own checks, out of the box, for every API style.

Each service gets a fresh virtual environment of its own, installed offline
from the host wheelhouse (see ``tests/venvs.py``) and this checkout's wheel of
fleece (the dev extra names it), and runs the steps of its CI workflow, which
are the commands its README lists: ``pip install -e '.[dev]'``, pytest, ruff,
black, mypy --strict, cfn-lint and ``fleece check``.
"""

import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.new.service_ci import WORKFLOW, workflow_commands
from tests.venvs import create_environment, offline_environ, pip_install

RunFleece = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = pytest.mark.slow


def _run(python: Path, command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A workflow step in the service's environment, its scripts first on PATH."""
    return subprocess.run(
        shlex.split(command),
        cwd=cwd,
        capture_output=True,
        text=True,
        env=offline_environ(PATH=f"{python.parent}{os.pathsep}{os.environ['PATH']}"),
        timeout=600,
    )


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("demo", ["api_style=none"]),
        ("router-demo", ["api_style=router", "architecture=arm64"]),
        ("openapi-demo", ["api_style=openapi", "python_runtime=python3.13"]),
        (
            "Odd_Name-2",
            [
                "api_style=none",
                "python_runtime=python3.14",
                "description=A deliberately long description that goes on and on, "
                'with "quotes", a backslash \\ and unicode: naïve café ☕ — to test escaping.',
            ],
        ),
    ],
)
def test_generated_service_passes_its_own_checks(
    tmp_path: Path,
    run_fleece: RunFleece,
    fleece_wheel: Path,
    name: str,
    data: list[str],
) -> None:
    args = [arg for pair in data for arg in ("--data", pair)]
    created = run_fleece("new", name, "--defaults", *args, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    service = tmp_path / name
    python = create_environment(service / ".venv")
    install, *checks = workflow_commands((service / WORKFLOW).read_text())

    assert install == "pip install -e '.[dev]'"
    installed = pip_install(
        python,
        *shlex.split(install)[2:],
        cwd=service,
        find_links=(fleece_wheel.parent,),
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    results = {command: _run(python, command, service) for command in checks}
    for command, result in results.items():
        assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    summary = results["pytest"].stdout.strip().splitlines()[-1]
    assert int(summary.split(" passed")[0].split()[-1]) >= 3
