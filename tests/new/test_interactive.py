"""On a terminal, `fleece new` asks its questions."""

import os
import pty
import select
import sys
import time
from pathlib import Path

import yaml


def test_questions_are_asked_on_a_terminal_and_answers_recorded(tmp_path: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: fleece on the terminal's slave side
        os.chdir(tmp_path)
        os.execv(
            sys.executable,
            [sys.executable, "-m", "fleece", "new", "tty-demo", "--no-git"],
        )
    screen = b""
    typed = {b"Lambda architecture": b"\x1b[B\r"}  # arrow down: arm64
    answered: set[bytes] = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if not ready:
            # The prompt waits: answer the question on screen, or take its default.
            prompt = next((q for q in typed if q in screen and q not in answered), None)
            os.write(fd, typed[prompt] if prompt else b"\r")
            if prompt:
                answered.add(prompt)
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    _, status = os.waitpid(pid, 0)

    assert os.waitstatus_to_exitcode(status) == 0, screen.decode(errors="replace")[
        -2000:
    ]
    assert b"Lambda Python runtime" in screen
    answers = yaml.safe_load((tmp_path / "tty-demo/.fleece/answers.yml").read_text())
    assert answers["architecture"] == "arm64"
    assert answers["python_runtime"] == "python3.12"
