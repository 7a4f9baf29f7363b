"""`fleece update` from template v1 (made by fleece 1.9.0) to template v2.

v2 changes the handler's first line and a line of template.yaml, adds a line to
template.yaml and README.md, adds events/sqs.json, changes events/ping.json,
drops docs/legacy.md and renames the question `greeting` to `salutation`.
Each test makes one kind of user edit, updates, and checks the promise: every
user line kept or inside conflict markers, every template change present,
the runtime current, and `fleece check` agreeing.
"""

from collections.abc import Callable
from pathlib import Path

import yaml

from fleece import __version__
from fleece.service.check import check_service
from fleece.service.layout import ANSWERS_FILE, RUNTIME_MODULE
from fleece.service.render import runtime_module_text

from .scenario import (
    V2,
    FleeceCli,
    Run,
    append,
    assert_nothing_lost,
    commit_all,
    edit,
    git,
    read_tree,
    recorded_base,
)

HANDLER = "src/demo/handler.py"
USER_FUNCTION = '''

def shout(text: str) -> str:
    """Written by the user, after the template's handler."""
    return text.upper()
'''


def _update(service: Path, fleece: FleeceCli, *args: str) -> Run:
    """Update ``service`` to v2 and check the promise of the update on the way."""
    old_base, ours = recorded_base(service), read_tree(service)
    result = fleece("update", str(service), "--template", str(V2), *args)
    assert_nothing_lost(old_base, ours, recorded_base(service), read_tree(service))
    assert (service / RUNTIME_MODULE).read_text() == runtime_module_text()
    findings = {(f.path, f.kind) for f in check_service(service, str(V2)).findings}
    conflicted = {(line.strip(), "conflict") for line in _listed_conflicts(result)}
    assert findings == conflicted, result.stdout
    return result


def _listed_conflicts(result: Run) -> list[str]:
    lines = result.stdout.splitlines()
    starts = [i for i, line in enumerate(lines) if "with conflicts" in line]
    return lines[starts[0] + 1 :] if starts else []


def test_function_appended_by_the_user_survives_next_to_the_template_change(
    old_service: Path, fleece: FleeceCli
) -> None:
    append(old_service / HANDLER, USER_FUNCTION)
    commit_all(old_service)

    result = _update(old_service, fleece)

    assert result.code == 0, result.stderr
    handler = (old_service / HANDLER).read_text()
    assert handler.endswith(USER_FUNCTION)
    assert 'it answers every event in JSON."""' in handler
    assert f"  merged    {HANDLER}" in result.stdout


def test_user_change_to_a_line_the_template_keeps_survives(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / "template.yaml", "Timeout: 30", "Timeout: 90")
    commit_all(old_service)

    result = _update(old_service, fleece)

    assert result.code == 0, result.stderr
    sam = (old_service / "template.yaml").read_text()
    assert "Timeout: 90" in sam and "Timeout: 30" not in sam
    assert "Runtime: python3.13" in sam and "Tracing: Active" in sam


def test_same_line_changed_by_user_and_template_gets_git_conflict_markers(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / "template.yaml", "Runtime: python3.12", "Runtime: python3.11")
    commit_all(old_service)

    result = _update(old_service, fleece)

    assert result.code == 1
    assert (
        "<<<<<<< yours\n"
        "      Runtime: python3.11\n"
        "=======\n"
        "      Runtime: python3.13\n"
        f">>>>>>> fleece {__version__}\n"
    ) in (old_service / "template.yaml").read_text()
    assert _listed_conflicts(result) == ["  template.yaml"]


def test_check_passes_once_the_conflict_is_resolved(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / "template.yaml", "Runtime: python3.12", "Runtime: python3.11")
    commit_all(old_service)
    _update(old_service, fleece)

    sam = old_service / "template.yaml"
    resolved = [
        line
        for line in sam.read_text().splitlines(keepends=True)
        if not line.startswith(
            ("<<<<<<<", "=======", ">>>>>>>", "      Runtime: python3.11")
        )
    ]
    sam.write_text("".join(resolved))

    assert fleece("check", str(old_service), "--template", str(V2)).code == 0


def test_file_deleted_by_the_user_stays_deleted_even_if_the_template_changed_it(
    old_service: Path, fleece: FleeceCli
) -> None:
    (old_service / "events/ping.json").unlink()
    commit_all(old_service)

    result = _update(old_service, fleece)

    assert result.code == 0, result.stderr
    assert not (old_service / "events/ping.json").exists()
    assert "left events/ping.json deleted" in result.stdout
    assert "events/ping.json" in recorded_base(old_service)


