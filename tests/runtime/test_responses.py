"""fleece_runtime's responses and errors: HTTPError, the error collector, log_method."""

import asyncio
import io
import json
import threading
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime
from runtime_stub.fleece_runtime import (
    Classification,
    HTTPError,
    Response,
    collect,
    get_current_collector,
    log_method,
)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# -- HTTPError ------------------------------------------------------------------


def test_http_error_text_is_fleece_1x() -> None:
    assert str(HTTPError(status=404)) == "404: Not Found"
    assert (
        str(HTTPError(status=404, message="Nothing Here"))
        == "404: Not Found - Nothing Here"
    )


def test_http_error_without_a_status_is_a_500() -> None:
    error = HTTPError()

    assert (error.status_code, str(error)) == (500, "500: Internal Server Error")


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (413, "413: Request Entity Too Large"),
        (418, "418: I'm a teapot"),
        (422, "422: Unprocessable Entity"),
        (599, "599: "),
    ],
)
def test_http_error_text_is_the_same_on_every_python(status: int, text: str) -> None:
    assert str(HTTPError(status)) == text


def test_http_error_is_the_1x_module_name_too() -> None:
    assert runtime.httperror.HTTPError is HTTPError


def test_http_error_response_carries_message_details_and_headers() -> None:
    error = HTTPError(
        429, "slow down", details={"retry_in": 3}, headers={"Retry-After": "3"}
    )

    response = error.response()

    assert response.status_code == 429
    assert response.body == {
        "error": {"code": 429, "message": "slow down", "details": {"retry_in": 3}}
    }
    assert response.headers == {"Retry-After": "3"}


def test_a_subclass_sets_its_default_status() -> None:
    class Conflict(HTTPError):
        default_status = 409

    assert Conflict().status_code == 409


def test_raxauth_refusal_is_an_http_error_401() -> None:
    error = runtime.raxauth.Unauthorized("expired")

    assert isinstance(error, HTTPError)
    assert (error.status_code, str(error)) == (401, "401: Unauthorized - expired")


# -- Response ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status", "body"),
    [
        (None, 204, None),
        ({"a": 1}, 200, {"a": 1}),
        (("x", 201), 201, "x"),
        (("x", 201, {"H": "v"}), 201, "x"),
    ],
)
def test_response_of_a_route_value(value: object, status: int, body: object) -> None:
    response = Response.of(value)

    assert (response.status_code, response.body) == (status, body)


def test_json_bodies_use_the_runtime_encoder() -> None:
    from datetime import date
    from decimal import Decimal

    request = runtime.parse_event(runtime.testing.http_api_event())
    assert isinstance(request, runtime.HttpRequest)

    result = Response(
        200, {"day": date(2025, 3, 10), "total": Decimal("9.50"), "tags": {"b", "a"}}
    ).render(request)

    assert result["body"] == '{"day":"2025-03-10","total":9.5,"tags":["a","b"]}'


# -- the error collector -------------------------------------------------------------


@collect
def check(sku: str) -> str:
    if not sku.startswith("a"):
        raise HTTPError(400, f"unknown sku {sku}", details={"sku": sku})
    return sku


def test_a_root_collects_the_errors_of_collected_calls() -> None:
    with collect(root=True) as collector:
        accepted = [sku for sku in map(check, ["a-1", "b-2", "c-3"]) if sku]

    assert accepted == ["a-1"]
    assert [error.message for error in collector.errors] == [
        "unknown sku b-2",
        "unknown sku c-3",
    ]
    assert collector.status == 400


def test_without_a_collector_the_error_propagates() -> None:
    with pytest.raises(HTTPError, match="unknown sku b-2"):
        check("b-2")


def test_the_current_collector_is_the_roots() -> None:
    assert get_current_collector() is None

    with collect(root=True) as collector:
        assert get_current_collector() is collector

    assert get_current_collector() is None


def test_a_root_decorator_installs_a_collector_for_the_call() -> None:
    @collect(root=True)
    def handler() -> int:
        check("b-1")
        collector = get_current_collector()
        assert collector is not None
        return len(collector.errors)

    assert handler() == 1


def test_an_inner_root_hands_its_errors_to_the_outer_one() -> None:
    with collect(root=True) as outer:
        with collect(root=True) as inner:
            check("b-1")
        assert inner.errors and outer.errors == inner.errors


def test_other_exceptions_are_not_collected() -> None:
    @collect
    def broken() -> None:
        raise ValueError("bug")

    with collect(root=True) as collector, pytest.raises(ValueError, match="bug"):
        broken()

    assert collector.errors == []


