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


def _lock_wanted(lock: Path) -> dict[str, object]:
    return {
        "lock": hashlib.sha256(lock.read_bytes()).hexdigest(),
        "python": sys.version_info[:2],
        "platform": sys.platform,
    }


def _digest(wanted: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()


def is_complete(folder: Path, wanted: dict[str, object]) -> bool:
    """Whether ``folder`` holds exactly what ``wanted`` describes."""
    stamp = folder / STAMP
    return stamp.is_file() and stamp.read_text(encoding="utf-8") == _digest(wanted)


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", *args]
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


def _fetch_lock(folder: Path, lock: Path, wanted: dict[str, object]) -> None:
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
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
