"""Generated services pass their own checks, out of the box, for every API style.

Each service gets a fresh virtual environment of its own, installed offline
from the host wheelhouse (see ``tests/venvs.py``), and runs exactly what its
README tells a developer to: ``pip install -e '.[dev]'``, pytest, ruff, black,
mypy --strict and cfn-lint.
"""

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.venvs import create_environment, offline_environ, pip_install

RunFleece = Callable[..., subprocess.CompletedProcess[str]]

pytestmark = pytest.mark.slow

CHECKS = [
    ["-m", "pytest", "-q", "-p", "no:cacheprovider"],
    ["-m", "ruff", "check", "--no-cache", "."],
    ["-m", "black", "--check", "."],
    ["-m", "mypy", "--strict", "--no-incremental", "src"],
    # cfn-lint has no `python -m` entry; this is its console script's body.
    [
        "-c",
        "import sys; from cfnlint.runner import main; sys.exit(main())",
        "template.yaml",
    ],
]


def _run(python: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=offline_environ(),
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
    tmp_path: Path, run_fleece: RunFleece, name: str, data: list[str]
) -> None:
    args = [arg for pair in data for arg in ("--data", pair)]
    created = run_fleece("new", name, "--defaults", *args, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    service = tmp_path / name
    python = create_environment(service / ".venv")

    install = pip_install(python, "-e", ".[dev]", cwd=service)
    assert install.returncode == 0, install.stdout + install.stderr
    for check in CHECKS:
        result = _run(python, check, service)
        assert result.returncode == 0, f"{check}:\n{result.stdout}\n{result.stderr}"
    tests = _run(python, ["-m", "pytest", "-q", "-p", "no:cacheprovider"], service)
    passed = int(tests.stdout.strip().splitlines()[-1].split(" passed")[0].split()[-1])
    assert passed >= 3
