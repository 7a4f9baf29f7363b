"""An older fleece, or an older template, never replaces a newer render unasked."""

import json
from pathlib import Path

from fleece import __version__
from fleece.service.generated import render_generated
from fleece.service.layout import ANSWERS_FILE, RUNTIME_MODULE
from fleece.service.new import NewService, create_service

from .scenario import V1, V2, FleeceCli, commit_all, edit, read_tree

NEWER = "99.0.0"


def _service_of_a_newer_fleece(tmp_path: Path) -> Path:
    """A committed service as fleece 99.0.0 would have written it (template v1)."""
    service = tmp_path / "demo"
    create_service(
        NewService(name="demo", destination=service, template=str(V1), defaults=True)
    )
    edit(
        service / ANSWERS_FILE,
        f"_fleece_version: {__version__}",
        f"_fleece_version: {NEWER}",
    )
    body = '"""The runtime of fleece 99."""\n\nNEW_FEATURE = True\n'
    (service / RUNTIME_MODULE).write_text(render_generated(body, NEWER))
    commit_all(service, "made by fleece 99")
    return service


def test_an_older_fleece_refuses_to_update_a_newer_render(
    tmp_path: Path, fleece: FleeceCli
) -> None:
    service = _service_of_a_newer_fleece(tmp_path)
    before = read_tree(service)

    result = fleece("update", str(service), "--template", str(V1))

    assert result.code == 2
    assert (
        f"Error: .fleece/answers.yml: rendered by fleece {NEWER}, newer than this "
        f"fleece {__version__}"
    ) in result.stderr
    assert "--allow-downgrade" in result.stderr
    assert read_tree(service) == before


def test_check_reports_the_downgrade_as_blocking(
    tmp_path: Path, fleece: FleeceCli
) -> None:
    service = _service_of_a_newer_fleece(tmp_path)

    result = fleece("check", str(service), "--template", str(V1), "--json")

    findings = {
        (f["path"], f["kind"], f["blocks_update"])
        for f in json.loads(result.stdout)["findings"]
    }
    assert (ANSWERS_FILE, "fleece-outdated", True) in findings
    assert (RUNTIME_MODULE, "fleece-outdated", True) in findings


def test_pretend_shows_the_refusal_and_what_a_downgrade_would_undo(
    tmp_path: Path, fleece: FleeceCli
) -> None:
    service = _service_of_a_newer_fleece(tmp_path)

    result = fleece("update", str(service), "--template", str(V1), "--pretend")

    assert result.code == 2
    assert "-NEW_FEATURE = True" in result.stdout
    assert "fleece update would refuse to update" in result.stderr
    assert f"rendered by fleece {NEWER}" in result.stderr


def test_allow_downgrade_renders_with_this_fleece(
    tmp_path: Path, fleece: FleeceCli
) -> None:
    service = _service_of_a_newer_fleece(tmp_path)

    result = fleece("update", str(service), "--template", str(V1), "--allow-downgrade")

    assert result.code == 0, result.stderr
    assert "NEW_FEATURE" not in (service / RUNTIME_MODULE).read_text()
    assert f"_fleece_version: {__version__}" in (service / ANSWERS_FILE).read_text()


def test_an_older_template_refuses_to_update_a_newer_templates_render(
    old_service: Path, fleece: FleeceCli
) -> None:
    updated = fleece("update", str(old_service), "--template", str(V2))
    assert updated.code == 0, updated.stderr
    assert "_fleece_template_version: '2'" in (old_service / ANSWERS_FILE).read_text()
    commit_all(old_service, "update to v2")
    before = read_tree(old_service)

    result = fleece("update", str(old_service), "--template", str(V1))

    assert result.code == 2
    assert (
        "Error: .fleece/answers.yml: rendered from version 2 of its template, "
        "newer than the v1 template at hand (version 1)"
    ) in result.stderr
    assert read_tree(old_service) == before
