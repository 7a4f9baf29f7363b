"""What ``fleece check`` reports and ``fleece update`` refuses on: findings and their kinds.

A finding is one thing about a service that is not current, with its kind (a
stable name, documented in docs/update.md and given by ``fleece check --json``)
and whether update refuses while it stands. Every kind is listed in ``KINDS``;
a test keeps that list and the documentation in step.
"""

from dataclasses import dataclass

from fleece.service.worktree import Location

__all__ = [
    "CHECK_SCHEMA_VERSION",
    "KINDS",
    "Finding",
    "finding",
    "outside_finding",
]

# The version of `fleece check --json`'s layout; raised when a field changes meaning.
CHECK_SCHEMA_VERSION = 1

# Every finding kind -> whether update refuses while it stands. docs/update.md
# documents each one (a test keeps the two in step).
KINDS = {
    "update-interrupted": False,
    "answers-missing": True,
    "answers-invalid": True,
    "answer-retired": True,
    "template-unknown": True,
    "fleece-outdated": True,
    "template-outdated": True,
    "base-missing": True,
    "base-edited": True,
    "conflict": True,
    "obstacle": True,
    "runtime-edited": True,
    "config-stub-edited": True,
    "runtime-missing": False,
    "runtime-stale": False,
    "update-pending": False,
    "config-missing": False,
    "config-edited": False,
    "config-stale": False,
}


@dataclass(frozen=True)
class Finding:
    """One thing about a service that is not current, relative to its root."""

    path: str
    kind: str
    message: str
    # Update refuses while it stands (the run's options may lift it).
    blocking: bool = False

    def line(self) -> str:
        """``<path>: <what> (<what to do>)``."""
        return f"{self.path}: {self.message}"


def finding(path: str, kind: str, message: str, *, lifted: bool = False) -> Finding:
    """A finding of ``kind``; ``lifted``: the run's options allow update past it."""
    return Finding(path, kind, message, blocking=KINDS[kind] and not lifted)


def outside_finding(location: Location) -> Finding:
    """A write through a link that leads out of the service: never made."""
    return finding(
        location.path,
        "obstacle",
        f"{location.link} leads outside the service ({location.real}), where "
        "update never writes (make it a folder or file of the service)",
    )
