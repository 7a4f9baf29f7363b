"""Declarative calls: HttpClient.method, as pypwext's http.method documents them."""

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.runtime_servers import HttpServer
from tests.runtime.test_invoke import endpoint, function_error

__all__ = ["endpoint"]  # a fixture used here

http = runtime.HttpClient(backoff=0.01)


@dataclass
class Customer:
    email: str
    age: int | None = None


class Model:
    """Like a pydantic 2 model."""

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        return {"kind": "model", "mode": mode}


@pytest.fixture
def server(http_server: HttpServer, monkeypatch: pytest.MonkeyPatch) -> HttpServer:
    """The test server, as the host of the ``{BASE}`` environment variable."""
    monkeypatch.setenv("BASE", http_server.url)
    http_server.responder = lambda n, request: (200, {}, b'{"sent": true}')
    return http_server


def test_placeholders_come_from_arguments_and_environment_variables(
    server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    @http.method(
        method="POST",
        url="{BASE}/{STAGE}/{api_version}/offers",
        params={"email": "{email}", "source": "{SOURCE}"},
        headers={"X-Customer": "{customer.email}"},
        body="customer",
    )
    def send_offer(api_version: str, email: str, customer: Customer) -> Any: ...

    monkeypatch.setenv("STAGE", "prod")
    monkeypatch.setenv("SOURCE", "web")
    send_offer("v1", "ann@example.com", Customer("ann@example.com", 40))

    [request] = server.exchange.requests
    assert request["method"] == "POST"
    assert request["path"] == "/prod/v1/offers?email=ann%40example.com&source=web"
    assert request["headers"]["X-Customer"] == "ann@example.com"
    assert json.loads(request["body"]) == {"email": "ann@example.com", "age": 40}
    assert request["headers"]["Content-Type"] == "application/json"


def test_placeholders_are_rendered_again_on_every_call(
    server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    @http.method(url="{BASE}/{STAGE}/orders/{order_id}")
    def get_order(order_id: int) -> Any: ...

    monkeypatch.setenv("STAGE", "dev")
    get_order(1)
    monkeypatch.setenv("STAGE", "prod")
    get_order(2)

    assert [r["path"] for r in server.exchange.requests] == [
        "/dev/orders/1",
        "/prod/orders/2",
    ]


def test_argument_values_are_percent_encoded_in_the_url(server: HttpServer) -> None:
    @http.method(url="{BASE}/orders/{order_id}")
    def get_order(order_id: str) -> Any: ...

    get_order("7/../../admin?x=1")

    assert server.exchange.requests[0]["path"] == "/orders/7%2F..%2F..%2Fadmin%3Fx%3D1"


def test_a_param_that_is_one_placeholder_keeps_the_argument_s_value(
    server: HttpServer,
) -> None:
    @http.method(url="{BASE}/orders", params={"tag": "{tags}", "page": "{page}"})
    def find(tags: list[str], page: int | None = None) -> Any: ...

    find(["a", "b"])

    assert server.exchange.requests[0]["path"] == "/orders?tag=a&tag=b"


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ({"a": 1}, b'{"a":1}'),
        ([1, 2], b"[1,2]"),
        (Customer("b@example.com"), b'{"email":"b@example.com","age":null}'),
        (Model(), b'{"kind":"model","mode":"json"}'),
        (b"\x00raw", b"\x00raw"),
        ("text", b"text"),
    ],
)
def test_bodies_are_sent_as_json_bytes_or_text(
    server: HttpServer, value: object, sent: bytes
) -> None:
    @http.method(method="PUT", url="{BASE}/items", body="item")
    def put_item(item: object) -> Any: ...

    put_item(value)

    assert server.exchange.requests[0]["body"] == sent


def test_without_response_parameters_the_response_is_returned(
    server: HttpServer,
) -> None:
    @http.method(url="{BASE}/orders")
    def orders() -> Any:
        raise AssertionError("not called")

    response = orders()

    assert isinstance(response, runtime.HttpResponse)
    assert response.json() == {"sent": True}


@pytest.mark.parametrize("status", [302, 404, 503])
def test_without_response_parameters_a_status_of_300_or_more_raises(
    server: HttpServer, status: int
) -> None:
    server.responder = lambda n, request: (status, {}, b"nope")

    @http.method(url="{BASE}/orders")
    def orders() -> Any: ...

    with pytest.raises(runtime.HttpStatusError) as raised:
        orders()

    assert (raised.value.status, raised.value.body) == (status, "nope")


def test_a_function_with_response_parameters_handles_the_response(
    server: HttpServer,
) -> None:
    server.responder = lambda n, request: (404, {}, b"no such city")

    @http.method(url="{BASE}/cities", params={"country": "{country}"})
    def cities(
        country: str,
        response: runtime.HttpResponse | None = None,
        response_body: str = "",
        response_code: int = 0,
    ) -> str:
        assert response is not None
        return f"{country}: {response_code} {response_body} ({response.reason})"

    assert cities(country="SE") == "SE: 404 no such city (Not Found)"
    assert server.exchange.requests[0]["path"] == "/cities?country=SE"


