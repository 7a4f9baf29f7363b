"""fleece_runtime's Router: HTTP routes, event-source routes, guard, middleware, CORS."""

import base64
import io
import json
from dataclasses import dataclass
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime
from runtime_stub.fleece_runtime import (
    Cors,
    HTTPError,
    HttpRequest,
    Response,
    Router,
    testing,
)

Result = dict[str, Any]


@pytest.fixture
def context() -> runtime.LambdaContext:
    return runtime.LambdaContext(aws_request_id="lambda-req-1")


def body(result: Result) -> Any:
    return json.loads(result["body"])


def header(result: Result, name: str) -> str | None:
    """A response header of any shape (REST, HTTP API, ALB), case-insensitively."""
    for key, value in (result.get("headers") or {}).items():
        if key.lower() == name.lower():
            return str(value)
    for key, values in (result.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return ", ".join(values)
    return None


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def orders_app() -> Router:
    app = Router()

    @app.get("/orders")
    def list_orders() -> list[str]:
        return ["o-1"]

    @app.get("/orders/{order_id}")
    def get_order(order_id: str) -> Result:
        return {"route": "param", "order_id": order_id}

    @app.get("/orders/latest")
    def latest() -> Result:
        return {"route": "static"}

    @app.get("/orders/{order_id}/{rest+}")
    def order_files(order_id: str, rest: str) -> Result:
        return {"route": "greedy", "order_id": order_id, "rest": rest}

    @app.post("/orders")
    def create(request: HttpRequest) -> tuple[Any, int]:
        return request.json, 201

    return app


# -- HTTP routing -------------------------------------------------------------


def test_path_parameters_are_passed_by_name(context: Any) -> None:
    result = orders_app().resolve(testing.rest_api_event("GET", "/orders/o-7"), context)

    assert result["statusCode"] == 200
    assert body(result) == {"route": "param", "order_id": "o-7"}


def test_a_plain_segment_beats_a_parameter(context: Any) -> None:
    result = orders_app().resolve(
        testing.http_api_event("GET", "/orders/latest"), context
    )

    assert body(result) == {"route": "static"}


def test_a_greedy_parameter_takes_the_rest_of_the_path(context: Any) -> None:
    event = testing.http_api_event("GET", "/orders/o-7/files/2025/invoice.pdf")

    result = orders_app().resolve(event, context)

    assert body(result) == {
        "route": "greedy",
        "order_id": "o-7",
        "rest": "files/2025/invoice.pdf",
    }


def test_a_parameter_beats_a_greedy_parameter(context: Any) -> None:
    app = Router()

    @app.get("/{proxy+}")
    def anything(proxy: str) -> str:
        return "greedy"

    @app.get("/{name}")
    def named(name: str) -> str:
        return "param"

    assert app.resolve(testing.http_api_event("GET", "/a"), context)["body"] == "param"
    assert (
        app.resolve(testing.http_api_event("GET", "/a/b"), context)["body"] == "greedy"
    )


def test_the_most_specific_path_with_the_method_wins(context: Any) -> None:
    app = Router()

    @app.post("/orders/new")
    def new() -> str:
        return "post new"

    @app.get("/orders/{order_id}")
    def get(order_id: str) -> str:
        return f"get {order_id}"

    result = app.resolve(testing.http_api_event("GET", "/orders/new"), context)

    assert result["body"] == "get new"


def test_a_trailing_slash_is_ignored(context: Any) -> None:
    result = orders_app().resolve(testing.http_api_event("GET", "/orders/"), context)

    assert body(result) == ["o-1"]


def test_the_request_is_passed_to_a_parameter_named_request(context: Any) -> None:
    event = testing.rest_api_event("POST", "/orders", body={"sku": "a-1"})

    result = orders_app().resolve(event, context)

    assert result["statusCode"] == 201
    assert body(result) == {"sku": "a-1"}


def test_the_request_knows_its_route_params_and_context(context: Any) -> None:
    app = Router()
    seen: list[HttpRequest] = []

    @app.get("/users/{user_id}")
    def user(request: HttpRequest, user_id: str) -> None:
        seen.append(request)

    app.resolve(testing.http_api_event("GET", "/users/u-1"), context)

    assert seen[0].route == "/users/{user_id}"
    assert seen[0].path_params == {"user_id": "u-1"}
    assert seen[0].context is context


def test_no_route_is_a_404(context: Any) -> None:
    result = orders_app().resolve(testing.rest_api_event("GET", "/customers"), context)

    assert result["statusCode"] == 404
    assert body(result) == {"error": {"code": 404, "message": "Not Found"}}


def test_a_path_without_the_method_is_a_405_with_allow(context: Any) -> None:
    result = orders_app().resolve(testing.rest_api_event("DELETE", "/orders"), context)

    assert result["statusCode"] == 405
    assert header(result, "Allow") == "GET, HEAD, POST, OPTIONS"


def test_head_runs_the_get_route_without_a_body(context: Any) -> None:
    result = orders_app().resolve(
        testing.http_api_event("HEAD", "/orders/o-7"), context
    )

    assert result["statusCode"] == 200
    assert result["body"] == ""
    assert header(result, "Content-Type") == "application/json"


def test_options_lists_the_methods_of_the_path(context: Any) -> None:
    result = orders_app().resolve(testing.http_api_event("OPTIONS", "/orders"), context)

    assert result["statusCode"] == 204
    assert header(result, "Allow") == "GET, HEAD, POST, OPTIONS"


def test_a_routed_options_function_answers_options(context: Any) -> None:
    app = Router()

    @app.options("/x")
    def options() -> Response:
        return Response(200, "custom")

    assert (
        app.resolve(testing.http_api_event("OPTIONS", "/x"), context)["body"]
        == "custom"
    )


def test_any_routes_every_method(context: Any) -> None:
    app = Router()

    @app.route("ANY", "/echo")
    def echo(request: HttpRequest) -> str:
        return request.method

    for method in ("GET", "PUT", "DELETE"):
        assert (
            app.resolve(testing.http_api_event(method, "/echo"), context)["body"]
            == method
        )


def test_strip_prefixes_removes_a_base_path_mapping(context: Any) -> None:
    app = Router(strip_prefixes=["/api"])

    @app.get("/orders")
    def orders() -> str:
        return "orders"

    event = testing.rest_api_event("GET", "/api/orders")

    assert app.resolve(event, context)["body"] == "orders"


def test_a_request_without_method_or_path_is_a_400(context: Any) -> None:
    result = orders_app().resolve(
        {"httpMethod": None, "path": "", "requestContext": {}}, context
    )

    assert result["statusCode"] == 400


# -- return values ------------------------------------------------------------


@dataclass
class Order:
    order_id: str
    total: float


@pytest.mark.parametrize(
    ("returned", "status", "content_type", "text"),
    [
        ({"a": 1}, 200, "application/json", '{"a":1}'),
        ([1, 2], 200, "application/json", "[1,2]"),
        (Order("o-1", 9.5), 200, "application/json", '{"order_id":"o-1","total":9.5}'),
        ("hello", 200, "text/plain; charset=utf-8", "hello"),
        (None, 204, None, ""),
        (({"created": True}, 201), 201, "application/json", '{"created":true}'),
        (("gone", 410, {"X-Why": "moved"}), 410, "text/plain; charset=utf-8", "gone"),
        (
            Response(202, {"queued": 1}, {"Location": "/jobs/1"}),
            202,
            "application/json",
            '{"queued":1}',
        ),
    ],
)
def test_return_values_become_responses(
    context: Any, returned: object, status: int, content_type: str | None, text: str
) -> None:
    app = Router()

    @app.get("/x")
    def x() -> object:
        return returned

    result = app.resolve(testing.http_api_event("GET", "/x"), context)

    assert result["statusCode"] == status
    assert header(result, "Content-Type") == content_type
    assert result["body"] == text


def test_bytes_are_sent_base64_encoded(context: Any) -> None:
    app = Router()

    @app.get("/logo.png")
    def logo() -> Response:
        return Response(200, b"\x89PNG\r\n", {"Content-Type": "image/png"})

    result = app.resolve(testing.http_api_event("GET", "/logo.png"), context)

    assert result["isBase64Encoded"] is True
    assert base64.b64decode(result["body"]) == b"\x89PNG\r\n"


def test_text_bytes_are_sent_as_text(context: Any) -> None:
    app = Router()

    @app.get("/page")
    def page() -> Response:
        return Response(200, "é".encode(), {"Content-Type": "text/html; charset=utf-8"})

    result = app.resolve(testing.http_api_event("GET", "/page"), context)

    assert (result["body"], result["isBase64Encoded"]) == ("é", False)


# -- response shapes per source -------------------------------------------------


def cookie_app() -> Router:
    app = Router()

    @app.get("/login")
    def login() -> Response:
        return Response(
            200,
            {"ok": True},
            {"X-Tag": ["a", "b"]},
            cookies=["session=s1; HttpOnly", "theme=dark"],
        )

    return app


def test_rest_responses_carry_multi_value_headers(context: Any) -> None:
    result = cookie_app().resolve(testing.rest_api_event("GET", "/login"), context)

    assert set(result) == {"statusCode", "multiValueHeaders", "body", "isBase64Encoded"}
    assert result["multiValueHeaders"] == {
        "Content-Type": ["application/json"],
        "X-Tag": ["a", "b"],
        "Set-Cookie": ["session=s1; HttpOnly", "theme=dark"],
    }


@pytest.mark.parametrize("build", [testing.http_api_event, testing.function_url_event])
def test_http_api_and_function_url_responses_carry_cookies(
    context: Any, build: Any
) -> None:
    result = cookie_app().resolve(build("GET", "/login"), context)

    assert result["cookies"] == ["session=s1; HttpOnly", "theme=dark"]
    assert result["headers"] == {"Content-Type": "application/json", "X-Tag": "a,b"}


def test_alb_multi_value_responses_follow_the_request(context: Any) -> None:
    result = cookie_app().resolve(
        testing.alb_event("GET", "/login", multi_value=True), context
    )

    assert result["statusDescription"] == "200 OK"
    assert result["multiValueHeaders"]["Set-Cookie"] == [
        "session=s1; HttpOnly",
        "theme=dark",
    ]
    assert "headers" not in result


def test_alb_single_value_responses_follow_the_request(context: Any) -> None:
    result = cookie_app().resolve(testing.alb_event("GET", "/login"), context)

    assert result["headers"]["X-Tag"] == "b"
    assert "multiValueHeaders" not in result
    assert result["isBase64Encoded"] is False


# -- errors ---------------------------------------------------------------------


def test_http_error_becomes_its_response(context: Any) -> None:
    app = Router()

    @app.get("/orders/{order_id}")
    def get(order_id: str) -> None:
        raise HTTPError(404, f"no order {order_id}", details={"order_id": order_id})

    result = app.resolve(testing.http_api_event("GET", "/orders/o-9"), context)

    assert result["statusCode"] == 404
    assert body(result) == {
        "error": {
            "code": 404,
            "message": "no order o-9",
            "details": {"order_id": "o-9"},
        }
    }


def test_an_unexpected_exception_is_a_500_with_only_the_request_id(
    context: Any, stream: io.StringIO
) -> None:
    app = Router()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("database password is hunter2")

    result = app.resolve(testing.http_api_event("GET", "/boom"), context)

    assert result["statusCode"] == 500
    assert body(result) == {
        "error": {
            "code": 500,
            "message": "Internal Server Error",
            "request_id": "lambda-req-1",
        }
    }
    (line,) = lines(stream)
    assert line["level"] == "ERROR"
    assert line["exception"].count("Traceback") == 1
    assert "hunter2" in line["exception"]
    assert (line["route"], line["status"]) == ("/boom", 500)


def test_error_handlers_answer_their_exception_types(context: Any) -> None:
    app = Router()

    @app.get("/x")
    def x() -> None:
        raise KeyError("sku")

    @app.error_handler(LookupError)
    def missing(request: HttpRequest, error: Exception) -> tuple[Result, int]:
        return {"missing": str(error)}, 422

    result = app.resolve(testing.http_api_event("GET", "/x"), context)

    assert result["statusCode"] == 422
    assert body(result) == {"missing": "'sku'"}


def test_collected_errors_raise_the_status_and_join_the_body(context: Any) -> None:
    app = Router()

    @runtime.collect
    def check(sku: str) -> str:
        if sku.startswith("x"):
            raise HTTPError(
                400, f"unknown sku {sku}", classification=runtime.Classification.PII
            )
        return sku

    @app.post("/orders")
    def create(request: HttpRequest) -> Result:
        return {"accepted": [s for s in map(check, request.json) if s]}

    event = testing.http_api_event("POST", "/orders", body=["a-1", "x-2"])
    result = app.resolve(event, context)

    assert result["statusCode"] == 400
    assert body(result) == {
        "accepted": ["a-1"],
        "error": [{"code": 400, "msg": "unknown sku x-2", "classification": "PII"}],
    }


def test_collected_errors_give_only_the_status_without_report_errors(
    context: Any,
) -> None:
    app = Router(report_errors=False)

    @runtime.collect
    def fail() -> None:
        raise HTTPError(409)

    @app.get("/x")
    def x() -> Result:
        fail()
        return {"done": True}

    result = app.resolve(testing.http_api_event("GET", "/x"), context)

    assert (result["statusCode"], body(result)) == (409, {"done": True})


# -- guard and middleware ----------------------------------------------------------


def test_the_guard_answers_in_place_of_the_function(context: Any) -> None:
    calls: list[str] = []

    def guard(request: HttpRequest) -> Response | None:
        if "authorization" not in request.headers:
            return Response(401, {"error": "sign in"})
        return None

    app = Router(guard=guard)

    @app.get("/me")
    def me() -> str:
        calls.append("me")
        return "me"

    refused = app.resolve(testing.http_api_event("GET", "/me"), context)
    allowed = app.resolve(
        testing.http_api_event("GET", "/me", headers={"Authorization": "Bearer t"}),
        context,
    )

    assert refused["statusCode"] == 401
    assert allowed["body"] == "me"
    assert calls == ["me"]


def test_a_guard_raising_http_error_is_answered_with_it(context: Any) -> None:
    def guard(request: HttpRequest) -> None:
        raise HTTPError(403)

    app = Router(guard=guard)

    @app.get("/admin")
    def admin() -> str:
        return "secret"

    assert (
        app.resolve(testing.http_api_event("GET", "/admin"), context)["statusCode"]
        == 403
    )


def test_a_route_may_drop_or_replace_the_guard(context: Any) -> None:
    app = Router(guard=lambda request: Response(401))

    @app.get("/health", guard=None)
    def health() -> str:
        return "ok"

    @app.get("/teapot", guard=lambda request: Response(418))
    def teapot() -> str:
        return "never"

    assert (
        app.resolve(testing.http_api_event("GET", "/health"), context)["statusCode"]
        == 200
    )
    assert (
        app.resolve(testing.http_api_event("GET", "/teapot"), context)["statusCode"]
        == 418
    )


def test_middleware_runs_in_order_around_the_function(context: Any) -> None:
    app = Router()
    order: list[str] = []

    @app.use
    def outer(request: HttpRequest, call_next: Any) -> Response:
        order.append("outer in")
        response: Response = call_next(request)
        order.append("outer out")
        return Response(
            response.status_code, response.body, {**response.headers, "X-Outer": "1"}
        )

    @app.use
    def inner(request: HttpRequest, proceed: Any) -> Any:
        order.append("inner in")
        return proceed(request)

    @app.get("/x")
    def x() -> str:
        order.append("function")
        return "x"

    result = app.resolve(testing.http_api_event("GET", "/x"), context)

    assert order == ["outer in", "inner in", "function", "outer out"]
    assert header(result, "X-Outer") == "1"


def test_middleware_sets_claims_for_the_guard_to_decide_on(context: Any) -> None:
    def bearer_claims(request: HttpRequest, call_next: Any) -> Any:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        request.claims = {"sub": token, "admin": token == "root"}
        return call_next(request)

    def admins_only(request: HttpRequest) -> None:
        if not request.claims.get("admin"):
            raise HTTPError(403, "admins only")

    app = Router(guard=admins_only)
    app.use(bearer_claims)

    @app.get("/admin")
    def admin(request: HttpRequest) -> Any:
        return {"sub": request.claims["sub"]}

    user = app.resolve(
        testing.http_api_event(
            "GET", "/admin", headers={"Authorization": "Bearer bob"}
        ),
        context,
    )
    root = app.resolve(
        testing.http_api_event(
            "GET", "/admin", headers={"Authorization": "Bearer root"}
        ),
        context,
    )

    assert user["statusCode"] == 403
    assert body(root) == {"sub": "root"}


def test_middleware_sees_http_errors_as_responses(context: Any) -> None:
    app = Router()
    seen: list[int] = []

    @app.use
    def record(request: HttpRequest, call_next: Any) -> Any:
        response = call_next(request)
        seen.append(response.status_code)
        return response

    @app.get("/x")
    def x() -> None:
        raise HTTPError(409)

    assert (
        app.resolve(testing.http_api_event("GET", "/x"), context)["statusCode"] == 409
    )
    assert seen == [409]


# -- CORS -------------------------------------------------------------------------


def cors_app(**settings: Any) -> Router:
    app = Router(cors=Cors("https://app.example.com", **settings))

    @app.get("/orders")
    def orders() -> list[str]:
        return []

    @app.put("/orders")
    def put() -> None:
        return None

    return app


def preflight(origin: str, path: str = "/orders") -> Result:
    return testing.http_api_event(
        "OPTIONS",
        path,
        headers={"Origin": origin, "Access-Control-Request-Method": "PUT"},
    )


def test_a_preflight_from_an_allowed_origin_is_answered(context: Any) -> None:
    result = cors_app(max_age=600).resolve(
        preflight("https://app.example.com"), context
    )

    assert result["statusCode"] == 204
    assert result["headers"] == {
        "Access-Control-Allow-Origin": "https://app.example.com",
        "Access-Control-Allow-Methods": "GET, HEAD, PUT, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Vary": "Origin",
        "Access-Control-Max-Age": "600",
    }


def test_a_preflight_from_another_origin_gets_no_cors_header(context: Any) -> None:
    result = cors_app().resolve(preflight("https://evil.example"), context)

    assert not any(name.startswith("Access-Control") for name in result["headers"])


def test_a_preflight_of_an_unknown_path_is_a_404(context: Any) -> None:
    result = cors_app().resolve(
        preflight("https://app.example.com", "/nowhere"), context
    )

    assert result["statusCode"] == 404


def test_responses_to_an_allowed_origin_carry_cors_headers(context: Any) -> None:
    app = cors_app(allow_credentials=True, expose_headers=["X-Total"])
    event = testing.http_api_event(
        "GET", "/orders", headers={"Origin": "https://app.example.com"}
    )

    result = app.resolve(event, context)

    assert header(result, "Access-Control-Allow-Origin") == "https://app.example.com"
    assert header(result, "Access-Control-Allow-Credentials") == "true"
    assert header(result, "Access-Control-Expose-Headers") == "X-Total"
    assert header(result, "Vary") == "Origin"


def test_errors_to_an_allowed_origin_carry_cors_headers(context: Any) -> None:
    event = testing.http_api_event(
        "GET", "/nowhere", headers={"Origin": "https://app.example.com"}
    )

    result = cors_app().resolve(event, context)

    assert result["statusCode"] == 404
    assert header(result, "Access-Control-Allow-Origin") == "https://app.example.com"


def test_any_origin_is_echoed_only_with_credentials(context: Any) -> None:
    open_app = Router(cors=Cors("*"))
    credentials_app = Router(cors=Cors("*", allow_credentials=True))
    for app in (open_app, credentials_app):
        app.get("/x")(lambda: "x")
    event = testing.http_api_event("GET", "/x", headers={"Origin": "https://a.example"})

    assert (
        header(open_app.resolve(event, context), "Access-Control-Allow-Origin") == "*"
    )
    assert (
        header(credentials_app.resolve(event, context), "Access-Control-Allow-Origin")
        == "https://a.example"
    )


@pytest.mark.parametrize("origin", ["app.example.com", "https://app.example.com/"])
def test_a_cors_origin_must_be_an_origin(origin: str) -> None:
    with pytest.raises(ValueError, match="an origin is a scheme and a host"):
        Cors(origin)


# -- registration errors ------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("orders", "starts with '/'"),
        ("/orders//x", "empty segment"),
        ("/orders/{id", "not a parameter"),
        ("/orders/x{id}", "not a parameter"),
        ("/{rest+}/x", "must be the last segment"),
        ("/{id}/{id}", "twice"),
    ],
)
def test_bad_route_paths_are_refused(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Router().get(path)


def test_unknown_methods_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown HTTP method 'FETCH'"):
        Router().route("FETCH", "/x")


def test_a_route_registered_twice_is_refused() -> None:
    app = Router()
    app.get("/x")(lambda: None)

    with pytest.raises(ValueError, match="GET /x is routed twice"):
        app.get("/x")(lambda: None)


def test_a_function_needing_an_argument_the_path_lacks_is_refused() -> None:
    def get(order_id: str) -> None: ...

    with pytest.raises(TypeError, match="takes order_id, which /orders does not give"):
        Router().get("/orders")(get)


def test_two_names_for_one_parameter_are_refused() -> None:
    app = Router()
    app.get("/orders/{order_id}")(lambda order_id: None)

    with pytest.raises(ValueError, match="a path parameter has one name"):
        app.get("/orders/{id}/lines")(lambda id: None)


def test_async_functions_are_refused() -> None:
    async def get() -> None: ...

    with pytest.raises(TypeError, match="is async"):
        Router().get("/x")(get)


# -- event-source routes -------------------------------------------------------------


def failing_on(bad: str) -> Router:
    app = Router()

    @app.sqs("orders")
    @app.sqs("orders.fifo")
    @app.kinesis("clicks")
    @app.dynamodb("orders")
    def process(record: Any) -> None:
        data = record.body if isinstance(record, runtime.SqsRecord) else None
        if isinstance(record, runtime.KinesisRecord):
            data = record.text
        if isinstance(record, runtime.DynamoDBRecord):
            data = (record.new_image or {}).get("id")
        if data == bad:
            raise ValueError(f"cannot process {data}")

    return app


def test_an_sqs_batch_reports_only_the_failed_message(context: Any) -> None:
    event = testing.sqs_event("a", "bad", "c", queue="orders")
    bad_id = event["Records"][1]["messageId"]

    result = failing_on("bad").resolve(event, context)

    assert result == {"batchItemFailures": [{"itemIdentifier": bad_id}]}


def test_a_batch_without_failures_reports_none(context: Any) -> None:
    result = failing_on("bad").resolve(
        testing.sqs_event("a", "b", queue="orders"), context
    )

    assert result == {"batchItemFailures": []}


def test_a_fifo_batch_stops_at_the_first_failure(context: Any) -> None:
    event = testing.sqs_event("a", "bad", "c", queue="orders.fifo")
    ids = [record["messageId"] for record in event["Records"]]

    result = failing_on("bad").resolve(event, context)

    assert result == {
        "batchItemFailures": [{"itemIdentifier": ids[1]}, {"itemIdentifier": ids[2]}]
    }


def test_a_kinesis_batch_reports_from_the_failed_sequence_number(context: Any) -> None:
    event = testing.kinesis_event("a", "bad", "c", stream="clicks")
    numbers = [record["kinesis"]["sequenceNumber"] for record in event["Records"]]

    result = failing_on("bad").resolve(event, context)

    assert result["batchItemFailures"][0] == {"itemIdentifier": numbers[1]}


def test_a_dynamodb_batch_reports_from_the_failed_sequence_number(context: Any) -> None:
    event = testing.dynamodb_event({"id": "a"}, {"id": "bad"}, table="orders")
    number = event["Records"][1]["dynamodb"]["SequenceNumber"]

    result = failing_on("bad").resolve(event, context)

    assert result == {"batchItemFailures": [{"itemIdentifier": number}]}


def test_a_batch_whose_every_record_fails_raises(context: Any) -> None:
    with pytest.raises(
        runtime.BatchFailed, match="all 2 records of the sqs batch failed"
    ):
        failing_on("bad").resolve(
            testing.sqs_event("bad", "bad", queue="orders"), context
        )


def test_failed_records_are_logged_with_their_identifier(
    context: Any, stream: io.StringIO
) -> None:
    event = testing.sqs_event("ok", "bad", queue="orders")

    failing_on("bad").resolve(event, context)

    (line,) = lines(stream)
    assert (line["event"], line["item"]) == (
        "record failed",
        event["Records"][1]["messageId"],
    )
    assert "cannot process bad" in line["exception"]


def test_s3_records_route_by_bucket_token(context: Any) -> None:
    app = Router()
    seen: list[str] = []

    @app.s3("uploads")
    def upload(record: runtime.S3Record) -> None:
        seen.append(record.key)

    assert (
        app.resolve(testing.s3_event("uploads.prod.example.com", "a.csv"), context)
        is None
    )
    assert seen == ["a.csv"]


def test_the_s3_token_rule_can_be_replaced(context: Any) -> None:
    app = Router(s3_token=lambda record: record.key.split("/")[0])
    seen: list[str] = []

    @app.s3("invoices")
    def invoice(record: runtime.S3Record) -> None:
        seen.append(record.bucket)

    app.resolve(testing.s3_event("any-bucket", "invoices/1.pdf"), context)

    assert seen == ["any-bucket"]


def test_sns_records_route_by_topic_and_exceptions_propagate(context: Any) -> None:
    app = Router()

    @app.sns("alerts")
    def alert(record: runtime.SnsRecord) -> None:
        raise RuntimeError(record.message)

    with pytest.raises(RuntimeError, match="disk full"):
        app.resolve(testing.sns_event("disk full", topic="alerts"), context)


def test_eventbridge_routes_prefer_the_most_specific(context: Any) -> None:
    app = Router()

    @app.eventbridge()
    def anything(event: runtime.EventBridgeEvent) -> str:
        return "any"

    @app.eventbridge(source="aws.events", detail_type="Scheduled Event")
    def scheduled(event: runtime.EventBridgeEvent) -> str:
        return "scheduled"

    @app.eventbridge(source="aws.events")
    def from_events(event: runtime.EventBridgeEvent) -> str:
        return "source"

    assert (
        app.resolve(
            testing.eventbridge_event(
                source="aws.events", detail_type="Scheduled Event"
            ),
            context,
        )
        == "scheduled"
    )
    assert (
        app.resolve(
            testing.eventbridge_event(source="aws.events", detail_type="Other"), context
        )
        == "source"
    )
    assert (
        app.resolve(testing.eventbridge_event(source="com.example"), context) == "any"
    )


def test_a_name_less_route_takes_what_named_routes_do_not(context: Any) -> None:
    app = Router()

    @app.sqs("orders")
    def orders(record: runtime.SqsRecord) -> None:
        raise ValueError("orders fail")

    @app.sqs()
    def others(record: runtime.SqsRecord) -> None:
        pass

    assert app.resolve(testing.sqs_event("x", queue="refunds"), context) == {
        "batchItemFailures": []
    }


def test_direct_invocations_get_their_route_and_return_its_value(context: Any) -> None:
    app = Router()

    @app.direct()
    def direct(invocation: runtime.DirectInvocation) -> Any:
        return {"echo": invocation.payload}

    assert app.resolve({"job": 7}, context) == {"echo": {"job": 7}}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            testing.sqs_event("x", queue="refunds"),
            "no route takes sqs records of 'refunds'",
        ),
        (
            testing.eventbridge_event(source="aws.s3"),
            "no route takes EventBridge events of source 'aws.s3'",
        ),
        ({"job": 7}, "no route takes direct invocations"),
    ],
)
def test_an_event_no_route_takes_raises_route_not_found(
    context: Any, event: object, message: str
) -> None:
    with pytest.raises(runtime.RouteNotFound, match=message):
        Router().resolve(event, context)


