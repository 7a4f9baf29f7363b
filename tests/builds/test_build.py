"""`fleece build` without Docker: the zip of a generated service and its dependencies."""

import io
import os
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from fleece.build.artifact import BuildRequest, build
from fleece.build.bytecode import Interpreter, bytecode_name
from fleece.errors import FleeceError
from fleece.progress import Progress
from tests.builds.build_support import (
    Fleece,
    IndexServer,
    MakeService,
    names,
    sha256,
    zip_of,
)

EM_X86_64 = 62
EM_AARCH64 = 183


def elf_machine(archive: Path, suffix: str) -> int:
    """The e_machine field of the ELF header of the first member ending in suffix."""
    with zipfile.ZipFile(archive) as opened:
        member = next(n for n in opened.namelist() if n.endswith(suffix))
        header = opened.read(member)[:20]
    assert header[:4] == b"\x7fELF", member
    return int.from_bytes(header[18:20], "little")


def test_x86_64_zip_holds_code_and_dependencies_for_that_machine(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("requests\n")

    code, out, err = fleece("build", str(service))

    assert (code, err) == (0, "")
    entries = names(zip_of(service))
    for expected in (
        "demo/handler.py",
        "fleece_runtime.py",
        "requests/__init__.py",
        "urllib3/__init__.py",
        "charset_normalizer/__init__.py",
    ):
        assert expected in entries
    assert elf_machine(zip_of(service), ".so") == EM_X86_64
    assert not [n for n in entries if n.startswith("bin/")]
    # What pip records about its own install is not the wheels' content.
    assert not [n for n in entries if n.endswith(("/INSTALLER", "/REQUESTED"))]
    with zipfile.ZipFile(zip_of(service)) as opened:
        record = opened.read("charset_normalizer-3.4.1.dist-info/RECORD").decode()
    assert "bin/normalizer" not in record  # the console script is not in the zip
    assert "charset_normalizer/md.py," in record
    assert out.startswith(f"Built {zip_of(service)} (python3.12, x86_64")
    assert f"sha256 {sha256(zip_of(service))}" in out


def test_every_module_of_the_zip_has_bytecode_for_the_runtime(
    index: IndexServer,
    make_service: MakeService,
    fleece: Fleece,
    python312: Interpreter,
) -> None:
    service = make_service("requests\n")

    code, out, _ = fleece("build", str(service))

    assert code == 0
    entries = set(names(zip_of(service)))
    modules = {n for n in entries if n.endswith(".py")}
    assert "requests/sessions.py" in modules and "demo/handler.py" in modules
    assert {bytecode_name(m, "cpython-312") for m in modules} <= entries
    assert {n for n in entries if n.endswith(".pyc")} == {
        bytecode_name(m, "cpython-312") for m in modules
    }
    assert f"bytecode by Python {python312.version}" in out


def test_arm64_service_gets_aarch64_extension_modules(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("requests\n", architecture="arm64")

    code, out, _ = fleece("build", str(service))

    assert code == 0
    assert "(python3.12, arm64" in out
    assert elf_machine(zip_of(service), ".so") == EM_AARCH64


def test_arch_flag_overrides_the_service_answers(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("requests\n", architecture="x86_64")

    code, _, _ = fleece("build", str(service), "--arch", "arm64")

    assert code == 0
    assert elf_machine(zip_of(service), ".so") == EM_AARCH64


def test_two_builds_of_the_same_inputs_are_byte_identical(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("requests\n")
    assert fleece("build", str(service), "--rebuild")[0] == 0
    first = sha256(zip_of(service))
    # Touch every source file: timestamps must not reach the zip.
    for path in (service / "src").rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))

    assert fleece("build", str(service), "--rebuild")[0] == 0

    assert sha256(zip_of(service)) == first


def test_zip_entries_are_files_in_a_fixed_order_with_fixed_times_and_normal_modes(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("requests\n")
    script = service / "src" / "tool.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o700)
    (service / "src" / "demo" / "handler.py").chmod(0o600)

    assert fleece("build", str(service))[0] == 0

    with zipfile.ZipFile(zip_of(service)) as opened:
        infos = opened.infolist()
    order = [i.filename for i in infos]
    # The dependencies first (their cached layer), then the service's files.
    split = order.index("__pycache__/fleece_config.cpython-312.pyc")
    assert order[:split] == sorted(order[:split])
    assert order[split:] == sorted(order[split:])
    assert "requests/__init__.py" in order[:split]
    assert "demo/handler.py" in order[split:]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert not [i for i in infos if i.filename.endswith("/")]
    modes = {i.filename: i.external_attr >> 16 for i in infos}
    assert modes["tool.sh"] == 0o100755
    assert modes["demo/handler.py"] == 0o100644
    assert set(modes.values()) == {0o100644, 0o100755}


def test_excludes_apply_to_dependencies_and_source(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("requests\n")
    (service / "src" / "NOTES.md").write_text("notes\n")
    (service / "src" / "demo" / "fixtures").mkdir()
    (service / "src" / "demo" / "fixtures" / "big.json").write_text("{}")

    code, _, _ = fleece(
        "build",
        str(service),
        "--exclude",
        "*.md",
        "--exclude",
        "certifi",
        "--exclude",
        "demo/fixtures",
    )

    assert code == 0
    entries = names(zip_of(service))
    assert not [n for n in entries if n.endswith(".md")]
    assert not [n for n in entries if n.startswith("certifi/")]
    assert not [n for n in entries if n.startswith("demo/fixtures")]
    assert "certifi-2025.1.31.dist-info/METADATA" in entries
    assert "demo/handler.py" in entries


def test_unknown_requirement_names_the_package_and_the_platform(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("no-such-package-fleece==1.0\n", architecture="arm64")

    code, out, err = fleece("build", str(service))

    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "no-such-package-fleece==1.0" in err
    assert "python3.12 on arm64" in err
    assert not zip_of(service).exists()


def test_second_build_takes_dependencies_from_the_cache(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("requests\n")
    _, first, _ = fleece("build", str(service))
    assert "dependencies installed" in first
    index.stop()  # from now on pip would fail: only the cache can serve

    code, second, _ = fleece("build", str(service))

    assert code == 0
    assert "dependencies from cache" in second
    assert elf_machine(zip_of(service), ".so") == EM_X86_64


def test_rebuild_ignores_the_cache(
    index: IndexServer,
    make_service: MakeService,
    fleece: Fleece,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = make_service("requests\n")
    assert fleece("build", str(service))[0] == 0
    built = sha256(zip_of(service))
    index.stop()
    monkeypatch.setenv("PIP_RETRIES", "0")

    code, _, err = fleece("build", str(service), "--rebuild")

    assert code != 0
    assert "pip could not install" in err or "no wheel" in err
    assert sha256(zip_of(service)) == built  # the old zip is left as it was


def test_cache_is_keyed_by_requirements_architecture_and_python(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("requests\n")
    assert "installed" in fleece("build", str(service))[1]

    assert "installed" in fleece("build", str(service), "--arch", "arm64")[1]
    assert "from cache" in fleece("build", str(service), "--arch", "arm64")[1]
    with (service / "src" / "requirements.txt").open("a") as handle:
        handle.write("idna\n")
    assert "installed" in fleece("build", str(service))[1]


def test_near_the_zipped_limit_the_build_warns(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("")
    # Random bytes do not compress: 42 MB zipped is past 80% of 50 MB.
    (service / "src" / "model.bin").write_bytes(os.urandom(42 * 1024 * 1024))

    code, _out, err = fleece("build", str(service))

    assert code == 0
    assert err.startswith("Warning: the zip is 42.")
    assert "zipped, near Lambda's 50.0 MB limit" in err
    assert zip_of(service).exists()


def test_past_the_unzipped_limit_the_build_fails_and_keeps_the_old_zip(
    index: IndexServer, make_service: MakeService, fleece: Fleece
) -> None:
    service = make_service("")
    assert fleece("build", str(service))[0] == 0
    old = sha256(zip_of(service))
    with (service / "src" / "data.bin").open("wb") as handle:
        handle.truncate(260 * 1024 * 1024)  # sparse zeros: quick to write and zip

    code, _out, err = fleece("build", str(service))

    assert code == 1
    assert "unzipped, past Lambda's 250.0 MB limit" in err
    assert sha256(zip_of(service)) == old
    assert [p.name for p in zip_of(service).parent.iterdir()] == ["lambda_function.zip"]


def test_service_without_requirements_zips_its_source_only(
    serve_index: Callable[[Path], IndexServer],
    make_service: MakeService,
    fleece: Fleece,
) -> None:
    service = make_service("")  # the template's file holds comments only

    code, out, _ = fleece("build", str(service))

    assert code == 0
    assert "no dependencies" in out
    assert {n.split("/")[0] for n in names(zip_of(service))} == {
        "__pycache__",
        "demo",
        "fleece_config.py",
        "fleece_runtime.py",
        "requirements.txt",
    }


def test_build_info_is_added_only_when_asked(
    index: IndexServer,
    make_service: MakeService,
    fleece: Fleece,
) -> None:
    service = make_service("")
    git = ["git", "-C", str(service)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run(
        [*git, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "x"],
        check=True,
    )
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert fleece("build", str(service))[0] == 0
    assert "build_info.json" not in names(zip_of(service))

    assert fleece("build", str(service), "--inject-build-info")[0] == 0

    with zipfile.ZipFile(zip_of(service)) as opened:
        info = opened.read("build_info.json").decode()
    assert f'"commit": "{head}"' in info
    assert '"built_at": "' in info


def test_progress_names_the_slow_steps_on_a_terminal(
    index: IndexServer, make_service: MakeService
) -> None:
    service = make_service("requests\n")
    screen = io.StringIO()

    build(BuildRequest(service_dir=service), Progress(screen))

    # Each step ends with its final status and a newline; "\r" rewrites in between.
    finished = screen.getvalue().split("\n")[:-1]
    steps = [line.split("\r\x1b[2K")[-1].split(" done (")[0] for line in finished]
    assert steps == [
        "resolve",
        "download",
        "install",
        "compile dependencies",
        "compress dependencies",
        "compile",
        "zip",
    ]


def test_an_error_starts_on_a_line_of_its_own_after_the_progress(
    index: IndexServer, make_service: MakeService
) -> None:
    service = make_service("no-such-package-fleece==1.0\n")
    screen = io.StringIO()

    with pytest.raises(FleeceError), Progress(screen) as progress:
        build(BuildRequest(service_dir=service), progress)

    assert screen.getvalue().endswith("\n")
    assert " done (" not in screen.getvalue().rsplit("\r", 1)[-1]


def test_bad_input_exits_2_with_one_line(
    serve_index: Callable[[Path], IndexServer],
    make_service: MakeService,
    fleece: Fleece,
) -> None:
    service = make_service("")
    cases = [
        (["--python", "3.7"], "unsupported Python '3.7'"),
        (["--dependencies", "gcc"], "add --docker"),
        (["--source", str(service / "nope")], "no such source folder"),
        (["--requirements", str(service / "nope.txt")], "no such requirements file"),
        (
            ["--output-dir", str(service / "src")],
            f"--output-dir {service / 'src'}: not empty",
        ),
        (
            ["--output-dir", str(service / "out"), "--target", str(service / "t")],
            "give --target or --output-dir, not both",
        ),
    ]
    for args, message in cases:
        code, out, err = fleece("build", str(service), *args)
        assert (code, out) == (2, ""), args
        assert message in err and err.count("\n") == 1, err


def test_pure_python_source_distribution_is_built_into_a_wheel(
    serve_index: Callable[[Path], IndexServer],
    wheelhouse: Path,
    make_service: MakeService,
    fleece: Fleece,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "index"
    folder.mkdir()
    shutil.copy(next(wheelhouse.glob("setuptools-*.whl")), folder)
    write_sdist(folder, "puresdist", "0.1", pure=True)
    serve_index(folder)
    service = make_service("puresdist==0.1\n", architecture="arm64")

    code, _out, err = fleece("build", str(service))

    assert code == 0, err
    assert "puresdist.py" in names(zip_of(service))


def test_compiled_source_distribution_is_refused_with_a_pointer_to_docker(
    serve_index: Callable[[Path], IndexServer],
    wheelhouse: Path,
    make_service: MakeService,
    fleece: Fleece,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "index"
    folder.mkdir()
    shutil.copy(next(wheelhouse.glob("setuptools-*.whl")), folder)
    write_sdist(folder, "nativesdist", "0.1", pure=False)
    serve_index(folder)
    service = make_service("nativesdist==0.1\n")

    code, _, err = fleece("build", str(service))

    assert code == 2
    assert "nativesdist==0.1: no wheel for python3.12 on x86_64" in err
    assert "--docker" in err


def write_sdist(folder: Path, name: str, version: str, *, pure: bool) -> None:
    """A minimal setuptools source distribution; impure ones claim an extension."""
    setup = "from setuptools import setup\n"
    if not pure:
        # A platform wheel without a compiler: the distribution says it has
        # extension modules, so setuptools tags the wheel for this machine.
        setup += (
            "from setuptools.dist import Distribution\n"
            "Distribution.has_ext_modules = lambda self: True\n"
        )
    setup += f"setup(name={name!r}, version={version!r}, py_modules=[{name!r}])\n"
    files = {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools"]\n'
        'build-backend = "setuptools.build_meta"\n',
        "setup.py": setup,
        f"{name}.py": "VALUE = 1\n",
        "PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
    }
    import tarfile

    with tarfile.open(folder / f"{name}-{version}.tar.gz", "w:gz") as archive:
        for filename, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{filename}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
