"""fleece_runtime's Result pipelines: Ok and Err, at run time and for mypy --strict."""

import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime
from runtime_stub.fleece_runtime import Err, Ok, Result, UnwrapError, result_try
from tests.runtime.conftest import RUNTIME_DIR


def parse(text: str) -> Result[int, str]:
    return Ok(int(text)) if text.isdigit() else Err(f"not a number: {text}")


def positive(number: int) -> Result[int, str]:
    return Ok(number) if number > 0 else Err("not positive")


def test_map_and_bind_run_the_steps_of_a_success() -> None:
    result = parse("41").map(lambda n: n + 1).bind(positive).and_then(positive)

    assert result == Ok(42)
    assert result.is_ok() and not result.is_err()


def test_the_first_failure_of_a_pipeline_comes_out() -> None:
    calls: list[int] = []

    def spy(number: int) -> Result[int, str]:
        calls.append(number)
        return Ok(number)

    result = parse("x").bind(spy).map(lambda n: n * 2).bind(positive)

    assert result == Err("not a number: x")
    assert result.is_err() and not result.is_ok()
    assert calls == []


def test_map_err_changes_only_errors() -> None:
    assert parse("x").map_err(len) == Err(15)
    assert parse("7").map_err(len) == Ok(7)


def test_unwrap_gives_the_value_or_raises_unwrap_error() -> None:
    assert parse("7").unwrap() == 7
    with pytest.raises(UnwrapError, match="not a number: x") as raised:
        parse("x").unwrap()
    assert raised.value.result == Err("not a number: x")


def test_unwrap_of_an_exception_error_is_chained_from_it() -> None:
    error = KeyError("price")

    with pytest.raises(UnwrapError) as raised:
        Err(error).unwrap()

    assert raised.value.__cause__ is error


def test_unwrap_or_and_unwrap_or_else_give_a_default_for_errors() -> None:
    assert parse("7").unwrap_or(0) == 7
    assert parse("x").unwrap_or(0) == 0
    assert parse("7").unwrap_or_else(len) == 7
    assert parse("x").unwrap_or_else(len) == 15


def test_unwrap_err_gives_the_error_or_raises() -> None:
    assert parse("x").unwrap_err() == "not a number: x"
    with pytest.raises(UnwrapError):
        parse("7").unwrap_err()


def test_results_match_by_pattern() -> None:
    def describe(result: Result[int, str]) -> str:
        match result:
            case Ok(value):
                return f"got {value}"
            case Err(error):
                return f"failed: {error}"

    assert describe(parse("3")) == "got 3"
    assert describe(parse("three")) == "failed: not a number: three"


def test_results_compare_and_hash_by_content() -> None:
    assert Ok(1) == Ok(1) and Ok(1) != Ok(2) and Ok(1) != Err(1)
    assert len({Ok(1), Ok(1), Err(1)}) == 2
    assert repr(Ok("a")) == "Ok('a')" and repr(Err(3)) == "Err(3)"


def test_result_is_a_type_and_an_annotation_at_run_time() -> None:
    assert isinstance(Ok(1), Result)
    assert isinstance(Err("x"), Result)
    assert not isinstance(1, Result)
    alias: Any = Result
    assert alias[int, str] is alias
    assert Ok[int] is Ok and Err[str] is Err


def test_result_try_turns_the_listed_exceptions_into_err() -> None:
    @result_try(KeyError, ValueError)
    def price(order: dict[str, str]) -> Decimal:
        return Decimal(int(order["price"]))

    assert price({"price": "9"}) == Ok(Decimal(9))
    assert isinstance(price({}).unwrap_err(), KeyError)
    assert isinstance(price({"price": "nine"}).unwrap_err(), ValueError)
    assert price.__name__ == "price"


def test_result_try_lets_other_exceptions_through() -> None:
    @result_try(KeyError)
    def divide(a: int, b: int) -> float:
        return a / b

    with pytest.raises(ZeroDivisionError):
        divide(1, 0)


def test_result_try_needs_exception_types() -> None:
    with pytest.raises(TypeError, match="one exception type or more"):
        result_try()
    with pytest.raises(TypeError):
        result_try(str)  # type: ignore[type-var]


PIPELINE = """
from decimal import Decimal
from typing import assert_type

from fleece_runtime import Err, Ok, Result, result_try


def parse(text: str) -> Result[int, str]:
    return Ok(int(text)) if text.isdigit() else Err("not a number")


def half(number: int) -> Result[float, str]:
    return Ok(number / 2) if number % 2 == 0 else Err("odd")


@result_try(KeyError, ValueError)
def price(order: dict[str, str]) -> Decimal:
    return Decimal(order["price"])


pipeline = parse("4").map(lambda n: n + 2).bind(half).map(str)
assert_type(pipeline, Ok[str] | Err[str])
assert_type(pipeline.unwrap_or(None), str | None)
assert_type(parse("4").and_then(half).unwrap_or(0.0), float)
assert_type(parse("4").map_err(len), Ok[int] | Err[int])
assert_type(price({}), Ok[Decimal] | Err[Exception])

match parse("4"):
    case Ok(value):
        assert_type(value, int)
    case Err(error):
        assert_type(error, str)
"""


# What a generated service's pyproject.toml tells mypy about the runtime's
# optional imports.
MYPY_CONFIG = """
[mypy]
strict = True

[mypy-boto3.*,botocore.*,aws_xray_sdk.*,urllib3.*,connexion.*,starlette.*,requests.*]
ignore_missing_imports = True
"""


def mypy(folder: Path, source: str) -> subprocess.CompletedProcess[str]:
    """mypy --strict on ``source`` in ``folder``, as a service using the runtime runs it."""
    (folder / "mypy.ini").write_text(MYPY_CONFIG)
    (folder / "check.py").write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "check.py"],
        capture_output=True,
        text=True,
        env={"MYPYPATH": str(RUNTIME_DIR), "PATH": "/usr/bin:/bin"},
        cwd=folder,
    )


def test_mypy_strict_infers_types_through_a_pipeline(tmp_path: Path) -> None:
    result = mypy(tmp_path, PIPELINE)

    assert result.returncode == 0, result.stdout


def test_mypy_strict_rejects_a_step_of_the_wrong_type(tmp_path: Path) -> None:
    result = mypy(
        tmp_path,
        """
        from fleece_runtime import Ok, Result

        def needs_text(value: str) -> Result[str, str]:
            return Ok(value)

        Ok(1).bind(needs_text)
        """,
    )

    assert result.returncode == 1
    assert 'Argument 1 to "bind" of "Ok" has incompatible type' in result.stdout


def test_the_names_are_the_runtime_module_s() -> None:
    assert runtime.Ok is Ok and runtime.result_try is result_try
