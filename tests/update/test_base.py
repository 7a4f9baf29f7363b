"""The pristine base: out of reach of search-and-replace, checked when it is not.

A rename across the project (`git grep -l | xargs sed -i`) must stay a user's
edit: update merges it with the template's changes instead of undoing it.
"""

import hashlib
import subprocess
from pathlib import Path

import pytest

from fleece.service.base import MAX_BASE_BYTES, pack_base, unpack_base
from fleece.service.layout import BASE_ARCHIVE, LEGACY_BASE_DIR

from .scenario import (
    V2,
    FleeceCli,
    commit_all,
    git,
    read_tree,
    recorded_base,
)

HANDLER = "src/demo/handler.py"


def _rename_across_the_project(service: Path, old: str, new: str) -> None:
    """What an editor's project-wide replace or `git grep -l | xargs sed` does."""
    subprocess.run(
        f"git grep -l {old} | xargs sed -i s/{old}/{new}/g",
        shell=True,
        cwd=service,
        check=True,
    )


def test_a_rename_across_the_project_does_not_reach_the_base(
    old_service: Path,
) -> None:
    archive = (old_service / BASE_ARCHIVE).read_bytes()

    _rename_across_the_project(old_service, "GREETING", "WELCOME")

    assert "WELCOME" in (old_service / HANDLER).read_text()
    assert (old_service / BASE_ARCHIVE).read_bytes() == archive


def test_a_rename_across_the_project_survives_the_update(
    old_service: Path, fleece: FleeceCli
) -> None:
    _rename_across_the_project(old_service, "GREETING", "WELCOME")
    commit_all(old_service, "rename GREETING")

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 0, result.stderr
    handler = (old_service / HANDLER).read_text()
    assert "GREETING" not in handler and handler.count("WELCOME") == 2
    assert "it answers every event in JSON." in handler
    assert f"  merged    {HANDLER}" in result.stdout
    commit_all(old_service, "update")
    assert fleece("check", str(old_service), "--template", str(V2)).code == 0


def test_the_archive_holds_the_same_bytes_for_the_same_files() -> None:
    tree = {"b.txt": b"two\n", "a/c.py": b"x = 1\n", "a.md": b"# one\n"}

    packed = pack_base(tree)

    assert pack_base(dict(reversed(tree.items()))) == packed
    assert unpack_base(packed) == tree
    assert b"x = 1" not in packed and b"two" not in packed


def test_the_archive_bytes_do_not_depend_on_the_machine() -> None:
    # Pinned: two developers who update to the same render must commit the
    # same bytes, or their branches conflict on the archive.
    tree = {"b.txt": b"beta\n", "a/x.py": 'print("é")\n'.encode()}

    digest = hashlib.sha256(pack_base(tree)).hexdigest()

    assert digest == "ae610b62235ff4cf4b8197271bcc9da3226812d2994f35ee24bf9283cc192ef9"


def test_an_archive_that_would_unpack_past_the_limit_is_damaged() -> None:
    # A hostile base in a pull request must not exhaust CI's memory.
    bomb = pack_base({"big.txt": b"\0" * (MAX_BASE_BYTES + 1)})

    with pytest.raises(ValueError, match="larger than"):
        unpack_base(bomb)


def test_a_damaged_archive_is_refused_with_the_way_out(
    old_service: Path, fleece: FleeceCli
) -> None:
    archive = old_service / BASE_ARCHIVE
    archive.write_bytes(archive.read_bytes()[:-40])
    commit_all(old_service, "damage")
    before = read_tree(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))
    check = fleece("check", str(old_service), "--template", str(V2), "--json")

    assert result.code == 2
    assert (
        "Error: .fleece/base.tar.bz2: the pristine render is damaged" in result.stderr
    )
    assert "git checkout <commit> -- .fleece/base.tar.bz2" in result.stderr
    assert read_tree(old_service) == before
    assert '"kind": "base-edited"' in check.stdout


def test_a_base_of_plain_files_becomes_the_archive(
    legacy_service: Path, fleece: FleeceCli
) -> None:
    plain = read_tree(legacy_service / LEGACY_BASE_DIR)

    result = fleece("update", str(legacy_service), "--template", str(V2))

    assert result.code == 0, result.stderr
    assert not (legacy_service / LEGACY_BASE_DIR).exists()
    base = recorded_base(legacy_service)
    assert base.keys() >= plain.keys() - {"docs/legacy.md"}
    assert "events/sqs.json" in base


def test_plain_base_files_renamed_with_the_project_are_refused_with_the_way_out(
    legacy_service: Path, fleece: FleeceCli
) -> None:
    rendered = git(legacy_service, "log", "-1", "--format=%h").strip()
    _rename_across_the_project(legacy_service, "GREETING", "WELCOME")
    assert "WELCOME" in (legacy_service / LEGACY_BASE_DIR / HANDLER).read_text()
    commit_all(legacy_service, "rename GREETING")

    result = fleece("update", str(legacy_service), "--template", str(V2))
    check = fleece("check", str(legacy_service), "--template", str(V2))

    assert result.code == 2
    assert (
        f"Error: .fleece/base/: the pristine render in .fleece/base/ changed after "
        f"the last update (commit {rendered}"
    ) in result.stderr
    assert f"`git checkout {rendered} -- .fleece/base`" in result.stderr
    assert check.code == 1
    assert check.stdout.startswith(
        ".fleece/base/: the pristine render in .fleece/base/"
    )


def test_restoring_the_plain_base_as_told_lets_the_rename_survive(
    legacy_service: Path, fleece: FleeceCli
) -> None:
    rendered = git(legacy_service, "log", "-1", "--format=%h").strip()
    _rename_across_the_project(legacy_service, "GREETING", "WELCOME")
    commit_all(legacy_service, "rename GREETING")

    git(legacy_service, "checkout", rendered, "--", LEGACY_BASE_DIR)
    commit_all(legacy_service, "restore the pristine base")
    result = fleece("update", str(legacy_service), "--template", str(V2))

    assert result.code == 0, result.stderr
    handler = (legacy_service / HANDLER).read_text()
    assert "GREETING" not in handler and handler.count("WELCOME") == 2
