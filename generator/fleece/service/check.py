"""``fleece check``: tell CI whether a service is current, in update's own words.

Read-only and offline. The findings are those of ``fleece.service.state.assess``,
the function ``fleece update`` acts on, so check and update always agree: check
passes exactly when update has nothing to change and nothing in its way (config
modules aside, which ``fleece config`` renders). docs/update.md lists every
finding kind.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleece.service.findings import CHECK_SCHEMA_VERSION, Finding
from fleece.service.interrupts import interruptible, remove_stale_scratch
from fleece.service.state import Options, assess

__all__ = ["CheckResult", "check_service"]


@dataclass(frozen=True)
class CheckResult:
    """All findings for one service; ``ok`` when there are none."""

    path: Path
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        """True when the service is current."""
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` report (layout documented in docs/update.md)."""
        return {
            "schema_version": CHECK_SCHEMA_VERSION,
            "ok": self.ok,
            "findings": [
                {
                    "path": f.path,
                    "kind": f.kind,
                    "message": f.message,
                    "blocks_update": f.blocking,
                }
                for f in self.findings
            ],
        }


def check_service(path: Path, template: str | None = None) -> CheckResult:
    """Assess the service at ``path`` (rendered from ``template`` if given)."""
    with interruptible():
        remove_stale_scratch()
        state = assess(path, Options(template=template))
    return CheckResult(state.root, state.findings)
