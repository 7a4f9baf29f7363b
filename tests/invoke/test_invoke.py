"""`fleece invoke`: a service's handler, run once as Lambda would, in the service's environment.

The services are real: one made by `fleece new`, others written here with a
template.yaml and a handler that reports what it was given. Each gets its
own `.venv` (no packages: these handlers need only the standard library).
"""

import json
import re
import subprocess
import uuid
import venv
from pathlib import Path
from typing import Any

import pytest

from tests.new.conftest import RunFleece

TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage:
    Type: String
    Default: dev
Globals:
  Function:
    Timeout: {timeout}
    Environment:
      Variables:
        FROM_GLOBALS: "yes"
Resources:
  Function:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: reporter
      CodeUri: dist/lambda_function.zip
      Handler: app.handler.handler
      Runtime: python3.12
      MemorySize: 512
      Environment:
        Variables:
          STAGE: !Ref Stage
          GREETING: !Sub "hello ${{Stage}} in ${{AWS::Region}}"
          TABLE: !GetAtt Table.Arn
          DEBUG: false
  Table:
    Type: AWS::DynamoDB::Table
"""

HANDLER = """\
import os
import time

print("imported")


def handler(event, context):
    first = context.get_remaining_time_in_millis()
    time.sleep(event.get("sleep", 0.05))
    if event.get("fail"):
        raise ValueError("the event asked for it")
    if event.get("unserializable"):
        return {"when": object()}
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "memory": context.memory_limit_in_mb,
        "arn": context.invoked_function_arn,
        "log_group": context.log_group_name,
        "remaining": [first, context.get_remaining_time_in_millis()],
        "env": {name: os.environ.get(name) for name in (
            "STAGE", "GREETING", "TABLE", "DEBUG", "FROM_GLOBALS", "EXTRA",
            "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION",
        )},
    }
"""


def make_env(folder: Path) -> None:
    """A bare virtual environment: the Python the service's handler runs in."""
    venv.EnvBuilder(with_pip=False, clear=True, symlinks=True).create(folder)


@pytest.fixture
def service(tmp_path: Path) -> Path:
    """A service whose handler reports its event, context and environment."""
    root = tmp_path / "reporter"
    (root / "src" / "app").mkdir(parents=True)
    (root / "src" / "app" / "__init__.py").write_text("")
    (root / "src" / "app" / "handler.py").write_text(HANDLER)
    (root / "template.yaml").write_text(TEMPLATE.format(timeout=5))
    (root / "events").mkdir()
    (root / "events" / "ping.json").write_text('{"ping": 1}')
    make_env(root / ".venv")
    return root


def fleece_invoke(
    run_fleece: RunFleece, service: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return run_fleece("invoke", str(service), *args, cwd=service.parent, stdin=stdin)


def answer(done: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(done.stdout)


@pytest.fixture
def shop(tmp_path: Path, run_fleece: RunFleece) -> Path:
    """A service made by `fleece new` in the router style, with its .venv."""
    created = run_fleece(
        "new", "shop", "--defaults", "--data", "api_style=router", cwd=tmp_path
    )
    assert created.returncode == 0, created.stderr
    make_env(tmp_path / "shop" / ".venv")
    return tmp_path / "shop"


def test_invokes_a_generated_router_service(shop: Path, run_fleece: RunFleece) -> None:
    done = fleece_invoke(run_fleece, shop, "--event", "apigw_http_v2")

    assert done.returncode == 0, done.stderr
    result = answer(done)
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"message": "Hello, fleece!"}
    request_id = re.search(r"START RequestId: (\S+) Version: \$LATEST", done.stderr)
    assert request_id is not None
    (line,) = [json.loads(x) for x in done.stderr.splitlines() if x.startswith("{")]
    assert (line["lambda_request_id"], line["route"], line["status"]) == (
        request_id.group(1),
        "/hello",
        200,
    )


def test_invokes_a_generated_sqs_batch_with_a_partial_failure(
    shop: Path, run_fleece: RunFleece
) -> None:
    event = json.loads((shop / "events" / "sqs_receive.json").read_text())

    done = fleece_invoke(run_fleece, shop, "--event", "sqs_receive")

    assert done.returncode == 0, done.stderr
    assert answer(done) == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]
    }


