"""Kills at any moment: the next `fleece update` completes the update (or rolls it back).

The update runs in a real process (``paused_fleece.py``) that reports every
change it makes to the service's files and waits; the test kills it with a
real signal at each of those moments, and at random moments of a run that does
not pause. Afterwards the service is either as before, or holds the journal of
the interrupted update, and one more `fleece update` gives exactly the files of
an update that was never interrupted. No temp file or folder stays behind.
"""

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleece.service.layout import JOURNAL_FILE

from .scenario import (
    V2,
    FleeceCli,
    append,
    commit_all,
    edit,
    git,
    old_tree,
    read_tree,
    write_service,
)

PAUSED_FLEECE = Path(__file__).with_name("paused_fleece.py")
HANDLER = "src/demo/handler.py"
_UPDATE = ("update", "--template", str(V2))


@dataclass(frozen=True)
class Killed:
    """How a killed update ended: the steps it reported, its exit status."""

    steps: list[str]
    returncode: int


def _service(root: Path) -> Path:
    """The old v1 service with a user edit and a conflict to come, committed."""
    service = write_service(root, old_tree((("project_name", "demo"),)))
    append(service / HANDLER, "\n\nMINE = True\n")
    edit(service / "template.yaml", "Runtime: python3.12", "Runtime: python3.11")
    commit_all(service)
    return service


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A TMPDIR of this test's own, so that leftovers can be counted."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder


@pytest.fixture
def reference(tmp_path: Path, fleece: FleeceCli) -> dict[str, bytes]:
    """The files an uninterrupted update gives."""
    service = _service(tmp_path / "reference")
    result = fleece("update", str(service), "--template", str(V2))
    assert result.code == 1, result.stderr  # the conflict in template.yaml
    return read_tree(service)


