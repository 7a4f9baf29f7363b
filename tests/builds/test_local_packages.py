"""Local packages in the requirements: installed as real packages, from a copy,
with nothing of this machine's paths in the zip."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fleece.build.requirements import requirement_inputs, stage_requirements
from tests.builds.build_support import (
    Fleece,
    IndexServer,
    MakeService,
    contents,
    names,
    sha256,
    write_local_package,
    zip_of,
)


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def imports_from(archive: Path, folder: Path, module: str) -> str:
    """What ``module.VALUE`` is when the zip is unpacked and imported alone."""
    with zipfile.ZipFile(archive) as opened:
        opened.extractall(folder)
    # As on Lambda: the unpacked zip first on sys.path, nothing else of ours.
    code = f"import sys; sys.path.insert(0, {str(folder)!r}); import {module}"
    run = subprocess.run(
        [sys.executable, "-I", "-c", f"{code}; print({module}.VALUE)"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


@pytest.mark.parametrize("line", ["-e ../libs/localpkg", "--editable=../libs/localpkg"])
def test_an_editable_local_package_is_zipped_as_its_code(
    index: IndexServer,
    make_service: MakeService,
    fleece: Fleece,
    tmp_path: Path,
    line: str,
) -> None:
    service = make_service(line + "\n")
    write_local_package(service / "libs" / "localpkg")

    code, _, err = fleece("build", str(service))

    assert (code, err) == (0, "")
    entries = names(zip_of(service))
    assert "localpkg/__init__.py" in entries
    assert not [n for n in entries if "__editable__" in n or n.endswith(".pth")]
    assert imports_from(zip_of(service), tmp_path / "unzipped", "localpkg") == "1"


def test_the_local_package_s_folder_is_left_as_it_was(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("-e ../libs/localpkg\n")
    package = write_local_package(service / "libs" / "localpkg")
    before = files_of(package)

    assert fleece("build", str(service))[0] == 0

    assert files_of(package) == before  # no build/, no *.egg-info


def test_an_editable_package_in_an_included_file_is_installed_too(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("-r ../requirements/common.txt\n")
    (service / "requirements").mkdir()
    (service / "requirements" / "common.txt").write_text("-e ../libs/localpkg\n")
    write_local_package(service / "libs" / "localpkg")

    code, _, _ = fleece("build", str(service))

    assert code == 0
    assert "localpkg/__init__.py" in names(zip_of(service))


@pytest.mark.parametrize("form", ["absolute", "file-url", "direct-url"])
def test_local_packages_named_by_absolute_paths_and_urls_are_installed(
    index: IndexServer,
    make_service: MakeService,
    fleece: Fleece,
    tmp_path: Path,
    form: str,
) -> None:
    package = write_local_package(tmp_path / "elsewhere" / "localpkg", value=7)
    line = {
        "absolute": str(package),
        "file-url": package.as_uri(),
        "direct-url": f"localpkg @ {package.as_uri()}",
    }[form]
    service = make_service(line + "\n")

    code, _, err = fleece("build", str(service))

    assert (code, err) == (0, "")
    assert contents(zip_of(service))["localpkg/__init__.py"] == b"VALUE = 7\n"


def test_the_zip_does_not_depend_on_where_the_checkout_is(
    index: IndexServer, make_service: MakeService, fleece: Fleece, tmp_path: Path
) -> None:
    service = make_service("-e ../libs/localpkg\n")
    write_local_package(service / "libs" / "localpkg")
    elsewhere = tmp_path / "another" / "checkout"
    shutil.copytree(service, elsewhere)
    assert fleece("build", str(service))[0] == 0

    assert fleece("build", str(elsewhere), "--rebuild")[0] == 0

    assert sha256(zip_of(elsewhere)) == sha256(zip_of(service))
    entries = contents(zip_of(service))
    leftover = ("direct_url.json", "INSTALLER", "REQUESTED")
    assert not [n for n in entries if n.endswith(leftover)]
    record = entries["localpkg-0.1.dist-info/RECORD"].decode()
    assert not [name for name in leftover if name in record]
    assert not [n for n, v in entries.items() if str(tmp_path).encode() in v]


def test_a_local_wheel_file_is_installed_from_its_copy(
    index: IndexServer,
    wheelhouse: Path,
    make_service: MakeService,
    fleece: Fleece,
) -> None:
    wheel = next(wheelhouse.glob("idna-*.whl"))
    service = make_service(f"../wheels/{wheel.name}\n")
    (service / "wheels").mkdir()
    shutil.copy(wheel, service / "wheels")

    code, _, err = fleece("build", str(service))

    assert (code, err) == (0, "")
    assert "idna/core.py" in names(zip_of(service))


def test_the_staged_copy_points_at_copies_and_keeps_what_is_remote(
    tmp_path: Path,
) -> None:
    service = tmp_path / "service"
    write_local_package(service / "libs" / "localpkg")
    (service / "src").mkdir()
    (service / "src" / "requirements.txt").write_text(
        "--index-url https://pypi.example.com/simple\n"
        "-r https://example.com/shared.txt\n"
        "-f https://example.com/wheels/\n"
        "requests>=2 ; python_version >= '3.12'\n"
        "-e ../libs/localpkg[extra] ; sys_platform == 'linux'\n"
        "-e git+https://example.com/repo.git#egg=remote\n"
    )
    inputs = requirement_inputs(service / "src" / "requirements.txt")

    top = stage_requirements(inputs, tmp_path / "staged")

    copy = tmp_path / "staged" / "local" / "0" / "localpkg"
    assert top.read_text().splitlines() == [
        "--index-url https://pypi.example.com/simple",
        "-r https://example.com/shared.txt",
        "-f https://example.com/wheels/",
        "requests>=2 ; python_version >= '3.12'",
        f"{copy}[extra] ; sys_platform == 'linux'",
        "git+https://example.com/repo.git#egg=remote",
    ]
    assert (copy / "localpkg" / "__init__.py").read_text() == "VALUE = 1\n"
