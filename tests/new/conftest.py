"""Helpers for running the real `fleece` command in a subprocess."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

RunFleece = Callable[..., subprocess.CompletedProcess[str]]


def _run_fleece(
    *args: str, cwd: Path, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m fleece ARGS`` as a user would, stdin not a terminal."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
    }
    env.update(GIT_COMMITTER_NAME="Test", GIT_COMMITTER_EMAIL="test@example.com")
    return subprocess.run(
        [sys.executable, "-m", "fleece", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def run_fleece() -> RunFleece:
    """``run_fleece(*args, cwd=PATH)``: the CLI in a subprocess."""
    return _run_fleece