def _run_paused(service: Path, kill_at: int | None, signum: int) -> Killed:
    """Update ``service`` step by step; send ``signum`` once step ``kill_at`` is done."""
    report_read, report_write = os.pipe()
    go_read, go_write = os.pipe()
    env = {**os.environ, "FLEECE_TEST_REPORT_FD": str(report_write)}
    env["FLEECE_TEST_GO_FD"] = str(go_read)
    process = subprocess.Popen(
        [sys.executable, str(PAUSED_FLEECE), str(service), *_UPDATE, str(service)],
        cwd=service.parent,
        env=env,
        pass_fds=(report_write, go_read),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(report_write)
    os.close(go_read)
    steps = []
    with os.fdopen(report_read) as report, os.fdopen(go_write, "wb", 0) as go:
        for line in report:
            steps.append(line.strip())
            if len(steps) == kill_at:
                process.send_signal(signum)
                if signum == signal.SIGKILL:
                    break
            try:
                go.write(b".")
            except BrokenPipeError:
                break
    return Killed(steps, process.wait(timeout=120))


def _fleece_leftovers(service: Path, scratch: Path) -> list[str]:
    temp_files = [p.name for p in service.rglob("*.tmp")]
    return temp_files + [
        p.name for p in scratch.iterdir() if p.name.startswith("fleece-")
    ]


def _complete_steps(tmp_path: Path) -> list[str]:
    service = _service(tmp_path / "counted")
    killed = _run_paused(service, None, signal.SIGKILL)
    assert killed.returncode == 1, killed  # the update leaves a conflict
    return killed.steps


def test_the_journal_is_written_first_and_removed_last(tmp_path: Path) -> None:
    steps = _complete_steps(tmp_path)

    assert steps[0] == f"replace {JOURNAL_FILE}"
    assert steps[-1] == f"unlink {JOURNAL_FILE}"
    fleece_dir = [i for i, step in enumerate(steps[1:-1]) if " .fleece/" in step]
    service_files = [i for i, step in enumerate(steps[1:-1]) if " .fleece/" not in step]
    assert max(service_files) < min(fleece_dir), steps


def test_a_kill_after_any_step_is_completed_by_the_next_update(
    tmp_path: Path,
    fleece: FleeceCli,
    reference: dict[str, bytes],
    scratch: Path,
) -> None:
    steps = _complete_steps(tmp_path)
    assert len(steps) >= 10, steps
    for kill_at in range(1, len(steps) + 1):
        service = _service(tmp_path / f"killed-{kill_at}")

        killed = _run_paused(service, kill_at, signal.SIGKILL)

        assert killed.returncode == -signal.SIGKILL
        interrupted = (service / JOURNAL_FILE).exists()
        assert interrupted == (kill_at < len(steps)), kill_at
        check = fleece("check", str(service), "--template", str(V2))
        if interrupted:
            assert check.stdout.startswith(f"{JOURNAL_FILE}: an update from fleece")
        result = fleece("update", str(service), "--template", str(V2))
        if interrupted:
            written = [s for s in steps[1:kill_at] if not s.startswith("rmdir ")]
            assert result.code == 0, result.stderr
            assert f"interrupted after writing {len(written)} of its" in result.stdout
            assert "completed it" in result.stdout
        assert read_tree(service) == reference, f"killed after step {kill_at}"
        assert _fleece_leftovers(service, scratch) == []


def test_abort_rolls_a_killed_update_back(
    tmp_path: Path, fleece: FleeceCli, scratch: Path
) -> None:
    service = _service(tmp_path / "killed")
    before = read_tree(service)
    steps = _complete_steps(tmp_path)

    killed = _run_paused(service, len(steps) // 2, signal.SIGKILL)
    result = fleece("update", str(service), "--abort")

    assert killed.returncode == -signal.SIGKILL
    assert result.code == 0, result.stderr
    assert "rolled it back: the service is as before it" in result.stdout
    assert read_tree(service) == before
    assert git(service, "status", "--porcelain") == ""
    assert _fleece_leftovers(service, scratch) == []


def test_a_terminating_signal_while_writing_waits_for_the_writes(
    tmp_path: Path, fleece: FleeceCli, reference: dict[str, bytes], scratch: Path
) -> None:
    service = _service(tmp_path / "terminated")

    killed = _run_paused(service, 3, signal.SIGTERM)

    assert killed.returncode == 128 + signal.SIGTERM
    assert not (service / JOURNAL_FILE).exists()
    assert read_tree(service) == reference
    assert _fleece_leftovers(service, scratch) == []


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_kills_at_random_moments_leave_nothing_the_next_update_cannot_finish(
    tmp_path: Path,
    fleece: FleeceCli,
    reference: dict[str, bytes],
    scratch: Path,
    signum: int,
) -> None:
    timed = _service(tmp_path / "timed")
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "fleece", "update", str(timed), "--template", str(V2)],
        capture_output=True,
        check=False,
    )
    duration = time.monotonic() - start
    seed = random.randrange(2**32)
    moments = random.Random(seed).sample(range(1000), 6)
    for number, moment in enumerate(sorted(moments)):
        service = _service(tmp_path / f"random-{number}")
        before = read_tree(service)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fleece",
                "update",
                str(service),
                "--template",
                str(V2),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(duration * moment / 1000)
        process.send_signal(signum)
        process.wait(timeout=120)

        where = f"seed {seed}, killed at {moment / 10}% of {duration:.2f} s"
        interrupted = (service / JOURNAL_FILE).exists()
        files = {p: d for p, d in read_tree(service).items() if not p.endswith(".tmp")}
        assert interrupted or files in (before, reference), where
        if files != reference:
            result = fleece("update", str(service), "--template", str(V2))
            assert result.code in (0, 1), f"{where}: {result.stderr}"
            assert ("interrupted after writing" in result.stdout) == interrupted, where
        check = fleece("check", str(service), "--template", str(V2), "--json")
        assert read_tree(service) == reference, where
        assert _fleece_leftovers(service, scratch) == [], where
        assert [f["kind"] for f in json.loads(check.stdout)["findings"]] == ["conflict"]
