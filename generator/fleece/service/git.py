"""Running git: the one place fleece calls it."""

import subprocess
from pathlib import Path

from fleece.errors import FleeceError


def git(
    root: Path, *args: str, check: bool = True, input: str | None = None
) -> "subprocess.CompletedProcess[str]":
    """Run ``git ARGS`` in ``root`` (``input`` on its stdin).

    With ``check``, a failure is a FleeceError; without git, always.
    """
    try:
        result = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, input=input
        )
    except FileNotFoundError:
        raise FleeceError("git is not installed: fleece needs it here") from None
    if check and result.returncode != 0:
        command = next((a for a in args if not a.startswith("-")), "")
        raise FleeceError(f"git {command} failed: {result.stderr.strip()}")
    return result
