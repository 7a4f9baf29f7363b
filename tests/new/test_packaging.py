"""A wheel of fleece, installed into a fresh environment, works from any directory."""

import subprocess
from pathlib import Path

import pytest

from fleece.service.base import with_base
from fleece.service.render import load_template, render
from tests.venvs import create_environment, offline_environ, pip_install

pytestmark = pytest.mark.slow


def test_installed_wheel_renders_a_service_from_its_own_templates(
    tmp_path: Path, fleece_wheel: Path
) -> None:
    python = create_environment(tmp_path / "env")
    # With its dependencies, as a user installs it: the wheel's metadata must
    # name everything fleece imports.
    installed = pip_install(python, str(fleece_wheel))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    where = subprocess.run(
        [str(python), "-c", "import fleece.resources as r; print(r.templates_dir())"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
        env=offline_environ(),
    )
    result = subprocess.run(
        [str(python.parent / "fleece"), "new", "demo", "--defaults", "--no-git"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        env=offline_environ(),
    )

    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "env")
    assert result.returncode == 0, result.stderr
    written = {
        path.relative_to(elsewhere / "demo").as_posix(): path.read_bytes()
        for path in (elsewhere / "demo").rglob("*")
        if path.is_file()
    }
    # Every file of the template made it into the wheel, hidden ones included.
    assert written == with_base(
        render(load_template("service"), {"project_name": "demo"})
    )
