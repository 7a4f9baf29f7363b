"""--force keeps the user's version of what it overwrites; --pretend shows every outcome."""

from pathlib import Path

from fleece.service.generated import render_generated
from fleece.service.layout import CONFIG_MODULE, RUNTIME_MODULE
from fleece.service.render import config_stub_text, runtime_module_text

from .scenario import V2, FleeceCli, commit_all, edit, git, read_tree

PATCH = ("print(message)", "print('patched', message)")


def _edit_config_stub(service: Path) -> bytes:
    stub = service / CONFIG_MODULE
    stub.write_text(
        render_generated("CONFIG = {}\n", "1.9.0") + "CONFIG = {'mine': 1}\n"
    )
    commit_all(service, "hand-edited stub")
    return stub.read_bytes()


def test_force_saves_the_hand_edited_runtime_beside_the_new_one(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / RUNTIME_MODULE, *PATCH)
    commit_all(old_service)
    edited = (old_service / RUNTIME_MODULE).read_bytes()

    result = fleece("update", str(old_service), "--template", str(V2), "--force")

    assert result.code == 0, result.stderr
    assert (old_service / RUNTIME_MODULE).read_text() == runtime_module_text()
    assert (old_service / f"{RUNTIME_MODULE}.orig").read_bytes() == edited
    assert f"  saved     {RUNTIME_MODULE}.orig" in result.stdout
    assert (
        f"Note: saved your edited {RUNTIME_MODULE} as {RUNTIME_MODULE}.orig (--force)"
    ) in result.stdout


def test_force_saves_a_hand_edited_config_stub_too(
    old_service: Path, fleece: FleeceCli
) -> None:
    edited = _edit_config_stub(old_service)

    refused = fleece("update", str(old_service), "--template", str(V2))
    result = fleece("update", str(old_service), "--template", str(V2), "--force")

    assert refused.code == 2
    assert f"Error: {CONFIG_MODULE}: edited by hand" in refused.stderr
    assert "+CONFIG = {'mine': 1}" not in refused.stdout
    assert "-CONFIG = {'mine': 1}" in refused.stdout
    assert result.code == 0, result.stderr
    assert (old_service / CONFIG_MODULE).read_text() == config_stub_text()
    assert (old_service / f"{CONFIG_MODULE}.orig").read_bytes() == edited


def test_help_says_what_force_overwrites_and_where_it_keeps_it(
    fleece: FleeceCli,
) -> None:
    text = " ".join(fleece("update", "--help").stdout.split())

    assert "src/fleece_runtime.py or config stub" in text
    assert "as FILE.orig" in text


def test_force_stops_when_the_backup_name_is_taken(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / RUNTIME_MODULE, *PATCH)
    (old_service / f"{RUNTIME_MODULE}.orig").write_text("someone else's\n")
    commit_all(old_service)
    before = read_tree(old_service)

    result = fleece("update", str(old_service), "--template", str(V2), "--force")

    assert result.code == 2
    assert f"Error: {RUNTIME_MODULE}.orig: is in the way" in result.stderr
    assert read_tree(old_service) == before


def test_pretend_shows_the_refusal_and_the_diff_force_would_apply(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / RUNTIME_MODULE, *PATCH)
    commit_all(old_service)
    before = read_tree(old_service)

    result = fleece("update", str(old_service), "--template", str(V2), "--pretend")
    forced = fleece(
        "update", str(old_service), "--template", str(V2), "--pretend", "--force"
    )

    assert result.code == 2
    assert "fleece update would refuse to update" in result.stderr
    assert f"  {RUNTIME_MODULE}: edited by hand" in result.stderr
    assert "-    print('patched', message)" in result.stdout
    assert forced.code == 0, forced.stderr
    assert f"+++ b/{RUNTIME_MODULE}.orig" in forced.stdout
    assert read_tree(old_service) == before


def test_pretend_on_uncommitted_changes_shows_the_diff_and_the_refusal(
    old_service: Path, fleece: FleeceCli
) -> None:
    (old_service / "scratch.txt").write_text("wip\n")

    result = fleece("update", str(old_service), "--template", str(V2), "--pretend")

    assert result.code == 2
    assert "has uncommitted changes (e.g. scratch.txt)" in result.stderr
    assert "+++ b/events/sqs.json" in result.stdout
    assert git(old_service, "status", "--porcelain") == "?? scratch.txt\n"
