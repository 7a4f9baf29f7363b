"""The CI workflow of a generated service: valid for GitHub, the README's checks.

``.github/workflows/ci.yml`` runs, one step each, the commands the README's
"Checks" section lists, and a test in test_generated_service.py runs those
steps in a fresh environment. GitHub's workflow schema is the one
check-jsonschema vendors (``--builtin-schema vendor.github-workflows``):
nothing is fetched.
"""

import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleece import __version__
from fleece.service.render import Tree, load_template, render
from tests.new.service_ci import WORKFLOW, readme_checks, workflow_commands

VARIANTS = [
    {"api_style": "none", "python_runtime": "python3.12"},
    {"api_style": "router", "python_runtime": "python3.13", "architecture": "arm64"},
    {"api_style": "openapi", "python_runtime": "python3.14", "tracing": False},
]


@cache
def _service(api_style: str, python_runtime: str, **answers: Any) -> Tree:
    return render(
        load_template("service"),
        {
            "project_name": "orders",
            "api_style": api_style,
            "python_runtime": python_runtime,
            **answers,
        },
    )


def check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with GitHub's workflow schema, as vendored (offline)."""
    schema = ["--builtin-schema", "vendor.github-workflows"]
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("answers", VARIANTS, ids=lambda a: a["api_style"])
def test_the_workflow_runs_the_commands_the_readme_lists(
    answers: dict[str, Any],
) -> None:
    tree = _service(**answers)

    commands = workflow_commands(tree[WORKFLOW].decode())

    assert commands == readme_checks(tree["README.md"].decode())
    assert commands[0] == "pip install -e '.[dev]'"
    assert {"pytest", "mypy src", "cfn-lint template.yaml", "fleece check"} <= set(
        commands
    )


@pytest.mark.parametrize("answers", VARIANTS, ids=lambda a: a["api_style"])
def test_the_workflow_is_valid_against_githubs_schema(
    answers: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "ci.yml"
    path.write_bytes(_service(**answers)[WORKFLOW])

    checked = check_workflow(path)

    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_check_refuses_a_workflow_github_would(tmp_path: Path) -> None:
    path = tmp_path / "ci.yml"
    workflow = _service("none", "python3.12")[WORKFLOW].decode()
    path.write_text(workflow.replace("    runs-on: ubuntu-latest\n", ""))

    checked = check_workflow(path)

    assert checked.returncode == 1
    assert "runs-on" in checked.stdout


@pytest.mark.parametrize("answers", VARIANTS, ids=lambda a: a["api_style"])
def test_the_workflow_runs_on_the_python_of_the_function(
    answers: dict[str, Any],
) -> None:
    workflow = yaml.safe_load(_service(**answers)[WORKFLOW])

    (setup,) = [
        step
        for step in workflow["jobs"]["checks"]["steps"]
        if step.get("uses", "").startswith("actions/setup-python@")
    ]
    assert setup["with"]["python-version"] == answers["python_runtime"].removeprefix(
        "python"
    )


def test_the_dev_extra_names_the_fleece_that_rendered_the_service() -> None:
    pyproject = _service("none", "python3.12")["pyproject.toml"].decode()

    assert f'"fleece=={__version__}",' in pyproject
