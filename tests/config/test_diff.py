"""`fleece config diff`: open-format changes against a git revision or a file."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.config.conftest import OPEN_CONFIG, run


@pytest.fixture
def committed(imported: Path) -> Path:
    """The imported service as a git repository with config.yml committed."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    for command in (["init", "-q"], ["add", "config.yml"], ["commit", "-qm", "config"]):
        subprocess.run(["git", *command], cwd=imported, check=True, env=env)
    return imported


def test_diff_shows_changed_values_and_hides_secrets(committed: Path) -> None:
    changed = OPEN_CONFIG.replace("foo: bar", "foo: baz").replace(
        ":encrypt:dev-password", ":encrypt:new-dev-password"
    )
    run("config", "import", stdin=changed)
    result = run("config", "diff")
    assert result.exit_code == 0, result.stderr
    assert "-  foo: bar\n+  foo: baz\n" in result.stdout
    assert (
        "-    +/.*/: :encrypt:<hidden>\n+    +/.*/: :encrypt:<hidden, changed>\n"
        in result.stdout
    )
    changed_lines = [
        line
        for line in result.stdout.splitlines()
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert len(changed_lines) == 4  # unchanged secrets are not part of the diff
    assert "dev-password" not in result.stdout


def test_diff_shows_secrets_only_when_asked(committed: Path) -> None:
    changed = OPEN_CONFIG.replace(":encrypt:dev-password", ":encrypt:new-dev-password")
    run("config", "import", stdin=changed)
    result = run("config", "diff", "HEAD", "--show-secrets")
    assert (
        "-    +/.*/: :encrypt:dev-password\n+    +/.*/: :encrypt:new-dev-password\n"
        in result.stdout
    )


def test_no_change_means_no_differences(committed: Path) -> None:
    assert run("config", "diff").stdout == "No differences.\n"


def test_diff_against_a_file(imported: Path, tmp_path: Path) -> None:
    other = tmp_path / "old.yml"
    other.write_text(OPEN_CONFIG.replace("port: 8080", "port: 80"))
    result = run("config", "diff", str(other))
    assert "-  port: 80\n+  port: 8080\n" in result.stdout


def test_diff_against_an_unknown_revision_exits_2(committed: Path) -> None:
    result = run("config", "diff", "no-such-rev")
    assert result.exit_code == 2
    assert "neither a file nor a git revision" in result.stderr
