"""Fetch the wheels the tests install, so that the tests themselves never reach PyPI.

Run before the tests (``.ci/run`` does)::

    python tests/wheelhouse.py [FOLDER]   # default tests/.wheelhouse

It fills two folders, each with a stamp file recording what it holds, so that a
second run with the same pins returns at once:

``FOLDER/targets``
    Linux wheels for a Lambda runtime (python3.12, both architectures) that the
    build tests serve as a package index on 127.0.0.1.
``FOLDER/openapi``
    Linux wheels of what an ``api_style=openapi`` service requires (python3.12,
    x86_64), served the same way to the tests that run ``sam build`` on one.
``FOLDER/host``
    Wheels of every package in ``locks/dev.txt`` for this interpreter: the tests
    that make virtual environments (a generated service's own checks, fleece's
    wheel in a fresh environment) install from it with ``--no-index``, so they
    see neither the network nor this interpreter's site-packages.
``FOLDER/sam``
    Wheels of ``locks/sam.txt`` for this interpreter: the AWS SAM CLI, which
    the tests install offline into an environment of its own.
``FOLDER/python3.12``, ``FOLDER/python3.13``
    Wheels of ``locks/dev.txt`` for the CPython of a Lambda runtime a service
    may choose (found as ``fleece build`` finds it: PATH, pyenv, uv): the
    tests run each generated service's own tests on its runtime's Python.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FOLDER = REPO / "tests" / ".wheelhouse"
DEV_LOCK = REPO / "locks" / "dev.txt"
SAM_LOCK = REPO / "locks" / "sam.txt"
STAMP = ".fetched.json"

# requests brings charset-normalizer, which ships compiled (.so) wheels for both
# Lambda architectures: the build tests read the ELF header of its extension.
TARGET_PINS = [
    "requests==2.32.3",
    "charset-normalizer==3.4.1",
    "idna==3.10",
    "urllib3==2.3.0",
    "certifi==2025.1.31",
]
# Building a pure-Python source distribution needs its build backend.
TARGET_BUILD_BACKEND = ["setuptools==75.8.0"]
TARGET_PYTHON = "3.12"
# The requirements of the template's openapi style (connexion, mangum), resolved.
OPENAPI_PINS = [
    "anyio==4.16.0",
    "asgiref==3.13.0",
    "attrs==26.1.0",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "connexion==3.3.0",
    "h11==0.16.0",
    "httpcore==1.0.9",
    "httpx==0.28.1",
    "idna==3.20",
    "inflection==0.5.1",
    "jinja2==3.1.6",
    "jsonschema==4.26.0",
    "jsonschema-specifications==2025.9.1",
    "mangum==0.22.0",
    "markupsafe==3.0.4",
    "python-multipart==0.0.34",
    "pyyaml==6.0.4",
    "referencing==0.37.0",
    "requests==2.34.2",
    "rpds-py==2026.9.1",
    "starlette==1.10.0",
    "typing-extensions==4.16.0",
    "urllib3==2.8.0",
    "werkzeug==3.1.9",
]
# The Lambda runtimes whose Python runs the generated services' tests.
RUNTIME_PYTHONS = ("3.12", "3.13")
_X86_64_TAGS = [f"manylinux_2_{minor}_x86_64" for minor in range(34, 16, -1)]
TARGET_PLATFORMS = {
    "x86_64": ["manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "aarch64": ["manylinux_2_17_aarch64", "manylinux2014_aarch64"],
}


def wheelhouse_folder() -> Path:
    """The wheelhouse the tests use: ``FLEECE_TEST_WHEELHOUSE`` or the default."""
    return Path(os.environ.get("FLEECE_TEST_WHEELHOUSE") or DEFAULT_FOLDER)


def targets_folder(root: Path | None = None) -> Path:
    return (root or wheelhouse_folder()) / "targets"


def host_folder(root: Path | None = None) -> Path:
    return (root or wheelhouse_folder()) / "host"


def openapi_folder(root: Path | None = None) -> Path:
    return (root or wheelhouse_folder()) / "openapi"


def sam_folder(root: Path | None = None) -> Path:
    return (root or wheelhouse_folder()) / "sam"


def runtime_folder(python: str, root: Path | None = None) -> Path:
    return (root or wheelhouse_folder()) / f"python{python}"


def runtime_interpreter(python: str) -> Path | None:
    """The CPython ``python`` ("3.13") on this machine, or None."""
    from fleece.build.bytecode import find_interpreter

    memo = wheelhouse_folder() / "interpreters.json"
    memo.parent.mkdir(parents=True, exist_ok=True)
    found = find_interpreter(python, memo)
    return None if found is None else Path(found.path)


def targets_wanted() -> dict[str, object]:
    return {
        "pinned": TARGET_PINS,
        "build_backend": TARGET_BUILD_BACKEND,
        "python": TARGET_PYTHON,
        "platforms": TARGET_PLATFORMS,
    }


def openapi_wanted() -> dict[str, object]:
    return {"pinned": OPENAPI_PINS, "python": TARGET_PYTHON, "machine": "x86_64"}


def host_wanted() -> dict[str, object]:
    return _lock_wanted(DEV_LOCK)


def sam_wanted() -> dict[str, object]:
    return _lock_wanted(SAM_LOCK)


def runtime_wanted(python: str) -> dict[str, object]:
    return _lock_wanted(DEV_LOCK, python)


def _lock_wanted(lock: Path, python: str | None = None) -> dict[str, object]:
    return {
        "lock": hashlib.sha256(lock.read_bytes()).hexdigest(),
        "python": (
            [int(part) for part in python.split(".")]
            if python
            else sys.version_info[:2]
        ),
        "platform": sys.platform,
    }


def _digest(wanted: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()


def is_complete(folder: Path, wanted: dict[str, object]) -> bool:
    """Whether ``folder`` holds exactly what ``wanted`` describes."""
    stamp = folder / STAMP
    return stamp.is_file() and stamp.read_text(encoding="utf-8") == _digest(wanted)


def _pip(*args: str, python: Path | str = sys.executable) -> None:
    command = [str(python), "-m", "pip", *args]
    subprocess.run(command, check=True)


def fetch_targets(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    download = ["download", "--progress-bar", "off", "--dest", str(folder)]
    for tags in TARGET_PLATFORMS.values():
        _pip(
            *download,
            "--only-binary=:all:",
            "--implementation=cp",
            f"--python-version={TARGET_PYTHON}",
            *[f"--platform={tag}" for tag in tags],
            *TARGET_PINS,
        )
    _pip(*download, "--only-binary=:all:", "--no-deps", *TARGET_BUILD_BACKEND)
    (folder / STAMP).write_text(_digest(targets_wanted()), encoding="utf-8")


def fetch_openapi(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    _pip(
        "download",
        "--progress-bar",
        "off",
        "--dest",
        str(folder),
        "--no-deps",
        "--only-binary=:all:",
        "--implementation=cp",
        f"--python-version={TARGET_PYTHON}",
        *[f"--platform={tag}" for tag in _X86_64_TAGS],
        *OPENAPI_PINS,
    )
    (folder / STAMP).write_text(_digest(openapi_wanted()), encoding="utf-8")


def fetch_host(folder: Path) -> None:
    _fetch_lock(folder, DEV_LOCK, host_wanted())


def fetch_sam(folder: Path) -> None:
    _fetch_lock(folder, SAM_LOCK, sam_wanted())


def fetch_runtime(folder: Path, python: str, interpreter: Path) -> None:
    _fetch_lock(folder, DEV_LOCK, runtime_wanted(python), interpreter)


def _fetch_lock(
    folder: Path,
    lock: Path,
    wanted: dict[str, object],
    python: Path | str = sys.executable,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    # `pip wheel` rather than `download`: a package published only as an sdist
    # is built once here, so that installing from the folder needs no backend.
    _pip(
        "wheel",
        "--progress-bar",
        "off",
        "--require-hashes",
        "--no-deps",
        "--wheel-dir",
        str(folder),
        "-r",
        str(lock),
        python=python,
    )
    (folder / STAMP).write_text(_digest(wanted), encoding="utf-8")


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else wheelhouse_folder()
    for folder, wanted, fetch in (
        (targets_folder(root), targets_wanted(), fetch_targets),
        (openapi_folder(root), openapi_wanted(), fetch_openapi),
        (host_folder(root), host_wanted(), fetch_host),
        (sam_folder(root), sam_wanted(), fetch_sam),
    ):
        if is_complete(folder, wanted):
            print(f"wheelhouse {folder} is complete")
        else:
            fetch(folder)
            print(f"wheelhouse {folder} is ready")
    for python in RUNTIME_PYTHONS:
        folder, wanted = runtime_folder(python, root), runtime_wanted(python)
        interpreter = runtime_interpreter(python)
        if interpreter is None:
            print(f"no Python {python} here: the tests that need it will fail")
        elif is_complete(folder, wanted):
            print(f"wheelhouse {folder} is complete")
        else:
            fetch_runtime(folder, python, interpreter)
            print(f"wheelhouse {folder} is ready")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
