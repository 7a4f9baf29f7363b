"""Reproducible zips, and a zip that starts with another one's entries."""

import os
import zipfile
from pathlib import Path

import pytest

from fleece.build.ziparchive import extract_zip, sha256_of, write_zip
from tests.builds.build_support import contents


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "files"
    (folder / "pkg").mkdir(parents=True)
    paths = {}
    for name, text in {"pkg/__init__.py": "", "pkg/core.py": "X = 1\n" * 50}.items():
        paths[name] = folder / name
        paths[name].write_text(text)
    script = folder / "run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o700)
    paths["run.sh"] = script
    return paths


def test_a_zip_holds_its_entries_in_order_with_fixed_times_and_modes(
    files: dict[str, Path], tmp_path: Path
) -> None:
    archive = tmp_path / "a.zip"

    summary = write_zip(archive, {**files, "extra.json": b"{}"}, level=9)

    with zipfile.ZipFile(archive) as opened:
        infos = opened.infolist()
        assert opened.testzip() is None
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.filename: i.external_attr >> 16 for i in infos}["run.sh"] == 0o100755
    assert (summary.files, summary.unzipped) == (4, sum(i.file_size for i in infos))
    assert summary.sha256 == sha256_of(archive)


def test_a_zip_on_a_base_holds_the_base_s_entries_then_its_own(
    files: dict[str, Path], tmp_path: Path
) -> None:
    base = tmp_path / "base.zip"
    write_zip(base, {"dep/a.py": b"A = 1\n", "dep/b.py": b"B = 2\n" * 100}, level=9)
    archive = tmp_path / "a.zip"

    summary = write_zip(archive, files, base=base, level=6)

    with zipfile.ZipFile(archive) as opened:
        assert opened.testzip() is None
        names = opened.namelist()
    assert names == ["dep/a.py", "dep/b.py", "pkg/__init__.py", "pkg/core.py", "run.sh"]
    assert contents(archive)["dep/b.py"] == b"B = 2\n" * 100
    # The base's entries are copied as they are, compressed.
    with zipfile.ZipFile(base) as opened:
        end_of_entries = opened.start_dir
    assert archive.read_bytes()[:end_of_entries] == base.read_bytes()[:end_of_entries]
    assert (summary.files, summary.unzipped) == (5, 6 + 600 + 0 + 300 + 10)


def test_past_the_plain_zip_format_the_entries_are_the_same(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "base.zip"
    write_zip(base, {"dep/a.py": b"A = 1\n"}, level=9)
    write_zip(tmp_path / "plain.zip", files, base=base, level=6)
    # As if the zip had more entries than a zip without ZIP64 records holds.
    monkeypatch.setattr("fleece.build.ziparchive._PLAIN_MAX", 2)

    summary = write_zip(tmp_path / "zip64.zip", files, base=base, level=6)

    assert contents(tmp_path / "zip64.zip") == contents(tmp_path / "plain.zip")
    assert summary.files == 4


def test_an_extracted_zip_has_its_modes_and_fixed_times(
    files: dict[str, Path], tmp_path: Path
) -> None:
    archive = tmp_path / "a.zip"
    write_zip(archive, files, level=6)
    folder = tmp_path / "out"

    extract_zip(archive, folder)

    assert (folder / "pkg" / "core.py").read_text() == "X = 1\n" * 50
    assert os.stat(folder / "run.sh").st_mode & 0o777 == 0o755
    assert os.stat(folder / "pkg" / "core.py").st_mode & 0o777 == 0o644
    assert os.stat(folder / "pkg" / "core.py").st_mtime == 315532800
