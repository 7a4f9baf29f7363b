"""Signals and kills: what they may leave behind, and how fleece keeps it to nothing.

- ``scratch_dir(kind)``: a private temp folder, ``fleece-<kind>-<pid>-*``,
  removed on every exit the process lives to see. A process killed outright
  (SIGKILL) cannot clean up; the next fleece run removes the folders whose
  process is gone (``remove_stale_scratch``).
- ``interruptible()``: SIGTERM and SIGHUP raise ``KeyboardInterrupt``, as
  Ctrl-C does, so the cleanups of a command run whichever way it is stopped.
- ``signals_deferred(done)``: while update writes a service, INT, TERM and HUP
  wait until the writing is done (a few milliseconds), then stop the command
  with ``Interrupted`` (exit 128 + the signal), saying ``done``. A signal never
  leaves a service half-written; only a kill can, and the update journal covers
  that.
"""

import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from fleece.errors import FleeceError

__all__ = [
    "Interrupted",
    "interruptible",
    "remove_stale_scratch",
    "scratch_dir",
    "signals_deferred",
]

_SCRATCH = re.compile(r"fleece-[a-z]+-(?P<pid>[0-9]+)-")


class Interrupted(FleeceError):
    """A signal arrived while fleece was writing; it stopped once the writing was done."""

    def __init__(self, signum: int, done: str) -> None:
        super().__init__(f"{signal.Signals(signum).name} received: {done}")
        self.exit_code = 128 + signum


@contextmanager
def scratch_dir(kind: str) -> Iterator[Path]:
    """A private temp folder for one step (``kind``: render, merge), removed after it."""
    with tempfile.TemporaryDirectory(prefix=f"fleece-{kind}-{os.getpid()}-") as path:
        yield Path(path)


def remove_stale_scratch() -> None:
    """Remove the scratch folders of fleece processes that were killed."""
    if os.name != "posix":
        return  # os.kill(pid, 0) would end the process on Windows
    folder = Path(tempfile.gettempdir())
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        match = _SCRATCH.match(entry.name)
        if match is None or _alive(int(match["pid"])):
            continue
        try:
            if entry.is_dir() and entry.stat().st_uid == os.getuid():
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


@contextmanager
def interruptible() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt while the block runs."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    with _handling(interrupt, _TERMINATING):
        yield


@contextmanager
def signals_deferred(done: str) -> Iterator[None]:
    """INT, TERM and HUP wait until the block is done, then raise Interrupted(done)."""
    received: list[int] = []

    def remember(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    with _handling(remember, (signal.SIGINT, *_TERMINATING)):
        yield
    if received:
        raise Interrupted(received[0], done)


_TERMINATING = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextmanager
def _handling(
    handler: Callable[[int, FrameType | None], None], signals: tuple[int, ...]
) -> Iterator[None]:
    # Python lets only the main thread set handlers; elsewhere, leave them be.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
