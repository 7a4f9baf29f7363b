"""On a terminal, `fleece new` asks its questions."""

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import yaml


def test_questions_are_asked_on_a_terminal_and_answers_recorded(tmp_path: Path) -> None:
    # fleece on the slave side of a new terminal. subprocess, not pty.fork():
    # forking a process that runs threads (the test session's servers) is unsafe.
    fd, terminal = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "fleece", "new", "tty-demo", "--no-git"],
        cwd=tmp_path,
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,
    )
    os.close(terminal)
    screen = b""
    answered_at = -1  # length of the screen when we last typed
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.3)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child exited and closed the terminal
                break
            if not chunk:
                break
            screen += chunk
            continue
        # prompt_toolkit turns bracketed paste on while a prompt waits for keys
        # and off once it is answered: type only into a waiting prompt.
        waiting = screen.rfind(b"\x1b[?2004h") > screen.rfind(b"\x1b[?2004l")
        if answered_at == len(screen) or not waiting:
            continue
        # The prompt on screen waits: pick arm64 (arrow down), else the default.
        current = screen.rsplit("🎤".encode(), 1)[-1]
        os.write(fd, b"\x1b[B\r" if b"Lambda architecture" in current else b"\r")
        answered_at = len(screen)
    returncode = child.wait(timeout=60)
    os.close(fd)

    assert returncode == 0, screen.decode(errors="replace")[-2000:]
    assert b"Lambda Python runtime" in screen
    answers = yaml.safe_load((tmp_path / "tty-demo/.fleece/answers.yml").read_text())
    assert answers["architecture"] == "arm64"
    assert answers["python_runtime"] == "python3.12"
