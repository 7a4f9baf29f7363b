"""Hand edits to .fleece/answers.yml: applied when valid, named when not, comments noted."""

from pathlib import Path

from fleece.service.layout import ANSWERS_FILE

from .scenario import V2, FleeceCli, append, commit_all, edit, read_tree


def test_comments_in_the_answers_file_are_noted_when_update_drops_them(
    old_service: Path, fleece: FleeceCli
) -> None:
    append(old_service / ANSWERS_FILE, "# 256 MB: measured in March\n")
    edit(old_service / ANSWERS_FILE, "memory_size: 256", "memory_size: 256  # enough")
    commit_all(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 0, result.stderr
    assert (
        "Note: .fleece/answers.yml is rewritten by every update: your comments in it "
        "(2 lines, e.g. 'memory_size: 256  # enough') are dropped"
    ) in result.stdout


def test_a_value_the_template_does_not_offer_is_named_with_its_file(
    old_service: Path, fleece: FleeceCli
) -> None:
    edit(old_service / ANSWERS_FILE, "api_style: none", "api_style: graphql")
    commit_all(old_service)
    before = read_tree(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))
    unchanged = read_tree(old_service) == before
    fixed = fleece(
        "update", str(old_service), "--template", str(V2), "--data", "api_style=router"
    )

    assert result.code == 2
    assert result.stderr == (
        "Error: .fleece/answers.yml: api_style=graphql: not offered (choose one of: "
        "none, router) (correct it there, or run `fleece update --data api_style=...`)\n"
    )
    assert unchanged
    assert fixed.code == 0, fixed.stderr
    assert "api_style: router" in (old_service / ANSWERS_FILE).read_text()


def test_a_value_the_templates_validator_refuses_is_named_with_its_file(
    tmp_path: Path, fleece: FleeceCli
) -> None:
    service = tmp_path / "svc"
    assert fleece("new", "svc", str(service), "--defaults").code == 0
    edit(service / ANSWERS_FILE, "memory_size: 256", "memory_size: 64")
    commit_all(service)

    result = fleece("update", str(service))

    assert result.code == 2
    assert result.stderr.startswith(
        "Error: .fleece/answers.yml: memory_size=64: must be between 128 and 10240"
    )


def test_invalid_yaml_is_named_with_its_line(
    old_service: Path, fleece: FleeceCli
) -> None:
    append(old_service / ANSWERS_FILE, "memory_size: [256\n")
    commit_all(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 2
    assert result.stderr.startswith(
        "Error: .fleece/answers.yml: not valid YAML at line"
    )


def test_a_valid_hand_edit_is_rendered(old_service: Path, fleece: FleeceCli) -> None:
    edit(old_service / ANSWERS_FILE, "memory_size: 256", "memory_size: 512")
    commit_all(old_service)

    result = fleece("update", str(old_service), "--template", str(V2))

    assert result.code == 0, result.stderr
    assert "MemorySize: 512" in (old_service / "template.yaml").read_text()


def test_a_recorded_name_the_template_now_refuses_is_named_with_its_file(
    tmp_path: Path, fleece: FleeceCli
) -> None:
    service = tmp_path / "svc"
    assert fleece("new", "svc", str(service), "--defaults").code == 0
    edit(service / ANSWERS_FILE, "package_name: svc", "package_name: six")
    commit_all(service)
    before = read_tree(service)

    check = fleece("check", str(service))
    refused = fleece("update", str(service))
    unchanged = read_tree(service) == before
    again = fleece("update", str(service), "--data", "package_name=starlette")
    renamed = fleece("update", str(service), "--data", "package_name=orders")

    assert check.code == 1
    assert refused.code == 2 and unchanged
    assert refused.stderr == (
        "Error: .fleece/answers.yml: package_name=six: would shadow the module six, "
        "which boto3 needs (used by fleece_runtime.boto3 and Lambda's Python "
        "runtime) (correct it there, or run `fleece update --data package_name=...`)\n"
    )
    assert again.code == 2
    assert again.stderr.startswith("Error: package name 'starlette' would shadow")
    assert renamed.code == 0, renamed.stderr
    assert (service / "src/orders/handler.py").is_file()
