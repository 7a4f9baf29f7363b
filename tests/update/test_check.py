"""`fleece check`: one line when current, one finding per thing update would do or refuse."""

import hashlib
import json
import re
from pathlib import Path

import pytest

from fleece import __version__
from fleece.service.conflicts import ConflictRecord, dump_conflicts
from fleece.service.findings import CHECK_SCHEMA_VERSION, KINDS
from fleece.service.generated import render_generated
from fleece.service.layout import (
    ANSWERS_FILE,
    BASE_ARCHIVE,
    CONFLICTS_FILE,
    RUNTIME_MODULE,
    ConfigModule,
    Settings,
    save_settings,
)
from fleece.service.new import NewService, create_service

from .scenario import OLD_VERSION, V1, FleeceCli, Run, edit

CONFIG_BODY = 'STAGE = "dev"\nKEY_ID = "alias/demo"\n'


@pytest.fixture
def current_service(tmp_path: Path) -> Path:
    """A service fresh from this fleece (template v1), without git."""
    destination = tmp_path / "demo"
    create_service(
        NewService(
            name="demo",
            destination=destination,
            template=str(V1),
            defaults=True,
            git=False,
        )
    )
    return destination


def _with_config_module(service: Path, config: bytes) -> Path:
    """A dev config module rendered from ``config``, as `fleece config render` writes it."""
    (service / "config.yml").write_bytes(config)
    module = service / "src/fleece_config.py"
    digest = hashlib.sha256(config).hexdigest()
    module.write_text(
        render_generated(
            CONFIG_BODY, __version__, {"stage": "dev", "config-sha256": digest}
        )
    )
    save_settings(service, Settings([ConfigModule("dev", "src/fleece_config.py")]))
    return module


def _kinds(result_stdout: str) -> list[str]:
    return [f["kind"] for f in json.loads(result_stdout)["findings"]]


def _check(fleece: FleeceCli, service: Path, *args: str) -> Run:
    """`fleece check` of a service rendered from the test template v1."""
    return fleece("check", str(service), "--template", str(V1), *args)


def test_a_current_service_passes_with_one_line(
    current_service: Path, fleece: FleeceCli
) -> None:
    result = _check(fleece, current_service)

    assert result.code == 0, result.stdout
    assert result.stdout == (
        f"fleece check: {current_service} is current (fleece {__version__})\n"
    )


def test_a_runtime_from_an_older_fleece_is_stale(
    old_service: Path, fleece: FleeceCli
) -> None:
    result = _check(fleece, old_service)

    assert result.code == 1
    assert result.stdout.splitlines() == [
        "src/fleece_runtime.py: written by fleece 1.9.0, older than the installed "
        f"fleece {__version__} (run `fleece update`)",
        f".fleece/answers.yml: rendered by fleece {OLD_VERSION}; fleece update would "
        "change 1 file: .fleece/answers.yml (run `fleece update`)",
    ]


def test_a_runtime_from_a_newer_fleece_asks_for_a_newer_fleece(
    current_service: Path, fleece: FleeceCli
) -> None:
    body = "# the runtime of a future fleece\n"
    (current_service / RUNTIME_MODULE).write_text(render_generated(body, "99.0.0"))

    result = _check(fleece, current_service, "--json")

    assert result.code == 1
    assert _kinds(result.stdout) == ["fleece-outdated"]
    assert "install fleece>=99.0.0" in result.stdout


def test_a_hand_edited_runtime_is_reported(
    current_service: Path, fleece: FleeceCli
) -> None:
    runtime = current_service / RUNTIME_MODULE
    runtime.write_text(runtime.read_text() + "\nPATCHED = True\n")

    result = _check(fleece, current_service)

    assert result.code == 1
    assert result.stdout.startswith("src/fleece_runtime.py: edited by hand")
    assert "fleece update --force" in result.stdout


def test_a_missing_runtime_is_reported(
    current_service: Path, fleece: FleeceCli
) -> None:
    (current_service / RUNTIME_MODULE).unlink()

    result = _check(fleece, current_service, "--json")

    assert _kinds(result.stdout) == ["runtime-missing"]


def test_a_missing_answers_file_is_reported(
    current_service: Path, fleece: FleeceCli
) -> None:
    (current_service / ANSWERS_FILE).unlink()

    result = _check(fleece, current_service)

    assert result.code == 1
    assert result.stdout.startswith(".fleece/answers.yml: the answers file is missing")


def test_a_missing_pristine_base_is_reported(
    current_service: Path, fleece: FleeceCli
) -> None:
    (current_service / BASE_ARCHIVE).unlink()

    result = _check(fleece, current_service, "--json")

    assert _kinds(result.stdout) == ["base-missing"]


