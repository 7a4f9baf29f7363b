"""Router.resolve on random and malformed events: no unhandled exception, ever.

Events are random JSON, and events of every source as the builders make
them with parts replaced by random values or removed. HTTP requests get
random methods, paths, headers, query strings and bodies. A routed request
gets an answer of its source's shape that Lambda can serialize, and
malformed input gets a 4xx, never a 500.
"""

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime_stub import fleece_runtime as runtime
from runtime_stub.fleece_runtime import HttpRequest, Router, testing

EXAMPLES = settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CONTEXT = runtime.LambdaContext(aws_request_id="prop-1")


def reading_app() -> Router:
    """Routes for every source; each function reads every field it is given."""
    app = Router()

    @app.route("ANY", "/orders/{order_id}")
    def order(request: HttpRequest, order_id: str) -> Any:
        return {
            "id": order_id,
            "json": request.json,
            "query": request.query_all,
            "headers": dict(request.headers),
            "cookies": request.cookies,
            "claims": dict(request.claims),
            "ip": request.source_ip,
            "base": request.base_path,
        }

    @app.get("/files/{path+}")
    def files(path: str) -> str:
        return path

    @app.post("/echo")
    def echo(request: HttpRequest) -> Any:
        return runtime.Response(
            200,
            request.body,
            {"Content-Type": request.headers.get("content-type", "x/y")},
        )

    def read_record(record: Any) -> None:
        for name in dir(record):
            if not name.startswith("_") and name not in ("json", "data", "text"):
                getattr(record, name)

    for register in (
        app.sqs(),
        app.kinesis(),
        app.dynamodb(),
        app.s3(),
        app.sns(),
        app.eventbridge(),
        app.direct(),
    ):
        register(read_record)
    return app


APP = reading_app()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)

SOURCES = [
    testing.rest_api_event("GET", "/orders/o-1"),
    testing.http_api_event("POST", "/orders/o-1", body={"a": 1}),
    testing.function_url_event("GET", "/files/a/b"),
    testing.alb_event("GET", "/orders/o-1"),
    testing.alb_event("POST", "/echo", multi_value=True, body="x"),
    testing.s3_event(),
    testing.sqs_event("a", "b"),
    testing.sns_event(),
    testing.eventbridge_event(),
    testing.dynamodb_event({"id": "1"}),
    testing.kinesis_event("a"),
]


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    """An event of a real source with some parts replaced or removed."""
    event = json.loads(json.dumps(draw(st.sampled_from(SOURCES))))
    for _ in range(draw(st.integers(1, 6))):
        path = _random_path(draw, event)
        if not path:
            continue
        parent, key = path[-2], path[-1]
        if draw(st.booleans()) and isinstance(parent, dict):
            parent.pop(key, None)
        else:
            parent[key] = draw(json_values)
    return event


def _random_path(draw: st.DrawFn, value: Any) -> list[Any]:
    """[container, key] pairs down to a random place in ``value``."""
    path: list[Any] = []
    while isinstance(value, (dict, list)) and value:
        keys = list(value) if isinstance(value, dict) else list(range(len(value)))
        key = draw(st.sampled_from(keys))
        path = [value, key]
        if draw(st.integers(0, 3)) == 0:
            break
        value = value[key]
    return path


def check_answer(event: Any, result: Any) -> None:
    json.dumps(result)  # Lambda must be able to serialize the answer
    view = runtime.parse_event(event)
    if isinstance(view, HttpRequest):
        assert isinstance(result["statusCode"], int)
        assert result["statusCode"] < 500, result
        assert isinstance(result["body"], str)


@EXAMPLES
@given(json_values)
def test_random_json_never_raises(event: Any) -> None:
    check_answer(event, APP.resolve(event, CONTEXT))


@EXAMPLES
@given(mutated_events())
def test_malformed_events_of_every_source_never_raise(event: Any) -> None:
    check_answer(event, APP.resolve(event, CONTEXT))


HTTP_BUILDERS: list[Any] = [
    testing.rest_api_event,
    testing.http_api_event,
    testing.function_url_event,
    testing.alb_event,
]
methods = st.sampled_from(
    ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "get", "BREW", ""]
)
paths = st.one_of(
    st.sampled_from(
        [
            "/orders/o-1",
            "/orders/",
            "/files/a/b/c",
            "/echo",
            "/",
            "//",
            "/orders/%",
            "/orders/%E2%82",
        ]
    ),
    st.text(max_size=30).map(lambda text: "/" + text),
    st.text(max_size=30),
)
header_maps = st.dictionaries(
    st.text(min_size=1, max_size=20), st.text(max_size=40), max_size=5
)
bodies = st.one_of(st.none(), st.text(max_size=60), st.binary(max_size=60), json_values)


@EXAMPLES
@given(
    st.sampled_from(HTTP_BUILDERS),
    methods,
    paths,
    header_maps,
    st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10), max_size=3),
    bodies,
    st.booleans(),
)
def test_random_http_requests_get_an_answer_below_500(
    build: Any,
    method: str,
    path: str,
    headers: dict[str, str],
    query: dict[str, str],
    body: Any,
    lie_base64: bool,
) -> None:
    event = build(method, path, headers=headers, query=query, body=body)
    if lie_base64 and isinstance(event.get("body"), str):
        event["isBase64Encoded"] = not event["isBase64Encoded"]

    check_answer(event, APP.resolve(event, CONTEXT))


@EXAMPLES
@given(st.sampled_from(["{", "[1,", "nul", '{"a":}', "\ud800", "1e999999"]))
def test_malformed_json_bodies_are_400(text: str) -> None:
    event = testing.http_api_event("POST", "/orders/o-1", body=text)

    assert APP.resolve(event, CONTEXT)["statusCode"] == 400
