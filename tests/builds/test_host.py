"""What the machine running a build without Docker must have, and what it
changes: pip itself, and the environment markers pip evaluates for it."""

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pip
import pytest

from fleece.build.wheels import (
    SUPPORTED_PYTHONS,
    Host,
    marker_gap,
    parse_runtime,
    pip_version,
)
from fleece.errors import FleeceError
from tests.builds.build_support import Fleece, IndexServer, MakeService

THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


# -- environment markers -----------------------------------------------------


def test_another_python_version_is_named_with_a_pointer_to_docker() -> None:
    gap = marker_gap(parse_runtime("3.12", "x86_64"), Host("3.11", "linux", "x86_64"))

    assert gap is not None
    assert "(Python 3.11, not 3.12)" in gap
    assert "--docker" in gap


def test_another_platform_is_named() -> None:
    gap = marker_gap(parse_runtime("3.12", "arm64"), Host("3.12", "darwin", "arm64"))

    assert gap is not None
    assert "(darwin arm64, not linux aarch64)" in gap


def test_linux_on_the_other_machine_is_named() -> None:
    gap = marker_gap(parse_runtime("3.13", "arm64"), Host("3.12", "linux", "x86_64"))

    assert gap is not None
    assert "(Python 3.12, not 3.13; linux x86_64, not linux aarch64)" in gap


def test_the_runtime_s_own_python_and_platform_have_no_gap() -> None:
    runtime = parse_runtime("3.12", "arm64")

    assert marker_gap(runtime, Host("3.12", "linux", "aarch64")) is None


def test_building_for_another_python_warns_in_one_line(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    other = next(v for v in SUPPORTED_PYTHONS if v != THIS_PYTHON)
    service = make_service("idna\n")

    code, out, err = fleece("build", str(service), "--python", other)

    assert code == 0
    assert err.startswith(
        "Warning: pip evaluates environment markers for this machine "
        f"(Python {THIS_PYTHON}, not {other}"
    )
    assert err.count("\n") == 1
    assert out.startswith("Built ")


def test_without_requirements_there_is_no_marker_warning(
    serve_index: Callable[[Path], IndexServer],
    make_service: MakeService,
    fleece: Fleece,
) -> None:
    other = next(v for v in SUPPORTED_PYTHONS if v != THIS_PYTHON)
    service = make_service("")

    code, _, err = fleece("build", str(service), "--python", other)

    assert (code, err) == (0, "")


# -- pip ---------------------------------------------------------------------


def test_pip_version_is_the_one_of_fleece_s_python() -> None:
    assert pip_version() == pip.__version__


@pytest.fixture
def python_without_pip(tmp_path: Path) -> str:
    """A real Python environment without pip, like a ``uv tool install``."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")],
        check=True,
    )
    return str(tmp_path / "venv" / "bin" / "python")


def test_a_python_without_pip_is_one_clear_error(python_without_pip: str) -> None:
    python = python_without_pip

    with pytest.raises(FleeceError) as raised:
        pip_version(python)

    message = str(raised.value)
    assert message.startswith(f"pip is not installed in fleece's Python ({python})")
    assert "install pip into fleece's environment" in message
    assert "--docker" in message
    assert "\n" not in message


def test_the_python_help_names_every_runtime_fleece_builds_for(
    fleece: Fleece,
) -> None:
    code, out, _ = fleece("build", "--help")

    assert code == 0
    assert "(3.11, 3.12, 3.13, 3.14)" in " ".join(out.split())


def test_a_build_without_pip_stops_before_installing_anything(
    index: IndexServer,
    make_service: MakeService,
    fleece: Fleece,
    python_without_pip: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = make_service("idna\n")
    monkeypatch.setattr(sys, "executable", python_without_pip)

    code, out, err = fleece("build", str(service))

    assert (code, out) == (1, "")
    assert err.startswith("Error: pip is not installed in fleece's Python")
    assert err.count("\n") == 1
    assert not (service / "dist").exists()