def test_leftover_conflict_markers_are_reported_with_their_line(
    current_service: Path, fleece: FleeceCli
) -> None:
    edit(
        current_service / "template.yaml",
        "      Timeout: 30\n",
        "<<<<<<< yours\n      Timeout: 90\n=======\n      Timeout: 60\n>>>>>>> fleece 2.1.0\n",
    )
    record = ConflictRecord("template.yaml", "<<<<<<< yours", ">>>>>>> fleece 2.1.0")
    (current_service / CONFLICTS_FILE).write_bytes(dump_conflicts([record]))

    result = _check(fleece, current_service)

    assert result.code == 1
    assert result.stdout == (
        "template.yaml: conflict markers from `fleece update` at line 11 "
        "(resolve them, then commit)\n"
    )


def test_a_markdown_heading_underline_is_no_conflict(
    current_service: Path, fleece: FleeceCli
) -> None:
    assert "\n=======\n" in (current_service / "README.md").read_text()

    assert _check(fleece, current_service).code == 0


def test_a_config_module_matching_config_yml_passes(
    current_service: Path, fleece: FleeceCli
) -> None:
    _with_config_module(current_service, b"stages: {dev: {key: alias/demo}}\n")

    assert _check(fleece, current_service).code == 0


def test_a_config_module_from_another_config_yml_is_stale(
    current_service: Path, fleece: FleeceCli
) -> None:
    _with_config_module(current_service, b"stages: {dev: {key: alias/demo}}\n")
    (current_service / "config.yml").write_bytes(b"stages: {dev: {key: alias/other}}\n")

    result = _check(fleece, current_service)

    assert result.code == 1
    assert result.stdout == (
        "src/fleece_config.py: rendered from another config.yml than the current one "
        "(re-render it: `fleece config render dev --python --output src/fleece_config.py`)\n"
    )


def test_a_hand_edited_config_module_is_reported(
    current_service: Path, fleece: FleeceCli
) -> None:
    module = _with_config_module(current_service, b"stages: {}\n")
    edit(module, "alias/demo", "alias/hacked")

    result = _check(fleece, current_service, "--json")

    assert _kinds(result.stdout) == ["config-edited"]


def test_a_listed_config_module_that_is_gone_is_reported(
    current_service: Path, fleece: FleeceCli
) -> None:
    _with_config_module(current_service, b"stages: {}\n").unlink()

    result = _check(fleece, current_service, "--json")

    assert _kinds(result.stdout) == ["config-missing"]


def test_json_lists_every_finding_with_path_kind_and_message(
    old_service: Path, fleece: FleeceCli
) -> None:
    (old_service / ANSWERS_FILE).unlink()

    result = _check(fleece, old_service, "--json")

    assert result.code == 1
    report = json.loads(result.stdout)
    assert report["schema_version"] == CHECK_SCHEMA_VERSION
    assert report["ok"] is False
    assert [(f["path"], f["kind"], f["blocks_update"]) for f in report["findings"]] == [
        (".fleece/answers.yml", "answers-missing", True),
        ("src/fleece_runtime.py", "runtime-stale", False),
    ]
    assert all(f["message"] for f in report["findings"])


def test_json_of_a_current_service_is_ok_with_no_findings(
    current_service: Path, fleece: FleeceCli
) -> None:
    result = _check(fleece, current_service, "--json")

    assert result.code == 0
    assert json.loads(result.stdout) == {
        "schema_version": CHECK_SCHEMA_VERSION,
        "ok": True,
        "findings": [],
    }


def test_check_runs_in_the_current_directory_by_default(
    current_service: Path, fleece: FleeceCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(current_service)

    result = fleece("check", "--template", str(V1))

    assert result.code == 0
    assert str(current_service) in result.stdout


def test_an_answer_the_template_retired_is_a_finding(
    tmp_path: Path, fleece: FleeceCli
) -> None:
    service = tmp_path / "svc"
    create_service(
        NewService(name="svc", destination=service, defaults=True, git=False)
    )
    answers = service / ANSWERS_FILE
    answers.write_text(
        answers.read_text().replace(
            "python_runtime: python3.12", "python_runtime: python3.11"
        )
    )

    result = fleece("check", str(service), "--json")

    assert result.code == 1
    findings = json.loads(result.stdout)["findings"]
    assert [(f["path"], f["kind"]) for f in findings] == [
        (ANSWERS_FILE, "answer-retired")
    ]
    assert "fleece update --data python_runtime=..." in findings[0]["message"]


def test_the_docs_list_every_finding_kind_and_whether_it_blocks_update() -> None:
    docs = (Path(__file__).parents[2] / "docs/update.md").read_text()
    rows = re.findall(r"^\| `([a-z-]+)` \| (yes|no)[^|]* \|", docs, re.M)

    assert {kind: blocks == "yes" for kind, blocks in rows} == KINDS