def test_file_added_by_the_user_is_left_as_it_is(
    old_service: Path, fleece: FleeceCli
) -> None:
    extra = old_service / "src/demo/extra.py"
    extra.write_text("VALUE = 1  # mine\n")
    commit_all(old_service)

    result = _update(old_service, fleece)

    assert result.code == 0, result.stderr
    assert extra.read_text() == "VALUE = 1  # mine\n"
    assert "extra.py" not in result.stdout


def test_file_added_by_the_template_is_created(
    old_service: Path, fleece: FleeceCli
) -> None:
    result = _update(old_service, fleece)

    assert result.code == 0, result.stderr
    assert (old_service / "events/sqs.json").read_text() == (
        V2 / "project/events/sqs.json"
    ).read_text()
    assert "  created   events/sqs.json" in result.stdout


def test_file_dropped_by_the_template_is_deleted_when_the_user_never_changed_it(
    old_service: Path, fleece: FleeceCli
) -> None:
    result = _update(old_service, fleece)

    assert result.code == 0, result.stderr
    assert not (old_service / "docs").exists()
    assert "docs/legacy.md" not in recorded_base(old_service)


def test_file_dropped_by_the_template_is_kept_when_the_user_changed_it(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / "docs/legacy.md", "goes away", "stays, says the user,")
    commit_all(old_service)

    result = _update(old_service, fleece)

    assert result.code == 0, result.stderr
    assert "stays, says the user," in (old_service / "docs/legacy.md").read_text()
    assert "kept docs/legacy.md" in result.stdout


def test_hand_edited_runtime_stops_the_update_with_the_diff_and_writes_nothing(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / RUNTIME_MODULE, "print(message)", "print('patched', message)")
    commit_all(old_service)
    before = read_tree(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 2
    assert "-    print('patched', message)" in result.stdout
    assert "edited by hand" in result.stderr and "--force" in result.stderr
    assert read_tree(old_service) == before
    kinds = [f.kind for f in check_service(old_service, str(V2)).findings]
    assert "runtime-edited" in kinds


def test_force_replaces_a_hand_edited_runtime(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / RUNTIME_MODULE, "print(message)", "print('patched', message)")
    commit_all(old_service)

    result = _update(old_service, fleece, "--force")

    assert result.code == 0, result.stderr
    assert (
        "Note: saved your edited src/fleece_runtime.py as src/fleece_runtime.py.orig"
        in result.stdout
    )


def test_renamed_question_keeps_the_recorded_answer(
    make_old_service: Callable[..., Path], fleece: FleeceCli
) -> None:
    service = make_old_service(project_name="demo", greeting="Howdy")

    result = _update(service, fleece)

    assert result.code == 0, result.stderr
    answers = yaml.safe_load((service / ANSWERS_FILE).read_text())
    assert answers["salutation"] == "Howdy" and "greeting" not in answers
    assert answers["_fleece_version"] == __version__
    assert 'GREETING = "Howdy"' in (service / HANDLER).read_text()
    assert "answer greeting is now called salutation" in result.stdout


def test_every_kind_of_edit_at_once_keeps_every_line(
    old_service: Path, fleece: FleeceCli
) -> None:
    append(old_service / HANDLER, USER_FUNCTION)
    edit(old_service / "template.yaml", "Timeout: 30", "Timeout: 90")
    edit(old_service / "template.yaml", "Runtime: python3.12", "Runtime: python3.11")
    edit(old_service / "README.md", "A fixture service.", "Our orders service.")
    (old_service / "events/ping.json").unlink()
    (old_service / "notes.txt").write_text("my notes\n")
    commit_all(old_service)

    result = _update(old_service, fleece)

    assert result.code == 1
    assert _listed_conflicts(result) == ["  template.yaml"]
    readme = (old_service / "README.md").read_text()
    assert "Our orders service." in readme and "Run `fleece check` in CI." in readme


def test_updating_again_after_committing_changes_nothing(
    old_service: Path, fleece: FleeceCli
) -> None:
    append(old_service / HANDLER, USER_FUNCTION)
    commit_all(old_service)
    _update(old_service, fleece)
    commit_all(old_service, "fleece update")

    again = fleece("update", str(old_service), "--template", str(V2))

    assert again.code == 0, again.stderr
    assert "nothing to change" in again.stdout
    assert git(old_service, "status", "--porcelain") == ""
