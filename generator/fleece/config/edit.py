"""`fleece config edit`: the open format in an editor, then imported back.

The plaintext lives in a private temp directory (mode 0700, the file 0600),
which is removed on every way out: success, a failing editor, Ctrl-C, SIGTERM,
or content that does not import. When the edited text does not import, the
user sees why and may re-open the editor on their own text, or give up.
"""

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from fleece.config.operations import (
    ConfigPaths,
    ImportResult,
    export_config,
    import_config,
    skeleton,
)
from fleece.errors import BadInput, FleeceError

__all__ = ["edit_config", "editor_command"]

_EDITOR_VARIABLES = ("FLEECE_EDITOR", "VISUAL", "EDITOR")


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
    paths: ConfigPaths,
    editor: list[str],
    as_json: bool,
    retry: Callable[[str], bool],
) -> ImportResult:
    """Open the config in ``editor`` and import the result.

    ``retry(message)`` is asked, when the edited text does not import, whether
    to re-open the editor; False abandons the edit (BadInput, nothing written).
    """
    if paths.config.exists():
        original = export_config(paths, as_json)
    else:
        original = skeleton(as_json)
    with _terminate_cleanly(), _private_file("json" if as_json else "yml") as file:
        file.write_text(original, encoding="utf-8")
        while True:
            _run_editor(editor, file)
            edited = file.read_text(encoding="utf-8")
            if edited == original:
                return ImportResult(changed=False)
            try:
                return import_config(paths, edited, source="your edit")
            except BadInput as error:
                if not retry(str(error)):
                    raise BadInput(
                        f"edit abandoned: {error}; {paths.config} was not changed"
                    ) from None


@contextmanager
def _private_file(suffix: str) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="fleece-config-"))  # mode 0700
    try:
        path = folder / f"config.{suffix}"
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _terminate_cleanly() -> Iterator[None]:
    """Turn SIGTERM into SystemExit, so the temp folder is still removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
