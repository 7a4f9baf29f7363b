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
    installed_pip,
    marker_environment,
    marker_mismatches,
    parse_runtime,
    pip_version,
)
from fleece.errors import FleeceError
from tests.builds.build_support import Fleece, IndexServer, MakeService

THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
OTHER_PYTHON = next(v for v in SUPPORTED_PYTHONS if v != THIS_PYTHON)
HOST = marker_environment(parse_runtime(THIS_PYTHON, "x86_64"))
TARGET = marker_environment(parse_runtime("3.13", "x86_64"))


# -- environment markers -----------------------------------------------------


def installed(tmp_path: Path, **distributions: str) -> Path:
    """A folder of installed distributions: name -> "version|Requires-Dist;..."."""
    site = tmp_path / "site"
    for name, spec in distributions.items():
        version, *requires = spec.split("|")
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        lines = [f"Name: {name}", f"Version: {version}"]
        lines += [f"Requires-Dist: {r}" for r in requires]
        (info / "METADATA").write_text(
            "\n".join(["Metadata-Version: 2.1", *lines]) + "\n"
        )
    site.mkdir(exist_ok=True)
    return site


def test_the_runtime_s_markers_are_linux_on_its_machine_and_python() -> None:
    environment = marker_environment(parse_runtime("3.13", "arm64"))

    assert environment["python_version"] == "3.13"
    assert environment["sys_platform"] == "linux"
    assert environment["platform_machine"] == "aarch64"
    assert environment["implementation_name"] == "cpython"


def test_a_requirement_only_the_target_needs_and_nobody_installed_is_named(
    tmp_path: Path,
) -> None:
    line = 'idna; python_version >= "3.13"'

    missing = marker_mismatches(
        [line], installed(tmp_path), TARGET, {**HOST, "python_version": "3.11"}
    )

    assert missing == [line]


def test_a_requirement_the_installed_packages_satisfy_is_not_named(
    tmp_path: Path,
) -> None:
    site = installed(tmp_path, idna="3.10")

    missing = marker_mismatches(
        ['idna>=3; python_version >= "3.13"'],
        site,
        TARGET,
        {**HOST, "python_version": "3.11"},
    )

    assert missing == []


def test_an_installed_version_the_target_refuses_is_named(tmp_path: Path) -> None:
    site = installed(tmp_path, numpy="1.26.4")
    lines = ['numpy<2; python_version < "3.12"', 'numpy>=2; python_version >= "3.12"']

    missing = marker_mismatches(lines, site, TARGET, {**HOST, "python_version": "3.11"})

    assert missing == ['numpy>=2; python_version >= "3.12"']


def test_what_only_this_machine_needs_is_not_named(tmp_path: Path) -> None:
    line = 'tomli; python_version < "3.11"'

    missing = marker_mismatches(
        [line], installed(tmp_path), TARGET, {**HOST, "python_version": "3.10"}
    )

    assert missing == []


def test_markers_of_installed_distributions_are_checked_too(tmp_path: Path) -> None:
    site = installed(
        tmp_path,
        anyio='4.0|idna>=2.8|exceptiongroup>=1.0.2; python_version >= "3.13"',
        idna="3.10",
    )

    missing = marker_mismatches([], site, TARGET, {**HOST, "python_version": "3.11"})

    assert missing == [
        'exceptiongroup>=1.0.2; python_version >= "3.13" (required by anyio)'
    ]


def test_markers_on_extras_alone_are_not_named(tmp_path: Path) -> None:
    site = installed(tmp_path, requests='2.32|PySocks>=1.5.6; extra == "socks"')

    assert marker_mismatches([], site, TARGET, {**HOST, "python_version": "3.11"}) == []


def test_building_for_another_python_with_markers_that_differ_warns_in_one_line(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service(f'idna; python_version == "{OTHER_PYTHON}"\n')

    code, out, err = fleece("build", str(service), "--python", OTHER_PYTHON)

    assert code == 0
    assert err.startswith(
        "Warning: pip evaluated environment markers for this machine "
        f"(Python {THIS_PYTHON} on linux"
    )
    assert f'idna; python_version == "{OTHER_PYTHON}"' in err
    assert "--docker" in err
    assert err.count("\n") == 1
    assert out.startswith("Built ")
    # A build from the cache has nothing new to say.
    assert fleece("build", str(service), "--python", OTHER_PYTHON)[2] == ""


def test_requirements_without_host_markers_build_for_another_python_quietly(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("requests\n")

    code, _, err = fleece(
        "build", str(service), "--python", OTHER_PYTHON, "--no-compile"
    )

    assert (code, err) == (0, "")


def test_without_requirements_there_is_no_marker_warning(
    serve_index: Callable[[Path], IndexServer],
    make_service: MakeService,
    fleece: Fleece,
) -> None:
    service = make_service("")

    code, _, err = fleece(
        "build", str(service), "--python", OTHER_PYTHON, "--no-compile"
    )

    assert (code, err) == (0, "")


# -- pip ---------------------------------------------------------------------


def test_pip_version_is_the_one_of_fleece_s_python() -> None:
    assert pip_version() == pip.__version__
    assert installed_pip() == pip.__version__


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
