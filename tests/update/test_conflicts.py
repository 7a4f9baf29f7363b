"""Conflict markers: only the blocks an update wrote, until they are resolved.

A README may show conflict markers in a fenced example; that never blocks an
update nor fails `fleece check`.
"""

from pathlib import Path

from fleece import __version__
from fleece.service.layout import CONFLICTS_FILE

from .scenario import V2, FleeceCli, commit_all, edit

EXAMPLE = f"""
How a conflict looks:

```
<<<<<<< HEAD
ours
=======
theirs
>>>>>>> feature
```

and one from fleece:

```
<<<<<<< yours
mine
=======
the template's
>>>>>>> fleece {__version__}
```
"""


def _add_example(service: Path) -> None:
    edit(
        service / "README.md", "A fixture service.\n", "A fixture service.\n" + EXAMPLE
    )


def _resolve(path: Path, keep: str) -> None:
    """Resolve the one conflict block that holds ``keep``, keeping that line."""
    lines = path.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.strip() == keep)
    start = max(i for i in range(at) if lines[i].startswith("<<<<<<< "))
    end = next(i for i in range(at, len(lines)) if lines[i].startswith(">>>>>>> "))
    path.write_text("".join([*lines[:start], lines[at], *lines[end + 1 :]]))


def test_a_fenced_example_of_markers_blocks_nothing(
    old_service: Path, fleece: FleeceCli
) -> None:
    _add_example(old_service)
    commit_all(old_service, "document conflicts")

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 0, result.stderr
    commit_all(old_service, "update")
    assert fleece("check", str(old_service), "--template", str(V2)).code == 0
    assert fleece("update", str(old_service), "--template", str(V2)).code == 0


def test_a_fenced_example_blocks_nothing_in_a_service_of_fleece_2_0(
    legacy_service: Path, fleece: FleeceCli
) -> None:
    edit(
        legacy_service / "README.md",
        "A fixture service.\n",
        "A fixture service.\n\n```\n<<<<<<< HEAD\na\n=======\nb\n>>>>>>> main\n```\n",
    )
    commit_all(legacy_service, "document conflicts")

    result = fleece("update", str(legacy_service), "--template", str(V2))

    assert result.code == 0, result.stderr


def test_a_conflict_the_update_wrote_blocks_the_next_update_until_resolved(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / "template.yaml", "Runtime: python3.12", "Runtime: python3.11")
    commit_all(old_service)
    fleece("update", str(old_service), "--template", str(V2))
    assert "path: template.yaml" in (old_service / CONFLICTS_FILE).read_text()
    commit_all(old_service, "update, conflict left")

    refused = fleece("update", str(old_service), "--template", str(V2))
    _resolve(old_service / "template.yaml", "Runtime: python3.13")
    commit_all(old_service, "resolved")
    check = fleece("check", str(old_service), "--template", str(V2))
    again = fleece("update", str(old_service), "--template", str(V2))

    assert refused.code == 2
    assert (
        "Error: template.yaml: conflict markers from `fleece update` at line 9"
    ) in refused.stderr
    assert check.code == 0, check.stdout
    assert again.code == 0 and "nothing to change" in again.stdout


def test_an_example_with_the_updates_own_markers_outlives_the_real_conflict(
    old_service: Path, fleece: FleeceCli
) -> None:
    _add_example(old_service)
    edit(old_service / "README.md", "Run `pytest`.", "Run `pytest -q`.")
    commit_all(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))
    blocked = fleece("check", str(old_service), "--template", str(V2))
    _resolve(old_service / "README.md", "Run `pytest -q`.")
    commit_all(old_service, "resolved")
    check = fleece("check", str(old_service), "--template", str(V2))

    assert result.code == 1 and "  README.md" in result.stdout
    assert blocked.stdout.startswith("README.md: conflict markers")
    assert "```\n<<<<<<< yours\nmine\n" in (old_service / "README.md").read_text()
    assert check.code == 0, check.stdout
