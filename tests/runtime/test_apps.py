"""fleece_runtime's apps: WSGI (a small Flask app), ASGI, and connexion 3 OpenAPI apps."""

import base64
import io
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import pytest

from runtime_stub import fleece_runtime as runtime
from runtime_stub.fleece_runtime import testing

SPEC = Path(__file__).resolve().parent / "apps" / "orders.yaml"
CATALOG = SPEC.with_name("catalog.yaml")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def context() -> runtime.LambdaContext:
    return runtime.LambdaContext(aws_request_id="lambda-req-1")


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def header(result: dict[str, Any], name: str) -> str | None:
    for key, value in (result.get("headers") or {}).items():
        if key.lower() == name:
            return str(value)
    for key, values in (result.get("multiValueHeaders") or {}).items():
        if key.lower() == name:
            return ", ".join(values)
    return None


# -- WSGI -----------------------------------------------------------------------


def flask_app() -> flask.Flask:
    app = flask.Flask("orders")

    @app.route("/orders/<order_id>", methods=["GET", "PUT"])
    def order(order_id: str) -> Any:
        request = flask.request
        return {
            "order_id": order_id,
            "method": request.method,
            "json": request.get_json(silent=True),
            "query": request.args.to_dict(flat=False),
            "url": request.url,
            "remote": request.remote_addr,
            "tenant": request.headers.get("X-Tenant"),
        }

    @app.route("/logo.png")
    def logo() -> Any:
        return flask.Response(b"\x89PNG\x00", mimetype="image/png")

    @app.route("/login", methods=["POST"])
    def login() -> Any:
        response = flask.make_response({"ok": True})
        response.set_cookie("session", "s1")
        response.set_cookie("theme", "dark")
        return response

    @app.route("/boom")
    def boom() -> Any:
        raise RuntimeError("kaput")

    return app


def test_wsgi_app_serves_a_rest_request(context: Any) -> None:
    event = testing.rest_api_event(
        "PUT",
        "/orders/o-7",
        body={"quantity": 2},
        query={"tag": ["a", "b"]},
        headers={"X-Tenant": "t1"},
    )

    result = runtime.wsgi_handler(event, context, flask_app())

    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {
        "order_id": "o-7",
        "method": "PUT",
        "json": {"quantity": 2},
        "query": {"tag": ["a", "b"]},
        "url": "https://abcdef1234.execute-api.us-east-1.amazonaws.com/prod/orders/o-7?tag=a&tag=b",
        "remote": "203.0.113.10",
        "tenant": "t1",
    }


@pytest.mark.parametrize(
    "build", [testing.http_api_event, testing.function_url_event, testing.alb_event]
)
def test_wsgi_app_serves_every_http_source(context: Any, build: Any) -> None:
    result = runtime.wsgi_handler(build("GET", "/orders/o-7"), context, flask_app())

    assert result["statusCode"] == 200
    assert json.loads(result["body"])["order_id"] == "o-7"


def test_wsgi_binary_responses_are_base64(context: Any) -> None:
    result = runtime.wsgi_handler(
        testing.http_api_event("GET", "/logo.png"), context, flask_app()
    )

    assert result["isBase64Encoded"] is True
    assert base64.b64decode(result["body"]) == b"\x89PNG\x00"


def test_wsgi_cookies_go_where_the_source_expects(context: Any) -> None:
    v2 = runtime.wsgi_handler(
        testing.http_api_event("POST", "/login"), context, flask_app()
    )
    rest = runtime.wsgi_handler(
        testing.rest_api_event("POST", "/login"), context, flask_app()
    )

    assert [c.split(";")[0] for c in v2["cookies"]] == ["session=s1", "theme=dark"]
    assert [c.split(";")[0] for c in rest["multiValueHeaders"]["Set-Cookie"]] == [
        "session=s1",
        "theme=dark",
    ]


def test_wsgi_app_errors_are_flasks_500(context: Any) -> None:
    result = runtime.wsgi_handler(
        testing.http_api_event("GET", "/boom"), context, flask_app()
    )

    assert result["statusCode"] == 500


