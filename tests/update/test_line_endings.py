"""Line endings as git sees them: a Windows clone updates like any other.

With ``core.autocrlf=true`` (or ``eol=crlf`` in .gitattributes) the working tree
holds CRLF where the repository and fleece's render hold LF.
"""

from pathlib import Path

import pytest

from fleece.service.eol import (
    ALWAYS,
    AUTO,
    NEVER,
    UNSET,
    LineEndings,
    to_repository,
    to_worktree,
)
from fleece.service.layout import RUNTIME_MODULE
from fleece.service.new import NewService, create_service

from .scenario import V1, V2, FleeceCli, commit_all, git, read_tree

HANDLER = "src/demo/handler.py"
USER_LINE = "\r\n\r\nMINE = True  # one line of the user's\r\n"


def _windows_clone(service: Path) -> Path:
    clone = service.parent / "windows"
    git(
        service.parent,
        "clone",
        "--quiet",
        "-c",
        "core.autocrlf=true",
        str(service),
        str(clone),
    )
    return clone


@pytest.fixture
def current_service(tmp_path: Path) -> Path:
    """A service fresh from this fleece (template v1), committed."""
    service = tmp_path / "demo"
    create_service(
        NewService(name="demo", destination=service, template=str(V1), defaults=True)
    )
    return service


@pytest.mark.parametrize(
    ("rule", "worktree", "repository"),
    [
        (LineEndings(AUTO, crlf=True), b"a\r\nb\r\n", b"a\nb\n"),
        (LineEndings(AUTO, crlf=True), b"a\rb\r\n", b"a\rb\r\n"),  # lone CR: binary
        (LineEndings(ALWAYS, crlf=True), b"a\r\nb\n", b"a\nb\n"),
        (LineEndings(NEVER), b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (LineEndings(UNSET), b"a\r\nb\r\n", b"a\nb\n"),  # CRLF throughout
        (LineEndings(UNSET), b"a\r\nb\n", b"a\r\nb\n"),  # mixed: as git stores it
        (LineEndings(AUTO, crlf=True), b"\0a\r\n", b"\0a\r\n"),
    ],
)
def test_the_repository_form_follows_git(
    rule: LineEndings, worktree: bytes, repository: bytes
) -> None:
    assert to_repository(worktree, rule) == repository


def test_a_file_keeps_its_line_endings_and_a_new_one_gets_checkouts() -> None:
    crlf = LineEndings(AUTO, crlf=True)

    assert to_worktree(b"a\nb\n", LineEndings(), b"x\r\n") == b"a\r\nb\r\n"
    assert to_worktree(b"a\nb\n", crlf, b"x\n") == b"a\nb\n"
    assert to_worktree(b"a\nb\n", crlf, None) == b"a\r\nb\r\n"
    assert to_worktree(b"a\nb\n", LineEndings(UNSET), None) == b"a\nb\n"


def test_a_fresh_windows_clone_is_current(
    current_service: Path, fleece: FleeceCli
) -> None:
    clone = _windows_clone(current_service)
    assert b"\r\n" in (clone / RUNTIME_MODULE).read_bytes()
    before = read_tree(clone)

    check = fleece("check", str(clone), "--template", str(V1))
    update = fleece("update", str(clone), "--template", str(V1))

    assert check.code == 0, check.stdout
    assert update.code == 0 and "nothing to change" in update.stdout, update.stdout
    assert read_tree(clone) == before


def test_a_one_line_edit_in_a_windows_clone_merges_cleanly(
    old_service: Path, fleece: FleeceCli
) -> None:
    clone = _windows_clone(old_service)
    with (clone / HANDLER).open("ab") as handler:
        handler.write(USER_LINE.encode())
    commit_all(clone, "one line")

    result = fleece("update", str(clone), "--template", str(V2))

    assert result.code == 0, result.stdout + result.stderr
    data = (clone / HANDLER).read_bytes()
    assert data.endswith(USER_LINE.encode())
    assert b"it answers every event in JSON." in data
    assert data.count(b"\n") == data.count(b"\r\n"), "mixed line endings"
    diff = git(clone, "diff", "--stat", "--", HANDLER)
    assert "1 insertion(+), 1 deletion(-)" in diff
    created = (clone / "events/sqs.json").read_bytes()
    assert created.count(b"\n") == created.count(b"\r\n") > 0
    commit_all(clone, "update")
    assert fleece("check", str(clone), "--template", str(V2)).code == 0


def test_gitattributes_eol_crlf_is_honoured(
    old_service: Path, fleece: FleeceCli
) -> None:
    (old_service / ".gitattributes").write_text("*.yaml text eol=crlf\n")
    git(old_service, "add", ".gitattributes")
    git(old_service, "rm", "--cached", "--quiet", "template.yaml")
    git(old_service, "add", "template.yaml")
    (old_service / "template.yaml").unlink()
    git(old_service, "checkout", "--", "template.yaml")
    sam = old_service / "template.yaml"
    sam.write_bytes(sam.read_bytes().replace(b"Timeout: 30", b"Timeout: 90"))
    commit_all(old_service, "SAM template with CRLF")
    assert b"\r\n" in sam.read_bytes()

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 0, result.stdout + result.stderr
    data = sam.read_bytes()
    assert b"Timeout: 90\r\n" in data and b"Runtime: python3.13\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n")
