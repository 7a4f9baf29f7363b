"""`fleece config edit` with scripted editors: the plaintext never outlives it,
except where the user's work would be lost: then it is kept, private."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.config.conftest import (
    OPEN_CONFIG,
    CountingProxy,
    run,
    sha256_of,
)

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
elif mode == "change-then-expire":  # the SSO session ends while the user types
    import urllib.request
    path.write_text(text.replace("foo: bar", "foo: edited"))
    urllib.request.urlopen(os.environ["FAIL_URL"], b"ExpiredTokenException").read()
elif mode == "sleep":
    import time
    time.sleep(120)
"""

SECRETS = ("prod-password", "dev-password", "bob-prod-pw", "bob-dev-pw")


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
    process = start_edit(imported, editor, "invalid", tmp_path, stdin=subprocess.PIPE)
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


def test_invalid_text_with_no_answer_on_stdin_is_kept_with_exit_2(
    imported: Path, editor: Path, tmp_path: Path
) -> None:
    before = (imported / "config.yml").read_bytes()

    result = run(
        "config", "edit", "--editor", f"{sys.executable} {editor} invalid", stdin=""
    )

    assert result.exit_code == 2
    [kept] = kept_files(tmp_path)
    assert "foo: :encrypt:typed-secret" in kept.read_text()
    assert f"fleece config edit --resume {kept}" in result.stderr
    assert "typed-secret" not in result.stderr
    assert (imported / "config.yml").read_bytes() == before


def kept_files(tmp_path: Path) -> list[Path]:
    """The files of the edit folders left in the temp folder."""
    return [file for folder in leftovers(tmp_path) for file in folder.iterdir()]


def test_edits_survive_credentials_that_expire_while_the_editor_runs(
    imported: Path,
    editor: Path,
    tmp_path: Path,
    kms_proxy: CountingProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAIL_URL", f"{kms_proxy.url}/fleece-test/fail")
    before = sha256_of(imported / "config.yml")
    command = f"{sys.executable} {editor} change-then-expire"

    result = run("config", "edit", "--editor", command)

    assert result.exit_code == 1
    assert "ExpiredTokenException" in result.stderr
    assert result.stderr.count("\n") == 1
    [kept] = kept_files(tmp_path)
    assert oct(kept.stat().st_mode & 0o777) == "0o600"
    assert oct(kept.parent.stat().st_mode & 0o777) == "0o700"
    assert "foo: edited" in kept.read_text()
    assert f"resume it with `fleece config edit --resume {kept}`" in result.stderr
    assert f"rm -r {kept.parent}" in result.stderr
    assert not any(secret in result.stderr for secret in SECRETS)
    assert sha256_of(imported / "config.yml") == before


def test_a_kept_edit_resumes_once_aws_answers_again(
    imported: Path,
    editor: Path,
    tmp_path: Path,
    kms_proxy: CountingProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAIL_URL", f"{kms_proxy.url}/fleece-test/fail")
    run("config", "edit", "--editor", f"{sys.executable} {editor} change-then-expire")
    [kept] = kept_files(tmp_path)
    kms_proxy.failing = None

    result = run("config", "edit", "--resume", str(kept), "--editor", "true")

    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load(run("config", "export").stdout)["config"]["foo"] == "edited"
    assert leftovers(tmp_path) == []


def test_a_kept_edit_survives_a_failing_resume(
    imported: Path,
    editor: Path,
    tmp_path: Path,
    kms_proxy: CountingProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAIL_URL", f"{kms_proxy.url}/fleece-test/fail")
    run("config", "edit", "--editor", f"{sys.executable} {editor} change-then-expire")
    [kept] = kept_files(tmp_path)

    result = run("config", "edit", "--resume", str(kept), "--editor", "true")

    assert result.exit_code == 1
    assert kept_files(tmp_path) == [kept]
    assert "foo: edited" in kept.read_text()


def test_resume_only_takes_a_private_file_fleece_kept(
    imported: Path, tmp_path: Path
) -> None:
    stray = tmp_path / "open.yml"
    stray.write_text(OPEN_CONFIG)

    result = run("config", "edit", "--resume", str(stray), "--editor", "true")

    assert result.exit_code == 2
    assert "is not an edit fleece kept" in result.stderr
    assert stray.exists()


def start_edit(
    service: Path,
    editor: Path,
    mode: str,
    tmp_path: Path,
    stdin: int = subprocess.DEVNULL,
    **env: str,
) -> subprocess.Popen[str]:
    """`fleece config edit` in its own process group, its editor in ``mode``."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleece",
            "config",
            "edit",
            "--editor",
            f"{sys.executable} {editor} {mode}",
        ],
        cwd=service,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path / "temp"), **env},
        start_new_session=True,
    )


def wait_for_the_editor(process: subprocess.Popen[str], tmp_path: Path) -> None:
    deadline = time.monotonic() + 60
    while not seen_files(tmp_path) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        time.sleep(0.05)
    assert leftovers(tmp_path) != []


def plaintext_anywhere(*roots: Path) -> list[Path]:
    """Files under ``roots`` that hold a secret in plain text."""
    return [
        path
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and any(s.encode() in path.read_bytes() for s in SECRETS)
    ]


@pytest.mark.parametrize(
    "signum",
    [signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM],
    ids=["SIGHUP", "SIGQUIT", "SIGTERM"],
)
def test_a_signal_while_the_editor_runs_removes_the_plaintext(
    imported: Path, editor: Path, tmp_path: Path, signum: int
) -> None:
    process = start_edit(imported, editor, "sleep", tmp_path)
    wait_for_the_editor(process, tmp_path)

    process.send_signal(signum)
    process.communicate(timeout=60)

    assert process.returncode == 128 + signum
    assert leftovers(tmp_path) == []
    assert plaintext_anywhere(tmp_path / "temp", imported) == []


def test_ctrl_c_on_the_terminal_while_the_editor_runs_removes_the_plaintext(
    imported: Path, editor: Path, tmp_path: Path
) -> None:
    process = start_edit(imported, editor, "sleep", tmp_path)
    wait_for_the_editor(process, tmp_path)

    os.killpg(process.pid, signal.SIGINT)  # the terminal signals the whole group
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 1
    assert "the editor exited with status" in stderr
    assert leftovers(tmp_path) == []
    assert plaintext_anywhere(tmp_path / "temp", imported) == []


@pytest.mark.parametrize(
    ("signum", "status"),
    [(signal.SIGHUP, 128 + signal.SIGHUP), (signal.SIGINT, 1)],  # click: "Aborted."
    ids=["SIGHUP", "SIGINT"],
)
def test_a_signal_during_the_import_removes_the_plaintext(
    imported: Path, editor: Path, tmp_path: Path, aws: str, signum: int, status: int
) -> None:
    with CountingProxy(aws, delay=2.0) as slow:
        process = start_edit(
            imported, editor, "change", tmp_path, AWS_ENDPOINT_URL=slow.url
        )
        wait_for_the_editor(process, tmp_path)
        time.sleep(0.5)  # the editor has closed; KMS is taking its time
        assert leftovers(tmp_path) != []

        process.send_signal(signum)
        process.communicate(timeout=60)

    assert process.returncode == status
    assert leftovers(tmp_path) == []
    assert plaintext_anywhere(tmp_path / "temp", imported) == []