def test_the_guard_applies_to_records_too(context: Any) -> None:
    def guard(record: Any) -> None:
        if isinstance(record, runtime.SqsRecord) and record.body == "forbidden":
            raise PermissionError("no")

    app = Router(guard=guard)
    app.sqs("q")(lambda record: None)
    event = testing.sqs_event("ok", "forbidden", queue="q")

    result = app.resolve(event, context)

    assert result == {
        "batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]
    }


# -- logging --------------------------------------------------------------------------


def test_lines_of_a_routed_request_carry_ids_route_and_status(
    context: Any, stream: io.StringIO
) -> None:
    app = Router(log_requests=True)
    logger = runtime.get_logger("orders")

    @app.get("/orders/{order_id}")
    def get(order_id: str) -> str:
        logger.info("loading", order_id=order_id)
        return order_id

    event = testing.http_api_event("GET", "/orders/o-1")
    app.resolve(event, context)

    loading, request = lines(stream)
    assert loading["lambda_request_id"] == "lambda-req-1"
    assert loading["api_request_id"] == event["requestContext"]["requestId"]
    assert loading["cold_start"] is True
    assert loading["route"] == "/orders/{order_id}"
    assert request["event"] == "request"
    assert (request["method"], request["path"], request["status"]) == (
        "GET",
        "/orders/o-1",
        200,
    )
    assert request["duration_ms"] >= 0


