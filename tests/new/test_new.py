"""`fleece new`: what it writes, and what it refuses."""

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleece import __version__
from fleece.resources import runtime_stub_dir
from fleece.service.generated import parse_generated

RunFleece = Callable[..., subprocess.CompletedProcess[str]]


EXPECTED_FILES = {
    ".fleece/answers.yml",
    ".github/workflows/ci.yml",
    ".gitattributes",
    ".gitignore",
    "README.md",
    "Makefile",
    "config.yml",
    "environments.yml",
    "events/apigw_http_v2.json",
    "events/apigw_rest_v1.json",
    "events/s3_put.json",
    "events/sqs_receive.json",
    "pyproject.toml",
    "samconfig.toml",
    "src/demo/__init__.py",
    "src/demo/handler.py",
    "src/fleece_config.py",
    "src/fleece_runtime.py",
    "src/requirements.txt",
    "template.yaml",
    "tests/conftest.py",
    "tests/test_config.py",
    "tests/test_handler.py",
}


def _files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(root).parts[:1]
    }


def test_defaults_render_a_complete_service_in_one_commit(
    workdir: Path, run_fleece: RunFleece
) -> None:
    result = run_fleece("new", "demo", "--defaults", cwd=workdir)

    assert result.returncode == 0, result.stderr
    service = workdir / "demo"
    files = _files(service)
    assert files >= EXPECTED_FILES
    assert ".fleece/base.tar.bz2" in files, "pristine base missing"
    log = subprocess.run(
        ["git", "log", "--format=%s"], cwd=service, capture_output=True, text=True
    )
    assert log.stdout.splitlines() == ["New service from fleece"]
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=service, capture_output=True, text=True
    )
    assert status.stdout == ""


def test_answers_file_records_every_answer_and_the_fleece_version(
    workdir: Path, run_fleece: RunFleece
) -> None:
    run_fleece("new", "demo", "--defaults", "--no-git", cwd=workdir)

    answers = yaml.safe_load((workdir / "demo/.fleece/answers.yml").read_text())
    assert answers == {
        "_fleece_version": __version__,
        "_fleece_template": "service",
        "project_name": "demo",
        "package_name": "demo",
        "description": "A Python service on AWS Lambda.",
        "python_runtime": "python3.12",
        "architecture": "x86_64",
        "api_style": "none",
        "tracing": True,
        "memory_size": 256,
        "timeout": 30,
    }


def test_runtime_is_the_stub_with_a_header_naming_version_and_digest(
    workdir: Path, run_fleece: RunFleece
) -> None:
    run_fleece("new", "demo", "--defaults", "--no-git", cwd=workdir)

    text = (workdir / "demo/src/fleece_runtime.py").read_text()
    generated = parse_generated(text)
    assert generated is not None
    assert generated.version == __version__
    assert not generated.edited
    assert generated.body == (runtime_stub_dir() / "fleece_runtime.py").read_text()
    assert "fleece update" in text.splitlines()[0]


def test_data_answers_shape_the_sam_template(
    workdir: Path, run_fleece: RunFleece
) -> None:
    result = run_fleece(
        "new",
        "orders-api",
        "--defaults",
        "--no-git",
        "--data",
        "python_runtime=python3.13",
        "--data",
        "architecture=arm64",
        "--data",
        "api_style=router",
        "--data",
        "tracing=false",
        "--data",
        "memory_size=1024",
        "--data",
        "timeout=60",
        cwd=workdir,
    )

    assert result.returncode == 0, result.stderr
    template = (workdir / "orders-api/template.yaml").read_text()
    function = _function_properties(template)
    assert function["Handler"] == "orders_api.handler.handler"
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["MemorySize"] == 1024
    assert function["Timeout"] == 60
    assert function["Tracing"] == "PassThrough"
    assert function["Events"]["HttpApi"]["Type"] == "HttpApi"
    assert (workdir / "orders-api/src/orders_api/handler.py").is_file()


def test_plain_handler_has_no_api_event(workdir: Path, run_fleece: RunFleece) -> None:
    run_fleece("new", "demo", "--defaults", "--no-git", cwd=workdir)

    function = _function_properties((workdir / "demo/template.yaml").read_text())
    assert "Events" not in function
    assert function["Tracing"] == "Active"