def test_a_non_root_block_collects_too() -> None:
    with collect(root=True) as collector:
        with collect():
            raise HTTPError(404)
        reached = True

    assert reached and collector.status == 404


def test_the_collector_merges_into_a_response() -> None:
    with collect(root=True) as collector:
        check("b-2")

    response = collector.apply(Response(200, {"updated": ["a-1"]}))

    assert response.status_code == 400
    assert response.body == {
        "updated": ["a-1"],
        "error": [
            {
                "code": 400,
                "msg": "unknown sku b-2",
                "classification": "NA",
                "details": {"sku": "b-2"},
            }
        ],
    }


def test_a_cleared_collector_changes_nothing() -> None:
    with collect(root=True) as collector:
        check("b-2")
        collector.clear()

    response = Response(200, {"ok": True})

    assert collector.apply(response) is response


def test_collectors_belong_to_their_thread() -> None:
    seen: list[object] = []

    with collect(root=True):
        thread = threading.Thread(target=lambda: seen.append(get_current_collector()))
        thread.start()
        thread.join()

    assert seen == [None]


def test_async_functions_are_collected() -> None:
    @collect
    async def fetch() -> str:
        raise HTTPError(502)

    async def main() -> tuple[object, int | None]:
        with collect(root=True) as collector:
            result = await fetch()
        return result, collector.status

    assert asyncio.run(main()) == (None, 502)


# -- log_method ------------------------------------------------------------------------


def test_log_method_logs_entry_and_exit(stream: io.StringIO) -> None:
    runtime.get_logger().setLevel("DEBUG")

    @log_method(operation="subscribe", type="AUDIT")
    def subscribe(customer: str, plan: str = "basic") -> dict[str, str]:
        return {"customer": customer, "plan": plan}

    subscribe("c-1", plan="pro")

    entry, exit_ = lines(stream)
    assert entry["level"] == "DEBUG"
    assert entry["event"].startswith("Entering ") and entry["event"].endswith(
        "subscribe"
    )
    assert entry["arguments"] == {"customer": "c-1", "plan": "pro"}
    assert (entry["operation"], entry["type"]) == ("subscribe", "AUDIT")
    assert exit_["level"] == "INFO"
    assert exit_["result"] == {"customer": "c-1", "plan": "pro"}
    assert exit_["operation"] == "subscribe"


def test_log_method_fields_do_not_stick_to_later_lines(stream: io.StringIO) -> None:
    @log_method(classification=Classification.PII, operation="pay")
    def pay() -> None:
        pass

    pay()
    runtime.get_logger("later").info("after")

    last = lines(stream)[-1]
    assert last["event"] == "after"
    assert "classification" not in last and "operation" not in last


def test_log_method_logs_an_exception_once(stream: io.StringIO) -> None:
    @log_method
    def inner() -> None:
        raise ValueError("broken")

    @log_method
    def outer() -> None:
        inner()

    with pytest.raises(ValueError, match="broken"):
        outer()

    errors = [line for line in lines(stream) if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["event"].endswith("inner")
    assert errors[0]["exception"].count("Traceback") == 1


def test_log_method_without_log_exception_leaves_it_to_the_caller(
    stream: io.StringIO,
) -> None:
    @log_method(log_exception=False)
    def inner() -> None:
        raise ValueError("broken")

    @log_method
    def outer() -> None:
        inner()

    with pytest.raises(ValueError):
        outer()

    (error,) = [line for line in lines(stream) if line["level"] == "ERROR"]
    assert error["event"].endswith("outer")


def test_log_method_redacts_classified_calls() -> None:
    out = io.StringIO()
    runtime.setup_root_logger("DEBUG", stream=out, redact_above=Classification.NA)

    @log_method(classification=Classification.PII)
    def sign_up(email: str) -> str:
        return email

    sign_up("a@example.com")

    assert "a@example.com" not in out.getvalue()
    assert [line["classification"] for line in lines(out)] == ["PII", "PII"]


def test_log_method_leaves_self_out_of_the_arguments(stream: io.StringIO) -> None:
    runtime.get_logger().setLevel("DEBUG")

    class Orders:
        @log_method
        def save(self, order_id: str) -> None:
            pass

    Orders().save("o-1")

    assert lines(stream)[0]["arguments"] == {"order_id": "o-1"}


def test_log_method_keeps_the_function_name_and_works_on_async(
    stream: io.StringIO,
) -> None:
    @log_method
    async def load(order_id: str) -> str:
        return order_id

    assert load.__name__ == "load"
    assert asyncio.run(load("o-1")) == "o-1"
    assert lines(stream)[-1]["result"] == "o-1"
