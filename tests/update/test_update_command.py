"""`fleece update`: no-op on a fresh service, --pretend, --data, and what it refuses."""

from pathlib import Path

import pytest
import yaml

from fleece.service.generated import render_generated
from fleece.service.layout import (
    ANSWERS_FILE,
    BASE_ARCHIVE,
    RUNTIME_MODULE,
    ConfigModule,
    Settings,
    save_settings,
)
from fleece.service.render import runtime_module_text

from .scenario import (
    V1,
    V2,
    FleeceCli,
    append,
    commit_all,
    edit,
    git,
    read_tree,
    recorded_base,
)

HANDLER = "src/demo/handler.py"


@pytest.mark.parametrize("api_style", ["none", "router", "openapi"])
def test_update_of_a_fresh_service_changes_no_byte(
    tmp_path: Path, fleece: FleeceCli, api_style: str
) -> None:
    service = tmp_path / "demo"
    created = fleece(
        "new", "demo", str(service), "--defaults", "-d", f"api_style={api_style}"
    )
    assert created.code == 0, created.stderr
    before = read_tree(service)

    result = fleece("update", str(service))

    assert result.code == 0, result.stderr
    assert "nothing to change" in result.stdout
    assert read_tree(service) == before
    assert git(service, "status", "--porcelain") == ""


def test_pretend_prints_the_diff_and_writes_nothing(
    old_service: Path, fleece: FleeceCli
) -> None:
    before = read_tree(old_service)

    result = fleece("update", str(old_service), "--template", str(V2), "--pretend")

    assert result.code == 0, result.stderr
    assert "--- /dev/null\n+++ b/events/sqs.json\n" in result.stdout
    assert "-      Runtime: python3.12\n+      Runtime: python3.13\n" in result.stdout
    assert "--- a/docs/legacy.md\n+++ /dev/null\n" in result.stdout
    assert "+++ b/src/fleece_runtime.py" in result.stdout
    assert "Would update" in result.stderr
    assert read_tree(old_service) == before
    assert git(old_service, "status", "--porcelain") == ""


def test_pretend_exits_1_when_the_update_would_conflict(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / "template.yaml", "Runtime: python3.12", "Runtime: python3.11")
    commit_all(old_service)

    result = fleece("update", str(old_service), "--template", str(V2), "--pretend")

    assert result.code == 1
    assert "+<<<<<<< yours" in result.stdout
    assert "template.yaml" in result.stderr.split("with conflicts")[1]
    assert git(old_service, "status", "--porcelain") == ""


def test_uncommitted_changes_are_refused_with_exit_2(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / HANDLER, "world", "there")
    before = read_tree(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 2
    assert result.stderr.startswith("Error: ")
    assert "uncommitted changes (e.g. src/demo/handler.py)" in result.stderr
    assert read_tree(old_service) == before


def test_an_untracked_file_counts_as_uncommitted(
    old_service: Path, fleece: FleeceCli
) -> None:
    (old_service / "scratch.txt").write_text("wip\n")

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 2
    assert "scratch.txt" in result.stderr


def test_a_service_outside_git_is_refused(old_service: Path, fleece: FleeceCli) -> None:
    (old_service / ".git").rename(old_service.parent / "elsewhere.git")
    before = read_tree(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 2
    assert "is not a git repository" in result.stderr
    assert read_tree(old_service) == before


def test_data_changes_an_answer_and_merges_the_result(
    old_service: Path, fleece: FleeceCli
) -> None:
    append(old_service / HANDLER, "\n\nMINE = True\n")
    commit_all(old_service)

    result = fleece(
        "update", str(old_service), "--template", str(V1), "--data", "api_style=router"
    )

    assert result.code == 0, result.stderr
    assert (old_service / "src/demo/routes.py").is_file()
    assert "src/demo/routes.py" in recorded_base(old_service)
    assert (old_service / HANDLER).read_text().endswith("\n\nMINE = True\n")
    answers = yaml.safe_load((old_service / ANSWERS_FILE).read_text())
    assert answers["api_style"] == "router"


def test_data_for_an_unknown_question_is_refused_and_writes_nothing(
    old_service: Path, fleece: FleeceCli
) -> None:
    before = read_tree(old_service)

    result = fleece(
        "update", str(old_service), "--template", str(V2), "-d", "colour=red"
    )

    assert result.code == 2
    assert "--data colour: unknown question" in result.stderr
    assert read_tree(old_service) == before


def test_a_template_this_fleece_does_not_bundle_must_be_named(
    old_service: Path, fleece: FleeceCli
) -> None:
    result = fleece("update", str(old_service))

    assert result.code == 2
    assert "rendered from the template 'v1'" in result.stderr
    assert "--template" in result.stderr


def test_a_missing_pristine_base_is_refused(
    old_service: Path, fleece: FleeceCli
) -> None:
    git(old_service, "rm", "--quiet", BASE_ARCHIVE)
    commit_all(old_service, "lose the base")

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 2
    assert (
        "Error: .fleece/base.tar.bz2: the pristine render update merges against is missing"
        in result.stderr
    )
    assert "git checkout <commit> -- .fleece/base.tar.bz2" in result.stderr


def test_a_missing_answers_file_is_refused(
    old_service: Path, fleece: FleeceCli
) -> None:
    git(old_service, "rm", "--quiet", ANSWERS_FILE)
    commit_all(old_service, "lose the answers")

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 2
    assert "Error: .fleece/answers.yml: the answers file is missing" in result.stderr


def test_a_deleted_runtime_is_written_again(
    old_service: Path, fleece: FleeceCli
) -> None:
    (old_service / RUNTIME_MODULE).unlink()
    commit_all(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 0, result.stderr
    assert (old_service / RUNTIME_MODULE).read_text() == runtime_module_text()
    assert "  created   src/fleece_runtime.py" in result.stdout


def test_a_hand_edited_config_module_is_left_alone_with_a_note(
    old_service: Path, fleece: FleeceCli
) -> None:
    module = old_service / "src/fleece_config.py"
    module.write_text(render_generated("KEY = 1\n", "1.9.0") + "KEY = 2\n")
    save_settings(old_service, Settings([ConfigModule("dev", "src/fleece_config.py")]))
    commit_all(old_service)
    before = module.read_bytes()

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 0, result.stderr
    assert module.read_bytes() == before
    assert (
        "Note: src/fleece_config.py: edited by hand: its body no longer matches the "
        "sha256 in its header (re-render it: `fleece config render dev --python "
        "--output src/fleece_config.py`)"
    ) in result.stdout