def test_a_wsgi_app_that_raises_is_answered_500_and_logged(
    context: Any, stream: io.StringIO
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("not even started")

    result = runtime.wsgi_handler(testing.http_api_event("GET", "/"), context, app)

    assert result["statusCode"] == 500
    (line,) = lines(stream)
    assert "not even started" in line["exception"]


@pytest.mark.parametrize("serve", [runtime.wsgi_handler, runtime.asgi_handler])
def test_a_body_that_cannot_be_read_is_a_400(context: Any, serve: Any) -> None:
    event = testing.http_api_event(
        "POST", "/orders/o-1", body="%%%", isBase64Encoded=True
    )

    result = serve(
        event, context, flask_app() if serve is runtime.wsgi_handler else echo_app
    )

    assert result["statusCode"] == 400
    assert "not valid base64" in result["body"]


def test_the_wsgi_environ_has_the_event_and_context(context: Any) -> None:
    event = testing.http_api_event("GET", "/x")

    environ = runtime.build_wsgi_environ_from_event(event, context)

    assert environ["lambda.event"] is event
    assert environ["lambda.context"] is context
    assert (
        environ["REQUEST_METHOD"],
        environ["PATH_INFO"],
        environ["SCRIPT_NAME"],
    ) == ("GET", "/x", "")


def test_wsgi_refuses_an_event_that_is_not_http(context: Any) -> None:
    with pytest.raises(TypeError, match="serves HTTP requests, and this event is sqs"):
        runtime.wsgi_handler(testing.sqs_event("x"), context, flask_app())


def test_wsgi_handler_is_under_its_1x_module_name() -> None:
    assert runtime.handlers.wsgi.wsgi_handler is runtime.wsgi_handler


# -- ASGI -------------------------------------------------------------------------


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app: echoes what it received."""
    message = await receive()
    payload = {
        "method": scope["method"],
        "path": scope["path"],
        "root_path": scope["root_path"],
        "query": scope["query_string"].decode(),
        "body": message["body"].decode(),
        "request_id": getattr(runtime.current_lambda_context(), "aws_request_id", None),
    }
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-type", b"application/json"),
                (b"set-cookie", b"a=1"),
            ],
        }
    )
    await send(
        {
            "type": "http.response.body",
            "body": json.dumps(payload).encode(),
            "more_body": True,
        }
    )
    await send({"type": "http.response.body", "body": b""})


def test_asgi_app_serves_a_request(context: Any) -> None:
    event = testing.http_api_event(
        "POST", "/orders", body="hi", query={"q": "1"}, stage="dev"
    )

    with runtime.lambda_invocation(context):
        result = runtime.asgi_handler(event, context, echo_app)

    assert result["statusCode"] == 201
    assert result["cookies"] == ["a=1"]
    assert json.loads(result["body"]) == {
        "method": "POST",
        "path": "/dev/orders",
        "root_path": "/dev",
        "query": "q=1",
        "body": "hi",
        "request_id": "lambda-req-1",
    }


def test_asgi_app_that_raises_is_answered_500(
    context: Any, stream: io.StringIO
) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("no")

    result = runtime.asgi_handler(testing.rest_api_event("GET", "/"), context, broken)

    assert result["statusCode"] == 500
    assert "RuntimeError: no" in lines(stream)[0]["exception"]


# -- connexion ----------------------------------------------------------------------


def connexion_class(name: str) -> Any:
    """A connexion app class; connexion's imports warn of their dependencies' deprecations."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import connexion
    return getattr(connexion, name)


@pytest.fixture(params=["FlaskApp", "AsyncApp"])
def orders_api(request: pytest.FixtureRequest) -> Iterator[str]:
    """The name of a connexion app of orders.yaml, of each app class."""
    name = f"orders-{request.param}"
    runtime.get_connexion_app(name, SPEC, app_class=connexion_class(request.param))
    yield name
    runtime._connexion_apps.pop(name, None)


def call(event: dict[str, Any], name: str, context: Any) -> dict[str, Any]:
    with runtime.lambda_invocation(context):
        result: dict[str, Any] = runtime.call_api(event, name, SPEC)
    return result


@pytest.mark.parametrize("build", [testing.rest_api_event, testing.http_api_event])
def test_connexion_serves_a_valid_request(
    build: Any, orders_api: str, context: Any
) -> None:
    result = call(build("GET", "/orders/o-7"), orders_api, context)

    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {
        "order_id": "o-7",
        "sku": "a-1",
        "quantity": 1,
        "request": "lambda-req-1",
    }


def test_connexion_passes_the_json_body(orders_api: str, context: Any) -> None:
    event = testing.http_api_event(
        "POST", "/orders", body={"sku": "b-2", "quantity": 3}
    )

    result = call(event, orders_api, context)

    assert result["statusCode"] == 201
    assert json.loads(result["body"]) == {
        "order_id": "o-1",
        "sku": "b-2",
        "quantity": 3,
    }


@pytest.mark.parametrize(
    "event",
    [
        testing.http_api_event("GET", "/orders/seven"),
        testing.http_api_event("POST", "/orders", body={"sku": "b-2", "quantity": 0}),
        testing.http_api_event(
            "POST",
            "/orders",
            body="{not json",
            headers={"Content-Type": "application/json"},
        ),
    ],
)
def test_connexion_answers_an_invalid_request_400_problem(
    event: dict[str, Any], orders_api: str, context: Any
) -> None:
    result = call(event, orders_api, context)

    assert result["statusCode"] == 400
    assert header(result, "content-type") == "application/problem+json"
    assert json.loads(result["body"])["title"] == "Bad Request"
    assert result["isBase64Encoded"] is False


def test_connexion_answers_an_http_error_with_its_status(
    orders_api: str, context: Any
) -> None:
    result = call(testing.http_api_event("GET", "/orders/o-404"), orders_api, context)

    assert result["statusCode"] == 404
    assert json.loads(result["body"]) == {
        "type": "about:blank",
        "title": "Not Found",
        "detail": "no order o-404",
        "status": 404,
    }


def test_connexion_answers_an_unhandled_error_500(
    orders_api: str, context: Any, stream: io.StringIO
) -> None:
    result = call(testing.http_api_event("GET", "/broken"), orders_api, context)

    assert result["statusCode"] == 500
    assert "the database is down" not in result["body"]
    tracebacks = [
        line
        for line in lines(stream)
        if "the database is down" in line.get("exception", "")
    ]
    assert len(tracebacks) == 1


def test_connexion_answers_a_broken_contract_500(orders_api: str, context: Any) -> None:
    result = call(testing.http_api_event("GET", "/contract"), orders_api, context)

    assert result["statusCode"] == 500


def test_connexion_operations_log_with_the_request_ids(
    orders_api: str, context: Any, stream: io.StringIO
) -> None:
    event = testing.http_api_event("GET", "/orders/o-7")

    @runtime.inject_request_ids_into_environment
    def handler(event: Any, context: Any) -> Any:
        return runtime.call_api(event, orders_api, SPEC)

    handler(event, context)

    (line,) = [line for line in lines(stream) if line["event"] == "loading order"]
    assert line["lambda_request_id"] == "lambda-req-1"
    assert line["api_request_id"] == event["requestContext"]["requestId"]


@pytest.mark.parametrize("app_class", ["FlaskApp", "AsyncApp"])
def test_connexion_serves_a_spec_with_a_base_path_on_a_stage(
    app_class: str, context: Any
) -> None:
    """The stage on API Gateway's domain is the root path, the spec's server path the app's."""
    name = f"catalog-{app_class}"
    runtime.get_connexion_app(name, CATALOG, app_class=connexion_class(app_class))
    event = testing.rest_api_event("GET", "/v1/items/2", stage="prod")

    try:
        with runtime.lambda_invocation(context):
            result = runtime.call_api(event, name, CATALOG)
    finally:
        runtime._connexion_apps.pop(name, None)

    assert result["statusCode"] == 200
    assert json.loads(result["body"])["name"] == "pan"


def test_the_connexion_app_is_built_once() -> None:
    first = runtime.get_connexion_app("once", SPEC)
    try:
        assert runtime.get_connexion_app("once", SPEC) is first
        assert runtime.connexion.get_connexion_app("once", SPEC) is first
    finally:
        runtime._connexion_apps.pop("once", None)


def test_a_missing_spec_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="no OpenAPI spec at"):
        runtime.get_connexion_app("missing", "/nowhere/openapi.yaml", cache_app=False)


def test_a_cold_start_prints_no_warning(tmp_path: Path) -> None:
    """The handler module builds the app at import, as Lambda's init does, then serves."""
    script = (
        "import fleece_runtime as r\n"
        f"r.get_connexion_app('cold', {str(SPEC)!r})\n"
        "event = r.testing.http_api_event('GET', '/orders/o-7')\n"
        f"print(r.call_api(event, 'cold', {str(SPEC)!r})['statusCode'])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "runtime_stub"), str(REPO)])

    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )

    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "200", "")
