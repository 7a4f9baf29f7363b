"""Fixtures of the update and check suite: the CLI in-process, old services."""

from collections.abc import Callable
from pathlib import Path

import pytest

from fleece.cli import main

from .scenario import FleeceCli, Run, legacy_tree, old_tree, write_service


@pytest.fixture
def fleece(capsys: pytest.CaptureFixture[str]) -> FleeceCli:
    """``fleece(*args)``: the real CLI entry point, in this process."""

    def run(*args: str) -> Run:
        capsys.readouterr()
        code: int | str | None = 0
        try:
            main(list(args))
        except SystemExit as exit_:
            code = exit_.code
        out, err = capsys.readouterr()
        assert isinstance(code, int), code
        return Run(code, out, err)

    return run


@pytest.fixture(autouse=True)
def git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits work whatever the machine's git config holds."""
    for name in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{name}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{name}_EMAIL", "test@example.com")


@pytest.fixture
def make_old_service(tmp_path: Path) -> Callable[..., Path]:
    """``make_old_service(**answers)``: a committed service made by fleece 1.9.0 from v1."""

    def make(**answers: str) -> Path:
        root = tmp_path / "demo"
        return write_service(root, old_tree(tuple(sorted(answers.items()))))

    return make


@pytest.fixture
def old_service(make_old_service: Callable[..., Path]) -> Path:
    """The v1 service with default answers (project demo), made by fleece 1.9.0."""
    return make_old_service(project_name="demo")


@pytest.fixture
def legacy_service(tmp_path: Path) -> Path:
    """The v1 service as fleece 2.0 kept it: the pristine render in .fleece/base/."""
    return write_service(tmp_path / "demo", legacy_tree((("project_name", "demo"),)))
