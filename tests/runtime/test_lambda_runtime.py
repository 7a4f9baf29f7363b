"""The runtime's log lines under Lambda's own Python runtime client.

awslambdaric is what Lambda's managed Python runtimes run: it fetches events
from the Runtime API, calls the handler and installs a root log handler of its
own, which writes JSON objects of its own when the function's log format is
JSON (``AWS_LAMBDA_LOG_FORMAT``) and sets the root level from the application
log level (``AWS_LAMBDA_LOG_LEVEL``). Here it runs a handler in a subprocess,
as Lambda starts it, against a Runtime API that the test serves on
127.0.0.1; without Lambda's telemetry pipe its log sink is stdout, where the
handler's own lines go too, so stdout holds every line CloudWatch would.
"""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.conftest import RUNTIME_DIR
from tests.runtime.runtime_servers import HttpServer
from tests.venvs import offline_environ

REQUEST_ID = "8f5c9a36-2b3e-4f7d-9d1a-0c6f1e2d3b4a"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders-api"
NEXT = "/2018-06-01/runtime/invocation/next"
RESPONSE = f"/2018-06-01/runtime/invocation/{REQUEST_ID}/response"

HANDLER = """
import logging

from fleece_runtime import get_logger, inject_request_ids_into_environment, setup_root_logger

setup_root_logger()
logger = get_logger("orders")


@inject_request_ids_into_environment
def handler(event, context):
    logger.debug("order_checked", order_id=event["order_id"])
    logger.info("order_saved", order_id=event["order_id"])
    logging.getLogger("library").warning("plain %s", "record")
    try:
        1 / 0
    except ZeroDivisionError:
        logger.exception("order_failed")
    return {"saved": event["order_id"]}
"""


def _runtime_api(server: HttpServer) -> None:
    """Answer as Lambda's Runtime API: one event, then no more."""

    def respond(
        attempt: int, request: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, str], bytes]:
        if request.path == NEXT and attempt == 1:
            deadline = str(int(time.time() * 1000) + 30_000)
            headers = {
                "Lambda-Runtime-Aws-Request-Id": REQUEST_ID,
                "Lambda-Runtime-Deadline-Ms": deadline,
                "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                "Content-Type": "application/json",
            }
            return 200, headers, b'{"order_id": 7}'
        if request.path == NEXT:
            return 500, {}, b'{"errorMessage": "no more events in this test"}'
        return 202, {}, b"{}"

    server.responder = respond


@pytest.fixture
def runtime_api(http_server: HttpServer) -> Iterator[HttpServer]:
    _runtime_api(http_server)
    yield http_server


def _invoke(server: HttpServer, folder: Path, **environ: str) -> list[dict[str, Any]]:
    """Run the handler once under awslambdaric; the JSON objects it wrote to stdout."""
    (folder / "app.py").write_text(HANDLER)
    env = offline_environ(
        AWS_LAMBDA_RUNTIME_API=server.url.removeprefix("http://"),
        AWS_LAMBDA_FUNCTION_NAME="orders-api",
        PYTHONPATH=f"{folder}:{RUNTIME_DIR}",
        **environ,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", "app.handler"],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(r["path"] == RESPONSE for r in server.exchange.requests):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the handler never answered"
            time.sleep(0.05)
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    (answer,) = [r for r in server.exchange.requests if r["path"] == RESPONSE]
    assert json.loads(answer["body"]) == {"saved": 7}, err
    objects = []
    for line in out.splitlines():
        value = json.loads(line)  # every line is one JSON object
        assert isinstance(value, dict), line
        objects.append(value)
    return objects


def test_lines_stay_one_json_object_each_under_lambdas_json_log_format(
    runtime_api: HttpServer, tmp_path: Path
) -> None:
    objects = _invoke(
        runtime_api,
        tmp_path,
        AWS_LAMBDA_LOG_FORMAT="JSON",
        AWS_LAMBDA_LOG_LEVEL="DEBUG",
        SERVICE_NAME="orders-api",
    )

    # Lambda's own JSON objects say "message"; none wraps one of ours.
    assert [o for o in objects if "message" in o] == []
    assert [(o["level"], o["logger"], o["event"]) for o in objects] == [
        ("DEBUG", "orders", "order_checked"),
        ("INFO", "orders", "order_saved"),
        ("WARNING", "library", "plain record"),
        ("ERROR", "orders", "order_failed"),
    ]
    for line in objects:
        assert line["service"] == "orders-api"
        assert line["lambda_request_id"] == REQUEST_ID
    assert "ZeroDivisionError" in objects[-1]["exception"]


@pytest.mark.parametrize(
    ("environ", "shown"),
    [
        ({}, False),
        ({"LOG_LEVEL": "DEBUG"}, True),
        ({"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "TRACE"}, True),
        (
            {
                "AWS_LAMBDA_LOG_FORMAT": "JSON",
                "AWS_LAMBDA_LOG_LEVEL": "INFO",
                "LOG_LEVEL": "DEBUG",
            },
            False,
        ),
    ],
)
def test_debug_lines_follow_the_configured_level(
    runtime_api: HttpServer, tmp_path: Path, environ: dict[str, str], shown: bool
) -> None:
    objects = _invoke(runtime_api, tmp_path, **environ)

    assert ("order_checked" in [o["event"] for o in objects]) is shown
    assert "service" not in objects[0]
