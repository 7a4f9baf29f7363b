"""Links: never followed out of the service, kept as links inside it.

The template v2 changes events/ping.json and README.md, adds events/sqs.json
and drops docs/legacy.md; here those live behind the user's symlinks.
"""

import os
import shutil
from pathlib import Path

from .scenario import V2, FleeceCli, commit_all, read_tree


def _move_behind_link(service: Path, name: str, target: Path) -> None:
    """Move ``service/name`` to ``target`` and leave a relative symlink in its place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(service / name), str(target))
    (service / name).symlink_to(os.path.relpath(target, (service / name).parent))


def test_a_folder_linked_outside_the_service_is_never_written(
    old_service: Path, fleece: FleeceCli
) -> None:
    shared = old_service.parent / "shared"
    _move_behind_link(old_service, "events", shared / "events")
    _move_behind_link(old_service, "docs", shared / "docs")
    commit_all(old_service, "events and docs are shared")
    outside = read_tree(shared)

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 0, result.stderr
    assert read_tree(shared) == outside
    assert (old_service / "events").is_symlink() and (old_service / "docs").is_symlink()
    for path, what in (
        ("docs/legacy.md", "dropped"),
        ("events/ping.json", "changed"),
        ("events/sqs.json", "added"),
    ):
        assert (
            f"Note: skipped {path}: the template {what} it, but "
            f"{path.split('/')[0]} leads outside the service"
        ) in result.stdout


def test_check_agrees_once_the_skipped_files_are_past(
    old_service: Path, fleece: FleeceCli
) -> None:
    _move_behind_link(old_service, "events", old_service.parent / "shared/events")
    commit_all(old_service, "events are shared")
    fleece("update", str(old_service), "--template", str(V2))
    commit_all(old_service, "update")

    check = fleece("check", str(old_service), "--template", str(V2))
    again = fleece("update", str(old_service), "--template", str(V2))

    assert check.code == 0, check.stdout
    assert again.code == 0 and "nothing to change" in again.stdout


def test_a_file_linked_inside_the_service_stays_a_link_and_its_target_is_merged(
    old_service: Path, fleece: FleeceCli
) -> None:
    _move_behind_link(old_service, "README.md", old_service / "handbook/README.md")
    _move_behind_link(old_service, "template.yaml", old_service / "infra/sam.yaml")
    readme = old_service / "handbook/README.md"
    readme.write_text(readme.read_text().replace("A fixture", "Our fixture"))
    commit_all(old_service, "links inside")

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 0, result.stderr
    assert (old_service / "README.md").is_symlink()
    assert (old_service / "template.yaml").is_symlink()
    text = readme.read_text()
    assert "Our fixture service." in text and "Run `fleece check` in CI." in text
    assert "Runtime: python3.13" in (old_service / "infra/sam.yaml").read_text()


def test_a_file_linked_outside_the_service_is_skipped(
    old_service: Path, fleece: FleeceCli
) -> None:
    shared = old_service.parent / "shared/sam.yaml"
    _move_behind_link(old_service, "template.yaml", shared)
    commit_all(old_service, "shared SAM template")
    before = shared.read_bytes()

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 0, result.stderr
    assert shared.read_bytes() == before
    assert (old_service / "template.yaml").is_symlink()
    assert "Note: skipped template.yaml: the template changed it" in result.stdout


def test_a_runtime_linked_outside_the_service_is_an_obstacle(
    old_service: Path, fleece: FleeceCli
) -> None:
    shared = old_service.parent / "shared/fleece_runtime.py"
    _move_behind_link(old_service, "src/fleece_runtime.py", shared)
    commit_all(old_service, "shared runtime")
    before = read_tree(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 2
    assert result.stderr.startswith(
        "Error: src/fleece_runtime.py: src/fleece_runtime.py leads outside the service"
    )
    assert read_tree(old_service) == before
