"""Lambda invoke: through moto's server, and a Lambda endpoint on 127.0.0.1 for errors."""

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote

import pytest
import requests
from botocore.config import Config

from runtime_stub import fleece_runtime as runtime
from tests.runtime.runtime_servers import HttpServer
from tests.servers import pause

ERROR_PAYLOAD = {
    "errorMessage": "no order 7",
    "errorType": "KeyError",
    "stackTrace": ['  File "/var/task/orders.py", line 9, in handler\n'],
    "requestId": "f1",
}


@pytest.fixture
def moto_lambda(aws: str) -> Iterator[str]:
    """moto's server running functions without Docker: it answers their payload."""
    requests.post(
        f"{aws}/moto-api/config", json={"lambda": {"use_docker": False}}, timeout=10
    ).raise_for_status()
    try:
        yield aws
    finally:
        requests.post(
            f"{aws}/moto-api/config", json={"lambda": {"use_docker": True}}, timeout=10
        ).raise_for_status()


def queue_results(endpoint: str, region: str, *results: str) -> None:
    """The payloads moto's functions answer next, in ``region``."""
    requests.post(
        f"{endpoint}/moto-api/static/lambda-simple/response",
        json={"results": list(results), "region": region},
        timeout=10,
    ).raise_for_status()


@pytest.fixture
def endpoint(
    aws: str, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> HttpServer:
    """A Lambda endpoint on 127.0.0.1 whose answers the test writes."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", http_server.url)
    http_server.responder = lambda n, request: (200, {}, b'{"ok": true}')
    return http_server


def invoked(server: HttpServer) -> list[str]:
    """The function names the endpoint was asked to invoke."""
    return [unquote(r["path"].split("/")[3]) for r in server.exchange.requests]


def function_error(
    attempt: int, request: BaseHTTPRequestHandler
) -> tuple[int, dict[str, str], bytes]:
    headers = {"X-Amz-Function-Error": "Unhandled", "X-Amz-Executed-Version": "3"}
    return 200, headers, json.dumps(ERROR_PAYLOAD).encode()


def test_invoke_returns_the_function_s_result_decoded(moto_lambda: str) -> None:
    queue_results(moto_lambda, "us-east-1", '{"total": 12, "items": [1, 2]}')

    assert runtime.invoke("orders", {"order": 7}) == {"total": 12, "items": [1, 2]}


def test_the_payload_is_sent_as_json_through_the_runtime_encoder(
    moto_lambda: str,
) -> None:
    @dataclass
    class Order:
        id: int
        tags: set[str]

    # moto's function answers what it was sent.
    assert runtime.invoke("orders", Order(7, {"b", "a"})) == {
        "id": 7,
        "tags": ["a", "b"],
    }


def test_a_full_arn_is_invoked_in_its_own_region(moto_lambda: str) -> None:
    queue_results(moto_lambda, "eu-west-1", '"from eu-west-1"')
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:orders"

    assert runtime.invoke(arn, {}) == "from eu-west-1"


def test_invoke_async_is_accepted_with_202(moto_lambda: str) -> None:
    result = runtime.invoke_async("orders", {"order": 7})

    assert result.status == 202
    assert result.function_error is None
    assert result.request_id


def test_a_function_error_raises_its_type_message_and_stack(
    endpoint: HttpServer,
) -> None:
    endpoint.responder = function_error

    with pytest.raises(runtime.FunctionError) as raised:
        runtime.invoke("orders", {"order": 7})

    error = raised.value
    assert (error.error_type, error.error_message) == ("KeyError", "no order 7")
    assert error.stack_trace == ERROR_PAYLOAD["stackTrace"]
    assert error.kind == "Unhandled"
    assert str(error) == "orders failed (Unhandled): KeyError: no order 7"
    assert error.result.executed_version == "3"
    assert error.result.payload == ERROR_PAYLOAD


def test_invoke_result_returns_a_function_error_without_raising(
    endpoint: HttpServer,
) -> None:
    endpoint.responder = function_error

    result = runtime.invoke_result("orders", {})

    assert (result.status, result.function_error) == (200, "Unhandled")
    assert json.loads(result.text) == ERROR_PAYLOAD
    with pytest.raises(runtime.FunctionError):
        result.raise_for_function_error()


@pytest.mark.parametrize(
    ("function", "name"),
    [
        ("orders", "orders"),
        ("orders:live", "orders:live"),
        ("123456789012:function:orders", "123456789012:function:orders"),
        ("{STAGE}-orders", "prod-orders"),
        ("arn:aws:lambda:us-east-1:123456789012:function:orders", None),
    ],
)
def test_functions_are_named_by_name_alias_partial_or_full_arn_and_placeholders(
    endpoint: HttpServer,
    monkeypatch: pytest.MonkeyPatch,
    function: str,
    name: str | None,
) -> None:
    monkeypatch.setenv("STAGE", "prod")

    runtime.invoke(function)

    assert invoked(endpoint) == [name or function]


def test_the_client_context_reaches_the_function_as_custom(
    endpoint: HttpServer,
) -> None:
    runtime.invoke("orders", {}, client_context={"country": "SE"})

    header = endpoint.exchange.requests[0]["headers"]["X-Amz-Client-Context"]
    assert json.loads(base64.b64decode(header)) == {"custom": {"country": "SE"}}


def test_the_invocation_types_are_sent(endpoint: HttpServer) -> None:
    runtime.invoke("orders")
    runtime.invoke_async("orders")
    runtime.invoke_result("orders", invocation_type="DryRun")

    assert [
        r["headers"]["X-Amz-Invocation-Type"] for r in endpoint.exchange.requests
    ] == ["RequestResponse", "Event", "DryRun"]


def test_an_empty_answer_is_none(endpoint: HttpServer) -> None:
    endpoint.responder = lambda n, request: (200, {}, b"")

    assert runtime.invoke("orders") is None


def test_a_config_is_merged_over_the_defaults(endpoint: HttpServer) -> None:
    def slow(
        attempt: int, request: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, str], bytes]:
        pause(request, 30)
        return 200, {}, b"{}"

    endpoint.responder = slow
    config = Config(read_timeout=0.5, retries={"total_max_attempts": 1})

    started = time.monotonic()
    with pytest.raises(Exception, match="Read timeout"):
        runtime.invoke("orders", config=config)

    assert time.monotonic() - started < 0.5 + 2.0  # not the 30 s answer
    assert endpoint.attempts == 1


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: runtime.invoke("orders/../x"), ValueError, "not a Lambda function"),
        (lambda: runtime.invoke("{STAGE}-orders"), ValueError, "STAGE is not set"),
        (lambda: runtime.invoke("{stage}-orders"), ValueError, "UPPERCASE"),
        (lambda: runtime.invoke(7), TypeError, "name or an ARN"),  # type: ignore[arg-type]
        (
            lambda: runtime.invoke("orders", object()),
            TypeError,
            "cannot be sent as JSON",
        ),
        (
            lambda: runtime.invoke("orders", {}, client_context={"x": "y" * 3000}),
            ValueError,
            "at most 3583",
        ),
        (
            lambda: runtime.invoke_result("orders", invocation_type="Later"),
            ValueError,
            "invocation_type",
        ),
        (
            lambda: runtime.invoke("orders", config={"read_timeout": 1}),
            TypeError,
            "botocore.config.Config",
        ),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(
    endpoint: HttpServer,
    monkeypatch: pytest.MonkeyPatch,
    call: object,
    error: type[Exception],
    message: str,
) -> None:
    monkeypatch.delenv("STAGE", raising=False)

    with pytest.raises(error, match=message):
        call()  # type: ignore[operator]

    assert endpoint.attempts == 0


def test_no_region_is_a_clear_error(
    endpoint: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")

    with pytest.raises(ValueError, match="no AWS region to invoke"):
        runtime.invoke("orders")


def test_clients_are_kept_between_calls(endpoint: HttpServer) -> None:
    runtime.invoke("orders")
    runtime.invoke("orders")

    assert runtime._lambda_client.cache_info().currsize == 1
    assert endpoint.exchange.connections == 1
