"""Download the wheels the build tests install, so the tests never reach PyPI.

Run before the build tests (CI does)::

    python tests/builds/fetch_wheelhouse.py [FOLDER]   # default tests/builds/.wheelhouse

The tests serve FOLDER as a package index on 127.0.0.1. A second run with the
same pins returns at once: a stamp file records what the folder holds.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

DEFAULT_FOLDER = Path(__file__).resolve().parent / ".wheelhouse"

# requests brings charset-normalizer, which ships compiled (.so) wheels for both
# Lambda architectures: the tests read the ELF header of its extension module.
PINNED = [
    "requests==2.32.3",
    "charset-normalizer==3.4.1",
    "idna==3.10",
    "urllib3==2.3.0",
    "certifi==2025.1.31",
]
# Building a pure-Python source distribution needs its build backend.
BUILD_BACKEND = ["setuptools==75.8.0"]
PYTHON_VERSION = "3.12"
PLATFORMS = {
    "x86_64": ["manylinux_2_17_x86_64", "manylinux2014_x86_64"],
    "aarch64": ["manylinux_2_17_aarch64", "manylinux2014_aarch64"],
}
STAMP = ".fetched.json"


def wanted() -> dict[str, object]:
    """What a complete wheelhouse holds; stored as its stamp."""
    return {
        "pinned": PINNED,
        "build_backend": BUILD_BACKEND,
        "python": PYTHON_VERSION,
        "platforms": PLATFORMS,
    }


def stamp_digest() -> str:
    return hashlib.sha256(json.dumps(wanted(), sort_keys=True).encode()).hexdigest()


def is_complete(folder: Path) -> bool:
    stamp = folder / STAMP
    return stamp.is_file() and stamp.read_text(encoding="utf-8") == stamp_digest()


def fetch(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check"]
    pip += ["--progress-bar", "off", "--dest", str(folder)]
    for tags in PLATFORMS.values():
        platform_flags = [f"--platform={tag}" for tag in tags]
        subprocess.run(
            [
                *pip,
                "--only-binary=:all:",
                "--implementation=cp",
                f"--python-version={PYTHON_VERSION}",
                *platform_flags,
                *PINNED,
            ],
            check=True,
        )
    subprocess.run(
        [*pip, "--only-binary=:all:", "--no-deps", *BUILD_BACKEND], check=True
    )
    (folder / STAMP).write_text(stamp_digest(), encoding="utf-8")


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else DEFAULT_FOLDER
    if is_complete(folder):
        print(f"wheelhouse {folder} is complete")
        return 0
    fetch(folder)
    print(f"wheelhouse {folder} is ready")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
