"""Reproducible zip files: the same inputs give the same bytes.

Entries are sorted, every timestamp is 1980-01-01 (the oldest a zip can hold),
files are 0644, or 0755 when executable, and no extra fields are written.
Compiled ``.pyc`` files and ``__pycache__`` folders never go in: they were
compiled by the Python running the build, not the Lambda runtime's.

Exclude globs match like ``.gitignore`` lines: a glob without ``/`` matches the
name of a file or folder at any depth (``*.md``, ``tests``); a glob with ``/``
matches the path from the zip root (``boto3/*``, ``*/tests/*``). Excluding a
folder excludes everything in it.
"""

import fnmatch
import hashlib
import os
import stat
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["ZipSummary", "collect_files", "is_excluded", "write_zip"]

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
ALWAYS_EXCLUDED = ("__pycache__", "*.pyc", "*.pyo")
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ZipSummary:
    """What a written zip holds."""

    files: int
    size: int  # bytes of the zip file
    unzipped: int  # bytes of its files once extracted
    sha256: str


def is_excluded(path: str, globs: Iterable[str]) -> bool:
    """True when ``path`` (relative, with ``/``) or one of its folders matches a glob."""
    parts = PurePosixPath(path).parts
    for glob in globs:
        glob = glob.strip("/")
        if "/" in glob:
            prefixes = ("/".join(parts[: i + 1]) for i in range(len(parts)))
            if any(fnmatch.fnmatchcase(prefix, glob) for prefix in prefixes):
                return True
        elif any(fnmatch.fnmatchcase(part, glob) for part in parts):
            return True
    return False


def collect_files(root: Path, excludes: Iterable[str]) -> dict[str, Path]:
    """Every file under ``root`` not excluded, keyed by its path in the zip."""
    globs = [*ALWAYS_EXCLUDED, *excludes]
    files: dict[str, Path] = {}
    for folder, dirnames, filenames in os.walk(root, followlinks=True):
        relative = Path(folder).relative_to(root).as_posix()
        prefix = "" if relative == "." else relative + "/"
        dirnames[:] = [d for d in dirnames if not is_excluded(prefix + d, globs)]
        for name in filenames:
            arcname = prefix + name
            if not is_excluded(arcname, globs):
                files[arcname] = Path(folder) / name
    return files


def write_zip(
    files: Mapping[str, Path], extra: Mapping[str, bytes], destination: Path
) -> ZipSummary:
    """Write ``files`` (zip path -> file) and ``extra`` (zip path -> bytes) as a
    zip at ``destination``, replacing what is there.

    Only files are entries: extraction creates their folders, and a zip without
    folder entries is smaller.
    """
    contents: dict[str, Path | bytes] = {**files, **extra}
    unzipped = 0
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(contents):
            content = contents[name]
            if isinstance(content, bytes):
                archive.writestr(_entry(name, 0o100644), content)
                unzipped += len(content)
                continue
            executable = os.stat(content).st_mode & stat.S_IXUSR
            info = _entry(name, 0o100755 if executable else 0o100644)
            with open(content, "rb") as source, archive.open(info, "w") as target:
                while chunk := source.read(_CHUNK):
                    target.write(chunk)
                    unzipped += len(chunk)
    return ZipSummary(
        files=len(contents),
        size=destination.stat().st_size,
        unzipped=unzipped,
        sha256=sha256_of(destination),
    )


def _entry(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
    info.create_system = 3  # unix, so the mode below is read on extraction
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    # zlib's best compression: a smaller upload for a little more time.
    # (Python 3.13 renamed the attribute; ZipFile.open(info, "w") reads it.)
    level = "compress_level" if hasattr(info, "compress_level") else "_compresslevel"
    setattr(info, level, 9)
    return info


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