def test_the_context_is_lambdas(service: Path, run_fleece: RunFleece) -> None:
    done = fleece_invoke(run_fleece, service, "--event", "ping")

    assert done.returncode == 0, done.stderr
    result = answer(done)
    assert result["event"] == {"ping": 1}
    assert uuid.UUID(result["request_id"])
    assert (result["function_name"], result["function_version"]) == (
        "reporter",
        "$LATEST",
    )
    assert result["memory"] == "512"
    assert result["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:reporter"
    assert result["log_group"] == "/aws/lambda/reporter"
    first, second = result["remaining"]
    assert 4000 < first <= 5000
    assert second <= first - 40


def test_the_environment_is_the_templates(service: Path, run_fleece: RunFleece) -> None:
    done = fleece_invoke(run_fleece, service, "--env", "EXTRA=1", "--env", "STAGE=prod")

    assert done.returncode == 0, done.stderr
    assert answer(done)["env"] == {
        "STAGE": "prod",
        "GREETING": "hello dev in us-east-1",
        "TABLE": None,
        "DEBUG": "false",
        "FROM_GLOBALS": "yes",
        "EXTRA": "1",
        "AWS_LAMBDA_FUNCTION_NAME": "reporter",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "us-east-1",
    }
    assert (
        "TABLE is not set: only CloudFormation can resolve its value; pass --env TABLE=VALUE"
        in done.stderr
    )


def test_the_event_comes_from_standard_input(
    service: Path, run_fleece: RunFleece
) -> None:
    done = fleece_invoke(run_fleece, service, "--event", "-", stdin='{"from": "stdin"}')

    assert answer(done)["event"] == {"from": "stdin"}


def test_the_event_comes_from_a_file(
    service: Path, run_fleece: RunFleece, tmp_path: Path
) -> None:
    path = tmp_path / "event.json"
    path.write_text('{"from": "file"}')

    done = fleece_invoke(run_fleece, service, "--event", str(path))

    assert answer(done)["event"] == {"from": "file"}


def test_the_handlers_output_goes_to_the_log_not_the_answer(
    service: Path, run_fleece: RunFleece
) -> None:
    done = fleece_invoke(run_fleece, service)

    assert "imported" in done.stderr
    assert answer(done)["event"] == {}


def test_a_raising_handler_exits_1_with_lambdas_error(
    service: Path, run_fleece: RunFleece
) -> None:
    done = fleece_invoke(run_fleece, service, "--event", "-", stdin='{"fail": true}')

    assert done.returncode == 1
    assert (
        "[ERROR] ValueError: the event asked for it\nTraceback (most recent call last):\n"
        in done.stderr
    )
    assert 'app/handler.py", line 11, in handler' in done.stderr
    assert "invoke_child" not in done.stderr
    error = answer(done)
    assert (error["errorType"], error["errorMessage"]) == (
        "ValueError",
        "the event asked for it",
    )
    assert "raise ValueError" in error["stackTrace"][-1]


def test_a_handler_running_past_its_timeout_is_stopped(
    service: Path, run_fleece: RunFleece
) -> None:
    (service / "template.yaml").write_text(TEMPLATE.format(timeout=1))

    done = fleece_invoke(run_fleece, service, "--event", "-", stdin='{"sleep": 30}')

    assert done.returncode == 1
    assert "Task timed out after 1.00 seconds" in done.stderr
    assert "Task timed out after 1.00 seconds" in answer(done)["errorMessage"]


def test_an_answer_json_cannot_hold_is_lambdas_marshal_error(
    service: Path, run_fleece: RunFleece
) -> None:
    done = fleece_invoke(
        run_fleece, service, "--event", "-", stdin='{"unserializable": true}'
    )

    assert done.returncode == 1
    assert answer(done)["errorType"] == "Runtime.MarshalError"


def test_a_handler_that_cannot_be_imported_is_lambdas_import_error(
    service: Path, run_fleece: RunFleece
) -> None:
    (service / "src" / "app" / "handler.py").write_text(
        "import not_installed_anywhere\n"
    )

    done = fleece_invoke(run_fleece, service)

    assert done.returncode == 1
    assert answer(done)["errorType"] == "Runtime.ImportModuleError"
    assert "No module named 'not_installed_anywhere'" in answer(done)["errorMessage"]


def test_the_active_environment_serves_when_there_is_no_venv(
    service: Path,
    run_fleece: RunFleece,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (service / ".venv").rename(tmp_path / "elsewhere")
    monkeypatch.setenv("VIRTUAL_ENV", str(tmp_path / "elsewhere"))

    done = fleece_invoke(run_fleece, service)

    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["--event", "nothing"],
            "",
            "no event 'nothing': not a file, nor in events/ (its events: ping)",
        ),
        (["--event", "-"], "{oops", "the event in standard input is not JSON"),
        (["--env", "NO_EQUALS"], "", "--env takes KEY=VALUE"),
        (
            ["--function", "Other"],
            "",
            "has no function 'Other' (its functions: Function)",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    service: Path, run_fleece: RunFleece, args: list[str], stdin: str, message: str
) -> None:
    done = fleece_invoke(run_fleece, service, *args, stdin=stdin)

    assert done.returncode == 2
    assert done.stdout == ""
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_without_an_environment_it_says_how_to_make_one(
    service: Path, run_fleece: RunFleece, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    (service / ".venv" / "bin" / "python").unlink()

    done = fleece_invoke(run_fleece, service)

    assert done.returncode == 2
    assert "has no .venv and no virtual environment is active" in done.stderr


def test_a_folder_without_a_template_is_refused(
    tmp_path: Path, run_fleece: RunFleece
) -> None:
    done = run_fleece("invoke", str(tmp_path), cwd=tmp_path)

    assert done.returncode == 2
    assert "template.yaml is missing" in done.stderr