def test_a_function_may_take_only_some_response_parameters(
    server: HttpServer,
) -> None:
    @http.method(url="{BASE}/cities")
    def count(response_code: int = 0) -> int:
        return response_code

    assert count() == 200


def test_an_unknown_placeholder_is_refused_when_decorating() -> None:
    with pytest.raises(ValueError, match=r"\{emial\} in its url is not a parameter"):

        @http.method(url="https://example.com/{emial}")
        def send(email: str) -> Any: ...


def test_a_body_that_is_not_a_parameter_is_refused_when_decorating() -> None:
    with pytest.raises(ValueError, match="body='customer' is not a parameter"):

        @http.method(method="POST", url="https://example.com/", body="customer")
        def send(client: str) -> Any: ...


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"method": "FETCH", "url": "https://example.com/"}, "unknown method"),
        ({"url": ""}, "needs url="),
        ({"url": "https://example.com/{}"}, "placeholder without a name"),
        ({"url": "https://example.com/{x"}, "expected '}'"),
        ({"method": "EVENT", "url": "orders", "params": {"a": "b"}}, "no params"),
    ],
)
def test_bad_declarations_are_refused_when_decorating(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        http.method(**options)(lambda: None)


def test_a_missing_environment_variable_is_an_error_before_sending(
    server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STAGE", raising=False)

    @http.method(url="{BASE}/{STAGE}/orders")
    def orders() -> Any: ...

    with pytest.raises(ValueError, match="environment variable STAGE is not set"):
        orders()

    assert server.attempts == 0


def test_an_unsupported_body_type_is_an_error_before_sending(
    server: HttpServer,
) -> None:
    @http.method(method="POST", url="{BASE}/orders", body="order")
    def send(order: object) -> Any: ...

    with pytest.raises(TypeError, match="cannot send a int as the body"):
        send(7)

    assert server.attempts == 0


def test_a_malformed_rendered_url_is_an_error_before_sending() -> None:
    @http.method(url="{host}/orders")
    def orders(host: str) -> Any: ...

    with pytest.raises(ValueError, match="malformed URL"):
        orders("example.com")


def test_async_functions_are_refused() -> None:
    with pytest.raises(TypeError, match="synchronous"):

        @http.method(url="https://example.com/")
        async def orders() -> Any: ...


def test_a_declared_call_is_retried_like_any_other(server: HttpServer) -> None:
    server.responder = lambda n, request: (503 if n == 1 else 200, {}, b"{}")

    @http.method(url="{BASE}/orders")
    def orders() -> Any: ...

    assert orders().status == 200
    assert server.attempts == 2


# Lambda: FUNC and EVENT ---------------------------------------------------


def test_func_invokes_the_function_with_the_body_and_client_context(
    endpoint: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGE", "prod")

    @http.method(
        method="FUNC",
        url="{STAGE}-{name}",
        params={"country": "{country}"},
        body="body",
    )
    def get_cities(name: str, country: str, body: dict[str, Any]) -> Any: ...

    result = get_cities("cities", "SE", {"limit": 3})

    assert isinstance(result, runtime.InvokeResult)
    assert result.payload == {"ok": True}
    [request] = endpoint.exchange.requests
    assert unquote(request["path"].split("/")[3]) == "prod-cities"
    assert json.loads(request["body"]) == {"limit": 3}
    context = base64.b64decode(request["headers"]["X-Amz-Client-Context"])
    assert json.loads(context) == {"custom": {"country": "SE"}}


def test_func_raises_the_function_error_without_response_parameters(
    endpoint: HttpServer,
) -> None:
    endpoint.responder = function_error

    @http.method(method="FUNC", url="orders")
    def orders() -> Any: ...

    with pytest.raises(runtime.FunctionError, match="KeyError: no order 7"):
        orders()


def test_func_passes_the_result_to_response_parameters(endpoint: HttpServer) -> None:
    endpoint.responder = function_error

    @http.method(method="FUNC", url="orders")
    def orders(
        response: runtime.InvokeResult | None = None,
        response_body: str = "",
        response_code: int = 0,
    ) -> tuple[str | None, int, str]:
        assert response is not None
        return (
            response.function_error,
            response_code,
            json.loads(response_body)["errorType"],
        )

    assert orders() == ("Unhandled", 200, "KeyError")


def test_event_invokes_asynchronously(endpoint: HttpServer) -> None:
    endpoint.responder = lambda n, request: (202, {}, b"")

    @http.method(method="EVENT", url="orders", body="order")
    def queue(
        order: dict[str, int], response_code: int = 0, response_body: str = ""
    ) -> Any:
        return response_code, json.loads(response_body)["HTTPStatusCode"]

    assert queue({"id": 7}) == (202, 202)
    [request] = endpoint.exchange.requests
    assert request["headers"]["X-Amz-Invocation-Type"] == "Event"
    assert json.loads(request["body"]) == {"id": 7}
