"""`fleece config edit`: the open format in an editor, then imported back.

The plaintext lives in a private temp folder (mode 0700, the file 0600):

- it is removed when the edit ends: imported, unchanged, abandoned, or the
  editor exited with an error (``:cq`` in vi);
- on SIGHUP (terminal closed), SIGINT, SIGQUIT and SIGTERM it is removed
  before fleece exits, whatever fleece was doing;
- when the import fails after the editor closed for any other reason (KMS or
  credentials down, an expired SSO session), the user's work is kept there and
  the error names the file and the command that resumes the edit. When the
  text itself does not import, the user may re-open the editor on it, abandon
  it, or (no answer on stdin) keep it the same way.
"""

import os
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Literal

from fleece.config.formats import decode_text
from fleece.config.operations import (
    ConfigRun,
    ImportResult,
    export_config,
    import_config,
    skeleton,
)
from fleece.errors import BadInput, FleeceError

__all__ = ["Answer", "edit_config", "editor_command"]

Answer = Literal["reopen", "abandon", "keep"]

_EDITOR_VARIABLES = ("FLEECE_EDITOR", "VISUAL", "EDITOR")
_FOLDER_PREFIX = "fleece-config-"
# Signals that end fleece; each removes the plaintext first. SIGINT raises
# KeyboardInterrupt on its own.
_ENDING = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM)


def editor_command(option: str | None = None) -> list[str]:
    """The editor to run: ``--editor``, then $FLEECE_EDITOR, $VISUAL, $EDITOR, vi.

    The command is split like a shell would (``"code --wait"``) but never runs
    through one.
    """
    for value in (option, *(os.environ.get(name) for name in _EDITOR_VARIABLES)):
        if value and value.strip():
            try:
                return shlex.split(value)
            except ValueError as error:
                raise BadInput(
                    f"cannot parse editor command {value!r}: {error}"
                ) from None
    return ["vi"]


def edit_config(
    run: ConfigRun,
    editor: list[str],
    as_json: bool,
    ask: Callable[[str], Answer],
    resume: Path | None = None,
) -> ImportResult:
    """Open the config in ``editor`` and import the result.

    ``ask(message)`` is asked, when the edited text does not import, what to
    do: re-open the editor, abandon the edit (BadInput, nothing written), or
    keep the text for later. ``resume`` is a file an earlier edit kept: the
    editor opens on it instead of on config.yml.
    """
    with _removed_on_signals():
        original: str | None = None  # a kept edit is the user's work: import it
        if resume is None:
            exists = run.config.exists()
            original = export_config(run, as_json) if exists else skeleton(as_json)
            draft = _Draft.new("json" if as_json else "yml", original)
        else:
            draft = _Draft.kept_at(resume)
        with draft:
            while True:
                try:
                    _run_editor(editor, draft.path)
                except FleeceError as error:
                    if resume is not None:  # the work predates this run: keep it
                        raise draft.keep(error) from None
                    raise
                try:
                    edited = draft.read()
                    if edited == original:
                        return ImportResult(changed=False)
                    return import_config(run, edited, source="your edit")
                except BadInput as error:
                    answer = ask(str(error))
                    if answer == "reopen":
                        continue
                    if answer == "keep":
                        raise draft.keep(error) from None
                    raise BadInput(
                        f"edit abandoned: {error}; {run.config} was not changed"
                    ) from None
                except Exception as error:
                    raise draft.keep(error) from error


class _Draft:
    """The private file holding an edit's plaintext; removed on leaving its
    ``with`` block unless ``keep`` was called."""

    def __init__(self, path: Path, text: str | None) -> None:
        self.path = path
        self._text = text  # None: the file exists already (a kept edit)
        self._kept = False

    @classmethod
    def new(cls, suffix: str, text: str) -> "_Draft":
        """A draft holding ``text``, made when its ``with`` block starts."""
        return cls(Path(f"config.{suffix}"), text)

    @classmethod
    def kept_at(cls, path: Path) -> "_Draft":
        """The draft an earlier edit kept at ``path``."""
        try:
            info = path.stat()
        except OSError:
            raise BadInput(f"{path}: no such file to resume") from None
        private = stat.S_ISREG(info.st_mode) and not info.st_mode & 0o077
        if not private or not path.parent.name.startswith(_FOLDER_PREFIX):
            raise BadInput(
                f"{path} is not an edit fleece kept (a private file in a "
                f"{_FOLDER_PREFIX}* folder)"
            )
        return cls(path.resolve(), None)

    def __enter__(self) -> "_Draft":
        if self._text is not None:
            folder = Path(tempfile.mkdtemp(prefix=_FOLDER_PREFIX))  # mode 0700
            self.path = folder / self.path.name
            try:
                descriptor = os.open(
                    self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
                )
                with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                    handle.write(self._text)
            except BaseException:
                _remove(folder)
                raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._kept:
            _remove(self.path.parent)

    def read(self) -> str:
        """The draft's text as the editor left it."""
        return decode_text(self.path.read_bytes(), "your edit")

    def keep(self, error: Exception) -> FleeceError:
        """Keep the draft; the error to raise, saying where it is."""
        self._kept = True
        reason = str(error) if isinstance(error, FleeceError) else type(error).__name__
        kept = (
            f"{reason}; your edit is kept in {self.path} (only you can read it): "
            f"resume it with `fleece config edit --resume {self.path}`, or delete "
            f"it with `rm -r {self.path.parent}`"
        )
        return BadInput(kept) if isinstance(error, BadInput) else FleeceError(kept)


def _remove(folder: Path) -> None:
    # A second signal must not interrupt the removal it is waiting for.
    in_main = threading.current_thread() is threading.main_thread()
    blocked = {*_ENDING, signal.SIGINT}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked) if in_main else None
    try:
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        if previous is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def _removed_on_signals() -> Iterator[None]:
    """Turn the signals that end fleece into SystemExit, so ``with`` blocks
    (the draft's removal) run before it exits."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {number: signal.signal(number, stop) for number in _ENDING}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _run_editor(editor: list[str], file: Path) -> None:
    # Ctrl-C belongs to the editor while it runs (vi cancels a command with
    # it), as with git. A Python handler, unlike SIG_IGN, is not inherited.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _ignore) if in_main else None
    try:
        result = subprocess.run([*editor, str(file)], check=False)
    except FileNotFoundError:
        raise FleeceError(
            f"editor {editor[0]!r} not found; use --editor or set FLEECE_EDITOR, "
            "VISUAL or EDITOR"
        ) from None
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
    if result.returncode != 0:
        raise FleeceError(
            f"the editor exited with status {result.returncode}; "
            "the config was not changed"
        )


def _ignore(signum: int, frame: FrameType | None) -> None:
    pass
