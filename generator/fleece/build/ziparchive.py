"""Reproducible zip files: the same inputs give the same bytes.

Entries are files only (extraction makes their folders), in sorted order, every
timestamp is 1980-01-01 (the oldest a zip can hold), files are 0644, or 0755
when executable, and no extra fields are written.

A zip can start as a copy of another one (``base``): its entries are copied as
they are, compressed, and the new entries are appended after them. That is how
a build reuses the dependency layer it cached (``fleece.build.cache``): a warm
build compresses only the service's own files.

Deflate runs at level 9 (``LEVEL``). The dependency layer is compressed once
and cached, so the level costs time only when the dependencies change, and the
service's own files are small; docs/build-and-run.md has the measurements
(size against time for levels 1, 6 and 9).
"""

import hashlib
import os
import shutil
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LEVEL", "ZipSummary", "extract_zip", "sha256_of", "write_zip"]

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_TIMESTAMP = 315532800  # 1980-01-01T00:00:00Z, for extracted files
LEVEL = 9
_CHUNK = 1024 * 1024

Content = Path | bytes


@dataclass(frozen=True)
class ZipSummary:
    """What a written zip holds."""

    files: int
    size: int  # bytes of the zip file
    unzipped: int  # bytes of its files once extracted
    sha256: str


def write_zip(
    destination: Path,
    entries: Mapping[str, Content],
    *,
    base: Path | None = None,
    level: int = LEVEL,
) -> ZipSummary:
    """Write ``entries`` (zip path -> file or bytes) as a zip at ``destination``.

    With ``base``, the zip starts as a copy of that zip and ``entries`` follow
    its own; none of them may have a name ``base`` already holds.
    """
    if base is not None:
        shutil.copyfile(base, destination)
    with zipfile.ZipFile(destination, "a" if base else "w") as archive:
        for name in sorted(entries):
            _add(archive, name, entries[name], level)
        infos = archive.infolist()
    return ZipSummary(
        files=len(infos),
        size=destination.stat().st_size,
        unzipped=sum(info.file_size for info in infos),
        sha256=sha256_of(destination),
    )


def extract_zip(archive: Path, folder: Path) -> None:
    """Extract ``archive`` into the empty or new ``folder``: modes as in the
    zip, timestamps 1980-01-01, as the zip says."""
    folder.mkdir(exist_ok=True)
    with zipfile.ZipFile(archive) as opened:
        for info in opened.infolist():
            path = Path(opened.extract(info, folder))
            os.chmod(path, (info.external_attr >> 16) & 0o777 or 0o644)
            os.utime(path, (FIXED_TIMESTAMP, FIXED_TIMESTAMP))


def sha256_of(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _add(archive: zipfile.ZipFile, name: str, content: Content, level: int) -> None:
    if isinstance(content, bytes):
        with archive.open(_entry(name, 0o100644, level), "w") as target:
            target.write(content)
        return
    executable = os.stat(content).st_mode & stat.S_IXUSR
    info = _entry(name, 0o100755 if executable else 0o100644, level)
    with open(content, "rb") as source, archive.open(info, "w") as target:
        shutil.copyfileobj(source, target, _CHUNK)


def _entry(name: str, mode: int, level: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=FIXED_DATE_TIME)
    info.create_system = 3  # unix, so the mode below is read on extraction
    info.external_attr = mode << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    # ZipFile.open(info, "w") reads the level from the entry; Python 3.13
    # renamed the attribute.
    attribute = "compress_level" if hasattr(info, "compress_level") else "_compresslevel"
    setattr(info, attribute, level)
    return info
