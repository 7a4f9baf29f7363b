"""`fleece check` and `fleece update` give the same verdict, case by case.

check passes exactly when update has nothing to change; a finding that blocks
the update is exactly a line of update's refusal; any other finding is a change
update makes.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from fleece import __version__
from fleece.service.base import pack_base, unpack_base
from fleece.service.generated import render_generated
from fleece.service.layout import (
    ANSWERS_FILE,
    BASE_ARCHIVE,
    CONFIG_MODULE,
    RUNTIME_MODULE,
)
from fleece.service.render import runtime_module_text

from .scenario import V1, FleeceCli, commit_all, edit, git


def _fresh(service: Path) -> None:
    """Nothing to do."""


def _edited_config_stub(service: Path) -> None:
    stub = service / CONFIG_MODULE
    stub.write_text(stub.read_text() + "\nEXTRA = 1\n")


def _invalid_answers_yaml(service: Path) -> None:
    (service / ANSWERS_FILE).write_text("project_name: [demo\n")


def _damaged_base(service: Path) -> None:
    (service / BASE_ARCHIVE).write_bytes(b"not an archive")


def _new_runtime_copied_by_hand(service: Path) -> None:
    """The template files of an older fleece, this fleece's runtime copied in."""
    old = "Runtime: python3.10"
    edit(
        service / ANSWERS_FILE,
        f"_fleece_version: {__version__}",
        "_fleece_version: 1.9.0",
    )
    edit(service / "template.yaml", "Runtime: python3.12", old)
    base = unpack_base((service / BASE_ARCHIVE).read_bytes())
    base["template.yaml"] = base["template.yaml"].replace(
        b"Runtime: python3.12", old.encode()
    )
    (service / BASE_ARCHIVE).write_bytes(pack_base(base))
    assert (service / RUNTIME_MODULE).read_text() == runtime_module_text()


def _old_runtime(service: Path) -> None:
    body = '"""fleece runtime of fleece 1.9.0."""\n'
    (service / RUNTIME_MODULE).write_text(render_generated(body, "1.9.0"))


def _conflict_left(service: Path) -> None:
    (service / ".fleece/conflicts.yml").write_text(
        "- {path: README.md, start: <<<<<<< yours, end: '>>>>>>> fleece 9', existing: 0}\n"
    )
    edit(
        service / "README.md",
        "Run `pytest`.",
        "<<<<<<< yours\na\n=======\nb\n>>>>>>> fleece 9",
    )


def _answer_not_offered(service: Path) -> None:
    edit(service / ANSWERS_FILE, "api_style: none", "api_style: graphql")


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "fresh": (_fresh, "current"),
    "edited config stub": (_edited_config_stub, "refused"),
    "invalid YAML in answers.yml": (_invalid_answers_yaml, "refused"),
    "damaged base": (_damaged_base, "refused"),
    "new runtime copied by hand": (_new_runtime_copied_by_hand, "changes"),
    "old runtime": (_old_runtime, "changes"),
    "conflict left": (_conflict_left, "refused"),
    "answer not offered": (_answer_not_offered, "refused"),
}


@pytest.fixture
def service(tmp_path: Path, fleece: FleeceCli) -> Path:
    """A committed service fresh from this fleece (template v1)."""
    root = tmp_path / "demo"
    created = fleece("new", "demo", str(root), "--defaults", "--template", str(V1))
    assert created.code == 0, created.stderr
    return root


@pytest.mark.parametrize("case", CASES)
def test_check_and_update_agree(service: Path, fleece: FleeceCli, case: str) -> None:
    setup, expected = CASES[case]
    setup(service)
    commit_all(service, case)

    check = fleece("check", str(service), "--template", str(V1), "--json")
    update = fleece("update", str(service), "--template", str(V1))

    findings = json.loads(check.stdout)["findings"]
    blocking = [f"{f['path']}: {f['message']}" for f in findings if f["blocks_update"]]
    if expected == "current":
        assert check.code == 0 and findings == []
        assert update.code == 0 and "nothing to change" in update.stdout
        assert git(service, "status", "--porcelain") == ""
    elif expected == "refused":
        assert check.code == 1 and blocking, findings
        assert update.code == 2
        assert update.stderr == "Error: " + "\n".join(blocking) + "\n"
    else:
        assert check.code == 1 and findings and not blocking, findings
        assert update.code == 0, update.stderr
        assert git(service, "status", "--porcelain") != ""
        commit_all(service, "updated")
        assert fleece("check", str(service), "--template", str(V1)).code == 0
