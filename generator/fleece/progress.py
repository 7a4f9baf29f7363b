"""Progress of slow steps on a terminal: one status line, rewritten in place.

When stderr is not a terminal (CI logs, pipes) nothing is printed: the command's
summary line is all its output.
"""

import shutil
import sys
import time
from types import TracebackType
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Shows which step runs, its latest detail, and how long each step took."""

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self._step: str | None = None
        self._started = 0.0

    @classmethod
    def on_terminal(cls) -> "Progress":
        """Progress on stderr when it is a terminal, else a quiet one."""
        return cls(sys.stderr if sys.stderr.isatty() else None)

    @classmethod
    def quiet(cls) -> "Progress":
        return cls(None)

    def begin(self, step: str) -> None:
        """Finish the current step (if another) and start ``step``."""
        if step == self._step:
            return
        self.end()
        self._step = step
        self._started = time.monotonic()
        self._status(f"{step}...")

    def detail(self, text: str) -> None:
        """Show the latest thing the current step did."""
        if self._step is not None:
            self._status(f"{self._step}: {text.strip()}")

    def end(self) -> None:
        """Finish the current step: its line stays, with its duration."""
        if self._step is None:
            return
        elapsed = time.monotonic() - self._started
        self._status(f"{self._step} done ({elapsed:.1f}s)")
        if self._stream is not None:
            self._stream.write("\n")
            self._stream.flush()
        self._step = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """On an error, leave the unfinished status line, so that the error
        message starts on a line of its own."""
        if error_type is not None and self._step is not None:
            self._step = None
            if self._stream is not None:
                self._stream.write("\n")
                self._stream.flush()

    def _status(self, text: str) -> None:
        if self._stream is None:
            return
        width = shutil.get_terminal_size((80, 20)).columns - 1
        line = text if len(text) <= width else text[: max(width - 3, 0)] + "..."
        self._stream.write("\r\x1b[2K" + line)
        self._stream.flush()