def test_nothing_bound_by_a_request_reaches_the_next(
    context: Any, stream: io.StringIO
) -> None:
    app = Router()
    app.get("/x")(lambda: "x")
    logger = runtime.get_logger("after")

    app.resolve(testing.http_api_event("GET", "/x"), context)
    logger.info("later")

    (line,) = lines(stream)
    assert (
        "route" not in line and "status" not in line and "lambda_request_id" not in line
    )


def test_an_unrouted_request_is_logged_with_its_ids(
    context: Any, stream: io.StringIO
) -> None:
    app = Router(log_requests=True)
    app.get("/orders")(lambda: [])

    app.resolve(testing.http_api_event("GET", "/nowhere"), context)

    (request,) = lines(stream)
    assert (request["status"], request["route"]) == (404, None)
    assert (request["lambda_request_id"], request["cold_start"]) == (
        "lambda-req-1",
        True,
    )


def test_the_route_ends_with_the_undecorated_request(
    context: Any, stream: io.StringIO
) -> None:
    app = Router()
    app.get("/x")(lambda: None)
    runtime.bind(tenant="t1")
    try:
        app.resolve(testing.http_api_event("GET", "/x"), context)
        runtime.get_logger("after").info("after")
    finally:
        runtime.unbind("tenant")

    (after,) = lines(stream)
    assert after["tenant"] == "t1"
    assert "route" not in after
    assert "lambda_request_id" not in after


def test_an_undecorated_handler_makes_the_context_current(context: Any) -> None:
    app = Router()
    seen: list[Any] = []

    @app.get("/x")
    def x() -> None:
        seen.append(runtime.current_lambda_context())

    app.resolve(testing.http_api_event("GET", "/x"), context)

    assert seen == [context]
    assert runtime.current_lambda_context() is None


def test_a_decorated_handler_keeps_its_invocation(
    context: Any, stream: io.StringIO
) -> None:
    app = Router()
    app.get("/x")(lambda: runtime.get_logger("x").info("inside"))

    @runtime.inject_request_ids_into_environment
    def handler(event: Any, context: Any) -> Any:
        runtime.bind(tenant="t1")
        return app.resolve(event, context)

    handler(testing.http_api_event("GET", "/x"), context)

    (line,) = lines(stream)
    assert (line["tenant"], line["route"], line["cold_start"]) == ("t1", "/x", True)