def test_force_renders_into_a_non_empty_directory(
    workdir: Path, run_fleece: RunFleece
) -> None:
    target = workdir / "existing"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")

    result = run_fleece("new", "demo", "existing", "--defaults", "--force", cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert (target / "notes.txt").read_text() == "mine\n"
    assert (target / "src/demo/handler.py").is_file()
    committed = subprocess.run(
        ["git", "ls-files"], cwd=target, capture_output=True, text=True
    ).stdout.split()
    assert "notes.txt" not in committed
    assert "src/demo/handler.py" in committed


def test_force_names_the_files_it_overwrote(
    workdir: Path, run_fleece: RunFleece
) -> None:
    target = workdir / "existing"
    target.mkdir()
    (target / "README.md").write_text("mine\n")

    result = run_fleece("new", "demo", "existing", "--defaults", "--force", cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert "Overwrote (--force): README.md" in result.stdout


def test_inside_a_git_repository_no_nested_repository_is_made(
    workdir: Path, run_fleece: RunFleece
) -> None:
    subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)

    result = run_fleece("new", "demo", "--defaults", cwd=workdir)

    assert result.returncode == 0, result.stderr
    assert not (workdir / "demo/.git").exists()
    assert (workdir / "demo/src/demo/handler.py").is_file()
    assert f"Inside the git repository {workdir}" in result.stdout


def test_no_git_leaves_no_repository(workdir: Path, run_fleece: RunFleece) -> None:
    run_fleece("new", "demo", "--defaults", "--no-git", cwd=workdir)

    assert not (workdir / "demo/.git").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["9 bad/name"], "invalid service name"),
        (["demo", "--data", "colour=blue"], "unknown question"),
        (["demo", "--data", "api_style=graphql"], "not offered"),
        (["demo", "--data", "python_runtime=python3.9"], "not offered"),
        (["demo", "--data", "python_runtime=python3.11"], "deprecated python3.11"),
        (["demo", "--data", "architecture=sparc"], "not offered"),
        (["demo", "--data", "memory_size=lots"], "whole number"),
        (
            ["demo", "--data", "memory_size=64"],
            "--data memory_size=64: must be between",
        ),
        (["demo", "--data", "description=two\nlines"], "must be one line"),
        (["class"], "is a Python keyword"),
        (["demo", "--data", "package_name=json"], "standard library module"),
        (
            ["demo", "--data", "package_name=fleece_runtime"],
            "would shadow src/fleece_runtime.py",
        ),
        (["demo", "--data", "package_name=9x"], "valid lower-case Python identifier"),
        (["demo", "--data", "tracing=maybe"], "true or false"),
        (["demo", "--data", "novalue"], "KEY=VALUE"),
        (["demo", "--template", "nosuch"], "unknown template"),
        (["demo", "--data", "project_name=other"], "conflicts"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    workdir: Path, run_fleece: RunFleece, args: list[str], message: str
) -> None:
    result = run_fleece("new", *args, "--defaults", cwd=workdir)

    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert list(workdir.iterdir()) == []


def test_non_empty_destination_is_refused_and_left_as_it_was(
    workdir: Path, run_fleece: RunFleece
) -> None:
    (workdir / "demo").mkdir()
    (workdir / "demo/keep.txt").write_text("precious\n")

    result = run_fleece("new", "demo", "--defaults", cwd=workdir)

    assert result.returncode == 2
    assert "not empty" in result.stderr
    assert [p.name for p in (workdir / "demo").iterdir()] == ["keep.txt"]
    assert (workdir / "demo/keep.txt").read_text() == "precious\n"


def test_without_a_terminal_it_asks_for_defaults_instead_of_hanging(
    workdir: Path, run_fleece: RunFleece
) -> None:
    result = run_fleece("new", "demo", cwd=workdir)

    assert result.returncode == 2
    assert "--defaults" in result.stderr
    assert list(workdir.iterdir()) == []


def test_debug_shows_the_traceback(workdir: Path, run_fleece: RunFleece) -> None:
    result = run_fleece(
        "--debug", "new", "demo", "--data", "x=1", "--defaults", cwd=workdir
    )

    assert result.returncode == 2
    assert "Traceback" in result.stderr


def test_help_lists_the_questions(workdir: Path, run_fleece: RunFleece) -> None:
    result = run_fleece("new", "--help", cwd=workdir)

    assert result.returncode == 0
    for key in (
        "python_runtime",
        "architecture",
        "api_style",
        "memory_size",
        "timeout",
    ):
        assert key in result.stdout


def test_version_names_fleece(workdir: Path, run_fleece: RunFleece) -> None:
    result = run_fleece("--version", cwd=workdir)

    assert result.returncode == 0
    assert result.stdout.strip() == f"fleece, version {__version__}"


def _function_properties(template_text: str) -> dict[str, Any]:
    """The function's properties, with those of Globals under them, as SAM reads them."""

    class _Loader(yaml.SafeLoader):
        pass

    def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> object:
        return f"!{suffix}"

    _Loader.add_multi_constructor("!", _tag)
    template = yaml.load(template_text, Loader=_Loader)
    shared = template.get("Globals", {}).get("Function", {})
    own = template["Resources"]["Function"]["Properties"]
    return {**shared, **own}


def test_debug_after_the_subcommand_belongs_to_the_command(
    workdir: Path, run_fleece: RunFleece
) -> None:
    result = run_fleece(
        "run", "-e", "dev", "-c", "missing.yml", "--", "aws", "--debug", cwd=workdir
    )

    assert result.returncode == 2
    assert "missing.yml" in result.stderr
    assert "Traceback" not in result.stderr
