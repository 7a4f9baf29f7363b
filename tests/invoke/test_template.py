"""Reading the function of a service's template.yaml (AWS SAM)."""

from pathlib import Path

import pytest

from fleece.errors import BadInput
from fleece.service.sam import load_function


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "template.yaml").write_text(text)
    return tmp_path


def test_sam_defaults_apply_when_nothing_is_set(tmp_path: Path) -> None:
    service = write(
        tmp_path,
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties:\n      Handler: app.handler\n",
    )

    function = load_function(service)

    assert (function.logical_id, function.handler) == ("Fn", "app.handler")
    assert (function.timeout, function.memory_size, function.function_name) == (
        3,
        128,
        None,
    )


def test_a_timeout_may_come_from_a_parameter(tmp_path: Path) -> None:
    service = write(
        tmp_path,
        "Parameters:\n  Seconds:\n    Type: Number\n    Default: 12\n"
        "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
        "    Properties:\n      Handler: app.handler\n      Timeout: !Ref Seconds\n",
    )

    assert load_function(service).timeout == 12


def test_several_functions_need_a_name(tmp_path: Path) -> None:
    function = (
        "    Type: AWS::Serverless::Function\n    Properties:\n      Handler: a.b\n"
    )
    service = write(tmp_path, f"Resources:\n  One:\n{function}  Two:\n{function}")

    with pytest.raises(
        BadInput, match=r"declares 2 functions \(One, Two\): name one with --function"
    ):
        load_function(service)
    assert load_function(service, "Two").logical_id == "Two"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Resources: [", "is not valid YAML"),
        ("- a list", "holds no mapping"),
        (
            "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n    Properties:\n      Handler: nodot\n",
            "has no Handler of the form module.function",
        ),
        (
            "Resources:\n  Fn:\n    Type: AWS::Serverless::Function\n"
            "    Properties:\n      Handler: a.b\n      Timeout: soon\n",
            "Timeout must be a positive whole number",
        ),
    ],
)
def test_templates_that_cannot_serve_are_bad_input(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(BadInput, match=message):
        load_function(write(tmp_path, text))
