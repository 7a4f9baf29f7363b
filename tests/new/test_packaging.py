"""A wheel of fleece, installed into a fresh environment, works from any directory."""

import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_installed_wheel_renders_a_service_from_its_own_templates(
    tmp_path: Path,
) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    env_dir = tmp_path / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(env_dir)
    python = env_dir / "bin/python"
    (wheel,) = wheels.glob("fleece-*.whl")
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    where = subprocess.run(
        [str(python), "-c", "import fleece.resources as r; print(r.templates_dir())"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=True,
    )
    result = subprocess.run(
        [str(env_dir / "bin/fleece"), "new", "demo", "--defaults", "--no-git"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )

    assert Path(where.stdout.strip()).is_relative_to(env_dir)
    assert result.returncode == 0, result.stderr
    for path in (
        ".gitignore",
        ".gitattributes",
        ".fleece/answers.yml",
        "src/fleece_runtime.py",
        "src/demo/handler.py",
        "template.yaml",
    ):
        assert (elsewhere / "demo" / path).is_file(), path
