"""`fleece config edit` with scripted editors: the plaintext never outlives it."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.config.conftest import OPEN_CONFIG, run

EDITOR = """\
import os, pathlib, sys
path = pathlib.Path(sys.argv[-1])
log = pathlib.Path(os.environ["EDIT_LOG"])
log.write_text(log.read_text() + f"{oct(path.stat().st_mode & 0o777)} {oct(path.parent.stat().st_mode & 0o777)} {path}\\n")
mode = sys.argv[1]
text = path.read_text()
if mode == "change":
    path.write_text(text.replace("foo: bar", "foo: edited"))
elif mode == "fail":
    sys.exit(3)
elif mode == "invalid":
    path.write_text(text.replace("foo: bar", "foo: :encrypt:typed-secret"))
elif mode == "invalid-then-fix":
    if "typed-secret" in text:
        path.write_text(text.replace("foo: :encrypt:typed-secret", "foo: fixed"))
    else:
        path.write_text(text.replace("foo: bar", "foo: :encrypt:typed-secret"))
"""


@pytest.fixture
def editor(imported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The scripted editor; plaintext files it sees are logged to EDIT_LOG."""
    script = tmp_path / "editor.py"
    script.write_text(EDITOR)
    log = tmp_path / "edit.log"
    log.write_text("")
    monkeypatch.setenv("EDIT_LOG", str(log))
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    return script


def seen_files(tmp_path: Path) -> list[list[str]]:
    return [
        line.split(" ", 2) for line in (tmp_path / "edit.log").read_text().splitlines()
    ]


def leftovers(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "temp").iterdir())


def test_edit_imports_the_edited_text_from_a_private_file(
    imported: Path, editor: Path, tmp_path: Path
) -> None:
    result = run("config", "edit", "--editor", f"{sys.executable} {editor} change")
    assert result.exit_code == 0, result.stderr
    export = yaml.safe_load(run("config", "export").stdout)
    assert export["config"]["foo"] == "edited"
    assert export["config"]["password"]["+prod"] == ":encrypt:prod-password"
    [[file_mode, dir_mode, path]] = seen_files(tmp_path)
    assert (file_mode, dir_mode) == ("0o600", "0o700")
    assert Path(path).parent.parent == tmp_path / "temp"
    assert leftovers(tmp_path) == []


def test_the_editor_comes_from_fleece_editor_without_a_shell(
    imported: Path, editor: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEECE_EDITOR", f"{sys.executable} {editor} change")
    monkeypatch.setenv("VISUAL", "false")
    assert run("config", "edit").exit_code == 0
    assert "foo: edited" in run("config", "export").stdout


def test_a_failing_editor_changes_nothing_and_leaves_no_file(
    imported: Path, editor: Path, tmp_path: Path
) -> None:
    before = (imported / "config.yml").read_bytes()
    result = run("config", "edit", "--editor", f"{sys.executable} {editor} fail")
    assert result.exit_code == 1
    assert "the editor exited with status 3" in result.stderr
    assert (imported / "config.yml").read_bytes() == before
    assert leftovers(tmp_path) == []


def test_invalid_text_can_be_abandoned_without_leaking_it(
    imported: Path, editor: Path, tmp_path: Path
) -> None:
    before = (imported / "config.yml").read_bytes()
    result = run(
        "config", "edit", "--editor", f"{sys.executable} {editor} invalid", stdin="n\n"
    )
    assert result.exit_code == 2
    assert (
        "config.foo: :encrypt: is only allowed inside a per-stage value"
        in result.stderr
    )
    assert "typed-secret" not in result.stderr + result.stdout
    assert (imported / "config.yml").read_bytes() == before
    assert leftovers(tmp_path) == []


def test_invalid_text_can_be_reopened_with_the_users_changes(
    imported: Path, editor: Path, tmp_path: Path
) -> None:
    command = f"{sys.executable} {editor} invalid-then-fix"
    result = run("config", "edit", "--editor", command, stdin="y\n")
    assert result.exit_code == 0, result.stderr
    assert len(seen_files(tmp_path)) == 2  # the same file, opened twice
    assert seen_files(tmp_path)[0][2] == seen_files(tmp_path)[1][2]
    assert "foo: fixed" in run("config", "export").stdout
    assert leftovers(tmp_path) == []


def test_ctrl_c_at_the_prompt_removes_the_plaintext(
    imported: Path, editor: Path, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleece",
            "config",
            "edit",
            "--editor",
            f"{sys.executable} {editor} invalid",
        ],
        cwd=imported,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path / "temp")},
    )
    deadline = time.monotonic() + 60
    while not seen_files(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the import fails and the prompt waits on stdin
    assert process.poll() is None
    assert leftovers(tmp_path) != []
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "typed-secret" not in stderr
    assert leftovers(tmp_path) == []


def test_an_unchanged_edit_writes_nothing(imported: Path, tmp_path: Path) -> None:
    before = (imported / "config.yml").stat().st_mtime_ns
    result = run("config", "edit", "--editor", "true")
    assert result.exit_code == 0
    assert (imported / "config.yml").stat().st_mtime_ns == before


def test_edit_without_config_yml_starts_from_a_skeleton(
    service: Path, editor: Path, tmp_path: Path
) -> None:
    script = tmp_path / "write.py"
    script.write_text(
        "import pathlib, sys\n"
        f"pathlib.Path(sys.argv[-1]).write_text({OPEN_CONFIG!r})\n"
    )
    assert (
        run("config", "edit", "--editor", f"{sys.executable} {script}").exit_code == 0
    )
    assert yaml.safe_load(run("config", "export").stdout) == yaml.safe_load(OPEN_CONFIG)


def test_invalid_text_with_no_answer_on_stdin_is_abandoned_with_exit_2(
    imported: Path, editor: Path, tmp_path: Path
) -> None:
    before = (imported / "config.yml").read_bytes()

    result = run(
        "config", "edit", "--editor", f"{sys.executable} {editor} invalid", stdin=""
    )

    assert result.exit_code == 2
    assert "edit abandoned" in result.stderr
    assert (imported / "config.yml").read_bytes() == before
    assert leftovers(tmp_path) == []
