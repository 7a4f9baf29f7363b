"""Reproducible zip files: the same inputs give the same bytes.

Entries are files only (extraction makes their folders), in sorted order, every
timestamp is 1980-01-01 (the oldest a zip can hold), files are 0644, or 0755
when executable, and no extra fields are written.

A zip can start as a copy of another one (``base``): its entries are copied as
they are, compressed, and the new entries are appended after them. That is how
a build reuses the dependency layer it cached (``fleece.build.cache``): a warm
build compresses only the service's own files.

Deflate runs at zlib's default level 6 (``LEVEL``). Level 9 makes zips of
Python packages 0.6 to 0.9% smaller for 2.5 to 3 times the time (numpy with
its bytecode: 19.65 against 19.82 MB, 6.9 against 2.2 s); a cold build, in CI
say, pays that on every dependency, a warm one on the service's files (55
against 11 ms for a new service's code and bytecode). docs/build-and-run.md
has the measurements.
"""

import hashlib
import os
import shutil
import stat
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "LEVEL",
    "ZipSummary",
    "extract_zip",
    "sha256_of",
    "write_zip",
]

FIXED_DATE_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_TIMESTAMP = 315532800  # 1980-01-01T00:00:00Z, for extracted files
LEVEL = 6
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
    """Write ``entries`` (zip path -> file or bytes) as a zip at ``destination``,
    deflated at ``level``.

    With ``base``, the zip starts with the entries of that zip (a zip this
    function wrote), copied as they are, and ``entries`` follow; none of them
    may have a name ``base`` already holds.
    """
    layer = _directory_of(base) if base is not None else _Directory(b"", 0, 0, 0)
    if base is not None and (layer is None or layer.count + len(entries) > _PLAIN_MAX):
        return _append(destination, base, entries, level)
    assert layer is not None
    with open(destination, "w+b") as out:  # read too: see _join_directories
        if base is not None:
            _copy_start(base, out, layer.offset)
        with zipfile.ZipFile(out, "w") as archive:
            for name in sorted(entries):
                _add(archive, name, entries[name], level)
            own = archive.start_dir  # where it writes its central directory
            infos = archive.infolist()
        if layer.count:
            _join_directories(out, layer, own, len(infos))
    return ZipSummary(
        files=layer.count + len(infos),
        size=destination.stat().st_size,
        unzipped=layer.unzipped + sum(info.file_size for info in infos),
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


# -- joining a zip's entries and new ones ---------------------------------------
#
# A warm build copies the cached layer's entries byte for byte and writes the
# new ones after them with zipfile; then the two central directories are
# joined under one end record. Reading the layer's directory as bytes, rather
# than as zipfile's objects, is what keeps this quick for thousands of files.
# Past 65535 entries the zip needs ZIP64 records: zipfile's append mode
# handles those (_append), more slowly.

_END = struct.Struct("<4sHHHHLLH")  # end of central directory record
_END_SIGNATURE = b"PK\x05\x06"
_RECORD = struct.Struct("<4sHHHHHHLLLHHHHHLL")  # central directory file header
_PLAIN_MAX = 0xFFFF  # entries a zip holds without ZIP64 records


@dataclass(frozen=True)
class _Directory:
    """The central directory of a zip: its bytes, where it starts, its number
    of entries and their unzipped size."""

    records: bytes
    offset: int
    count: int
    unzipped: int


def _directory_of(base: Path) -> _Directory | None:
    """The central directory of ``base``; None when it has ZIP64 records."""
    with open(base, "rb") as source:
        source.seek(-_END.size, os.SEEK_END)
        end = _END.unpack(source.read(_END.size))
        signature, count, size, offset, comment = end[0], end[4], end[5], end[6], end[7]
        if signature != _END_SIGNATURE or comment or count == 0xFFFF or offset == 0xFFFFFFFF:
            return None
        source.seek(offset)
        records = source.read(size)
    unzipped, position = 0, 0
    for _ in range(count):
        record = _RECORD.unpack_from(records, position)
        unzipped += record[9]  # uncompressed size
        position += _RECORD.size + record[10] + record[11] + record[12]
    return _Directory(records, offset, count, unzipped)


def _copy_start(base: Path, out: BinaryIO, length: int) -> None:
    """Copy the first ``length`` bytes of ``base`` (its entries) to ``out``."""
    out.flush()
    with open(base, "rb") as source:
        copied = 0
        while copied < length:
            copied += os.sendfile(out.fileno(), source.fileno(), copied, length - copied)
    out.seek(length)


def _join_directories(out: BinaryIO, layer: _Directory, own: int, own_count: int) -> None:
    """Replace the directory zipfile wrote at ``own`` by the layer's and its own."""
    out.seek(own)
    records = out.read()[: -_END.size]
    out.seek(own)
    out.truncate()
    out.write(layer.records + records)
    count = layer.count + own_count
    size = len(layer.records) + len(records)
    out.write(_END.pack(_END_SIGNATURE, 0, 0, count, count, size, own, 0))


def _append(
    destination: Path, base: Path, entries: Mapping[str, Content], level: int
) -> ZipSummary:
    """``write_zip`` through zipfile's append mode, which writes ZIP64 records."""
    shutil.copyfile(base, destination)
    with zipfile.ZipFile(destination, "a") as archive:
        for name in sorted(entries):
            _add(archive, name, entries[name], level)
        infos = archive.infolist()
    return ZipSummary(
        files=len(infos),
        size=destination.stat().st_size,
        unzipped=sum(info.file_size for info in infos),
        sha256=sha256_of(destination),
    )


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
