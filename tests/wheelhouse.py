"""Fetch the wheels the tests install, so that the tests themselves never reach PyPI.

Run before the tests (``.ci/run`` does)::

    python tests/wheelhouse.py [FOLDER]   # default tests/.wheelhouse

It fills two folders, each with a stamp file recording what it holds, so that a
second run with the same pins returns at once:

``FOLDER/targets``
    Linux wheels for a Lambda runtime (python3.12, both architectures) that the
    build tests serve as a package index on 127.0.0.1.
``FOLDER/host``
    Wheels of every package in ``locks/dev.txt`` for this interpreter: the tests
    that make virtual environments (a generated service's own checks, fleece's
    wheel in a fresh environment) install from it with ``--no-index``, so they
    see neither the network nor this interpreter's site-packages.
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


def targets_wanted() -> dict[str, object]:
    return {
        "pinned": TARGET_PINS,
        "build_backend": TARGET_BUILD_BACKEND,
        "python": TARGET_PYTHON,
        "platforms": TARGET_PLATFORMS,
    }


def host_wanted() -> dict[str, object]:
    return {
        "lock": hashlib.sha256(DEV_LOCK.read_bytes()).hexdigest(),
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


def fetch_host(folder: Path) -> None:
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
        str(DEV_LOCK),
    )
    (folder / STAMP).write_text(_digest(host_wanted()), encoding="utf-8")


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else wheelhouse_folder()
    for folder, wanted, fetch in (
        (targets_folder(root), targets_wanted(), fetch_targets),
        (host_folder(root), host_wanted(), fetch_host),
    ):
        if is_complete(folder, wanted):
            print(f"wheelhouse {folder} is complete")
        else:
            fetch(folder)
            print(f"wheelhouse {folder} is ready")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
