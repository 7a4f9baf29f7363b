"""call_api with events of yoke's request template (API Gateway's non-proxy integration).

The answer is fleece 1.x's: the JSON body of a 2xx response, else an
`HTTPError` whose text API Gateway's integration responses map to a status
(``404: Not Found - ...``). The app is a real connexion 3 app of
apps/catalog.yaml, of each app class, served in process.
"""

import io
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from runtime_stub import fleece_runtime as runtime
from runtime_stub.fleece_runtime import HTTPError, testing

CATALOG = Path(__file__).resolve().parent / "apps" / "catalog.yaml"
SECRET = "Bearer eyJ-secret-token"


def template_event(
    method: str,
    resource: str,
    *,
    path: dict[str, Any] | None = None,
    query: Any = None,
    header: dict[str, str] | None = None,
    body: Any = None,
) -> dict[str, Any]:
    """An event as yoke's request template makes it."""
    return {
        "rawContext": {
            "apiId": "abcdef1234",
            "httpMethod": method,
            "identity": {"sourceIp": "198.51.100.7", "userAgent": "curl/8.5.0"},
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "resourcePath": resource,
            "stage": "prod",
        },
        "operation": "catalog",
        "parameters": {
            "gateway": {
                "id": "abcdef1234",
                "stage": "prod",
                "resource-path": resource,
                "http-method": method,
                "stage-data": {},
            },
            "requestor": {"source-ip": "198.51.100.7"},
            "request": {
                "querystring": {} if query is None else query,
                "path": path or {},
                "header": {
                    "Host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
                    "X-Forwarded-Proto": "https",
                    "Authorization": SECRET,
                    **(header or {}),
                },
                "body": {} if body is None else body,
            },
        },
    }


@pytest.fixture(params=["FlaskApp", "AsyncApp"])
def catalog(request: pytest.FixtureRequest) -> Iterator[str]:
    """The name of a connexion app of catalog.yaml, of each app class."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import connexion
    name = f"catalog-{request.param}"
    runtime.get_connexion_app(
        name, CATALOG, app_class=getattr(connexion, request.param)
    )
    yield name
    runtime._connexion_apps.pop(name, None)


def call(event: dict[str, Any], name: str, logger: Any = None) -> Any:
    return runtime.call_api(event, name, CATALOG, logger)


def raised(event: dict[str, Any], name: str) -> HTTPError:
    with pytest.raises(HTTPError) as error:
        call(event, name)
    return error.value


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# -- requests --------------------------------------------------------------------


def test_path_parameters_and_query_reach_the_operation(catalog: str) -> None:
    event = template_event(
        "GET", "/v1/items/{item_id}", path={"item_id": "1"}, query={"limit": "1"}
    )

    assert call(event, catalog) == {
        "item_id": 1,
        "name": "kettle",
        "price": 20.5,
        "tags": ["kitchen"],
    }


@pytest.mark.parametrize(
    "query",
    [
        [("tag", "kitchen"), ("tag", "steel")],
        {"tag": ["kitchen", "steel"]},
        "tag=kitchen&tag=steel",
    ],
)
def test_a_repeated_query_parameter_keeps_every_value(catalog: str, query: Any) -> None:
    result = call(template_event("GET", "/v1/items", query=query), catalog)

    assert [item["name"] for item in result] == ["kettle"]


def test_the_json_body_reaches_the_operation(catalog: str) -> None:
    event = template_event("POST", "/v1/items", body={"name": "cup", "price": 3})

    assert call(event, catalog) == {"item_id": 3, "name": "cup", "price": 3}


def test_headers_and_the_source_ip_reach_the_operation(catalog: str) -> None:
    event = template_event("GET", "/v1/whoami", header={"X-Tenant": "acme"})

    assert call(event, catalog) == {
        "tenant": "acme",
        "client": "198.51.100.7",
        "scheme": "https",
    }


def test_a_greedy_path_parameter_takes_several_segments(catalog: str) -> None:
    event = template_event(
        "GET", "/v1/files/{path+}", path={"path": "docs/read me.txt"}
    )

    assert call(event, catalog) == {"path": "docs/read me.txt"}


def test_an_empty_body_is_none(catalog: str) -> None:
    event = template_event("DELETE", "/v1/items/{item_id}", path={"item_id": "1"})

    assert call(event, catalog) is None


def test_a_proxy_event_still_gets_the_lambda_result(catalog: str) -> None:
    result = call(testing.rest_api_event("GET", "/v1/items/2"), catalog)

    assert result["statusCode"] == 200
    assert json.loads(result["body"])["name"] == "pan"


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (
            template_event(
                "GET",
                "/v1/items/{item_id}",
                path={"item_id": "1"},
                query={"limit": "0"},
            ),
            "400: Bad Request - 0 is less than the minimum of 1",
        ),
        (
            template_event("POST", "/v1/items", body={"name": "cup", "price": -3}),
            "400: Bad Request - -3 is less than the minimum of 0 - 'price'",
        ),
        (
            template_event("GET", "/v1/whoami"),
            "400: Bad Request - Missing header parameter 'X-Tenant'",
        ),
    ],
)
def test_a_request_that_breaks_the_spec_raises_400_with_connexions_detail(
    catalog: str, event: dict[str, Any], text: str
) -> None:
    error = raised(event, catalog)

    assert (error.status_code, str(error)) == (400, text)


def test_a_content_type_that_is_not_ascii_raises_400(catalog: str) -> None:
    event = template_event("GET", "/v1/whoami", header={"Content-Type": "text/\u00e9"})

    error = raised(event, catalog)

    assert str(error) == "400: Bad Request - the Content-Type header is not ASCII"


def test_a_proxy_request_whose_content_type_is_not_ascii_is_a_bad_request(
    catalog: str,
) -> None:
    event = testing.rest_api_event(
        "POST",
        "/v1/items",
        body='{"name": "cup", "price": 3}',
        headers={"Content-Type": "application/json; charset=\u00e9"},
    )

    result = call(event, catalog)

    assert result["statusCode"] == 400
    assert "not ASCII" in result["body"]


def test_an_http_error_of_the_operation_keeps_its_status_and_message(
    catalog: str,
) -> None:
    event = template_event("GET", "/v1/items/{item_id}", path={"item_id": "9"})

    error = raised(event, catalog)

    assert (error.status_code, str(error)) == (404, "404: Not Found - no item 9")


def test_an_unhandled_exception_raises_500_without_internals(
    catalog: str, stream: io.StringIO
) -> None:
    error = raised(template_event("GET", "/v1/broken"), catalog)

    assert str(error) == "500: Internal Server Error"
    assert error.__cause__ is None and error.__context__ is None
    tracebacks = [
        line for line in lines(stream) if "hunter2" in line.get("exception", "")
    ]
    assert len(tracebacks) == 1


def test_a_broken_contract_raises_500_and_logs_the_schema_error(
    catalog: str, stream: io.StringIO
) -> None:
    error = raised(template_event("GET", "/v1/contract"), catalog)

    assert str(error) == "500: Internal Server Error"
    (line,) = [
        line
        for line in lines(stream)
        if line["event"] == "Response body does not conform to specification"
    ]
    assert line["detail"].startswith("'seven' is not of type 'integer'")


def test_errors_are_logged_as_fleece_1x_logged_them(
    catalog: str, stream: io.StringIO
) -> None:
    event = template_event("GET", "/v1/items/{item_id}", path={"item_id": "9"})

    raised(event, catalog)

    logged = [line for line in lines(stream) if line["logger"] == "fleece_runtime.apps"]
    assert [line["event"] for line in logged] == ["Raising 4xx error", "HTTPError"]
    assert (logged[0]["http_status"], logged[0]["message"]) == (404, "no item 9")
    assert "404: Not Found - no item 9" in logged[1]["exception"]


def test_a_decorated_handler_s_lines_carry_the_template_s_api_request_id(
    catalog: str, stream: io.StringIO
) -> None:
    event = template_event("GET", "/v1/items/{item_id}", path={"item_id": "9"})

    @runtime.inject_request_ids_into_environment
    def handler(event: dict[str, Any], context: object) -> Any:
        return call(event, catalog)

    with pytest.raises(HTTPError):
        handler(event, testing.LambdaContext("catalog"))

    logged = [line for line in lines(stream) if line["logger"] == "fleece_runtime.apps"]
    assert len(logged) == 2
    assert {line["api_request_id"] for line in logged} == {
        event["rawContext"]["requestId"]
    }


@contextmanager
def kept_records(logger: logging.Logger) -> Iterator[list[logging.LogRecord]]:
    """The records ``logger`` handles while the block runs."""
    handler = _Kept()
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_logger_adapter_gets_the_lines_and_the_answer_stays(catalog: str) -> None:
    logger = logging.getLogger("tests.request_template.adapter")
    adapter = logging.LoggerAdapter(logger, {"tenant": "t1"})
    event = template_event("GET", "/v1/items/{item_id}", path={"item_id": "9"})

    with kept_records(logger) as records, pytest.raises(HTTPError) as error:
        call(event, catalog, adapter)

    assert str(error.value) == "404: Not Found - no item 9"
    assert "Raising 4xx error" in records[0].getMessage()


def test_a_standard_logger_gets_the_lines(catalog: str) -> None:
    logger = logging.getLogger("tests.request_template")
    event = template_event("GET", "/v1/items/{item_id}", path={"item_id": "9"})

    with kept_records(logger) as records, pytest.raises(HTTPError):
        call(event, catalog, logger)

    first = json.loads(records[0].getMessage())
    assert (first["event"], first["http_status"]) == ("Raising 4xx error", 404)


@pytest.mark.parametrize(
    "event",
    [
        template_event(
            "GET", "/v1/items/{item_id}", path={"item_id": "1"}, query={"limit": "0"}
        ),
        template_event("GET", "/v1/items/{item_id}", path={"item_id": "9"}),
        template_event("GET", "/v1/broken"),
        template_event("GET", "/v1/contract"),
        template_event("GET", "/v1/items/{item_id}"),
    ],
)
def test_header_values_never_reach_the_log(
    catalog: str, stream: io.StringIO, event: dict[str, Any]
) -> None:
    raised(event, catalog)

    assert SECRET not in stream.getvalue()


def test_a_secret_header_quoted_by_a_validation_error_is_redacted(
    catalog: str, stream: io.StringIO
) -> None:
    key = "sk-live-4f9a1c77e2"
    event = template_event("GET", "/v1/keyed", header={"X-Api-Key": key})

    error = raised(event, catalog)

    assert error.status_code == 400
    assert "[REDACTED]" in str(error)
    assert key not in str(error)
    assert key not in stream.getvalue()


@pytest.mark.parametrize(
    "key",
    [
        "Bearer eyJhbGciOiJSUzI1NiJ9." + "a" * 60 + "." + "b" * 60,  # pprint breaks it
        "sk\\live\t'quoted\"-4f9a1c77e2",  # repr() escapes it
    ],
    ids=["long-bearer", "escaped"],
)
def test_a_secret_header_is_redacted_however_the_message_quotes_it(
    catalog: str, stream: io.StringIO, key: str
) -> None:
    proxy = testing.rest_api_event("GET", "/v1/keyed", headers={"X-Api-Key": key})
    template = template_event("GET", "/v1/keyed", header={"X-Api-Key": key})

    assert call(proxy, catalog)["statusCode"] == 400
    error = raised(template, catalog)

    secret_parts = [key, *(part for part in key.split() if len(part) >= 8)]
    for text in (str(error), stream.getvalue()):
        for part in secret_parts:
            assert part not in text
            assert repr(part)[1:-1] not in text
            assert json.dumps(part)[1:-1] not in text


def test_a_secret_query_parameter_quoted_by_an_error_is_redacted(
    catalog: str, stream: io.StringIO
) -> None:
    token = "tok-3b8e0d5a"
    event = template_event(
        "GET",
        "/v1/keyed",
        header={"X-Api-Key": "key-1"},
        query={"session_token": token},
    )

    error = raised(event, catalog)

    assert error.status_code == 400
    assert token not in str(error)
    assert token not in stream.getvalue()


def test_connexion_logs_a_refused_proxy_request_without_its_secrets(
    catalog: str, stream: io.StringIO
) -> None:
    key, token = "sk-live-4f9a1c77e2", "st-x-3b8e0d5a"
    event = testing.rest_api_event(
        "GET",
        "/v1/keyed",
        headers={"X-Api-Key": key},
        query={"session_token": token},
    )

    result = call(event, catalog)

    assert result["statusCode"] == 400
    logged = stream.getvalue()
    assert "BadRequestProblem" in logged  # connexion's line, still there
    assert key not in logged
    assert token not in logged


# -- malformed events ------------------------------------------------------------


def malformed(change: Any) -> dict[str, Any]:
    event = template_event("POST", "/v1/items/{item_id}", path={"item_id": "1"})
    change(event)
    return event


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (
            malformed(lambda e: e.update(rawContext="GET")),
            "rawContext is not an object",
        ),
        (
            malformed(lambda e: e["rawContext"].pop("httpMethod")),
            "rawContext.httpMethod is not an HTTP method",
        ),
        (
            malformed(lambda e: e["parameters"].update(gateway=None)),
            "parameters.gateway is not an object",
        ),
        (
            malformed(lambda e: e["parameters"]["gateway"].pop("resource-path")),
            "parameters.gateway.resource-path is not a path",
        ),
        (
            malformed(lambda e: e["parameters"].update(request=[])),
            "parameters.request is not an object",
        ),
        (
            malformed(lambda e: e["parameters"]["request"].update(path={})),
            "parameters.request.path has no value for {item_id} of /v1/items/{item_id}",
        ),
        (
            malformed(lambda e: e["parameters"]["request"].update(header="Host: x")),
            "parameters.request.header is not an object",
        ),
        (
            malformed(lambda e: e["parameters"]["request"].update(querystring=7)),
            "parameters.request.querystring is not an object, pairs or a query string",
        ),
        (
            malformed(lambda e: e["parameters"]["request"].update(body={1, 2})),
            "parameters.request.body is not JSON",
        ),
    ],
)
def test_a_malformed_template_event_raises_400_saying_what_is_wrong(
    catalog: str, event: dict[str, Any], problem: str
) -> None:
    error = raised(event, catalog)

    assert (
        str(error) == f"400: Bad Request - malformed request-template event: {problem}"
    )


@pytest.mark.parametrize(
    ("remove", "problem"),
    [
        (("rawContext",), "rawContext is not an object"),
        (("parameters",), "parameters is not an object"),
        (("parameters", "gateway"), "parameters.gateway is not an object"),
        (("parameters", "request"), "parameters.request is not an object"),
    ],
)
def test_a_template_event_missing_a_part_is_a_malformed_one(
    catalog: str, remove: tuple[str, ...], problem: str
) -> None:
    event = template_event("GET", "/v1/items/{item_id}", path={"item_id": "1"})
    parent = event
    for key in remove[:-1]:
        parent = parent[key]
    del parent[remove[-1]]

    error = raised(event, catalog)

    assert (
        str(error) == f"400: Bad Request - malformed request-template event: {problem}"
    )


def test_a_generated_event_without_raw_context_is_a_malformed_one(catalog: str) -> None:
    event = testing.LambdaEvent().generate()  # 1.x's generator makes no rawContext

    error = raised(event, catalog)

    assert error.status_code == 400
    assert "rawContext is not an object" in str(error)


def test_an_event_that_is_neither_http_nor_a_template_is_refused(catalog: str) -> None:
    with pytest.raises(TypeError, match="yoke's request template"):
        call({"orders": [1, 2]}, catalog)


def test_a_lone_surrogate_in_the_path_is_a_bad_request(catalog: str) -> None:
    template = template_event("GET", "/v1/items/{item_id}", path={"item_id": "\ud800"})
    proxy = testing.rest_api_event("GET", "/v1/items/\ud800")

    assert raised(template, catalog).status_code == 400
    assert call(proxy, catalog)["statusCode"] == 400


# -- random template events --------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
PARTS = [
    ("rawContext",),
    ("rawContext", "httpMethod"),
    ("rawContext", "identity"),
    ("parameters", "gateway"),
    ("parameters", "gateway", "resource-path"),
    ("parameters", "request"),
    ("parameters", "request", "path"),
    ("parameters", "request", "path", "item_id"),
    ("parameters", "request", "querystring"),
    ("parameters", "request", "header"),
    ("parameters", "request", "header", "Content-Type"),
    ("parameters", "request", "body"),
]


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
    changes=st.lists(
        st.tuples(st.sampled_from(PARTS), st.just(None) | JSON), max_size=3
    ),
)
@example(method="GET", changes=[(PARTS[10], "\x80")])
@example(method="GET", changes=[(PARTS[7], "\ud800")])
@example(method="GET", changes=[(PARTS[0], None)])
def test_a_random_template_event_never_escapes_as_anything_but_an_http_error(
    catalog: str, method: str, changes: list[tuple[tuple[str, ...], Any]]
) -> None:
    """Parts replaced by random JSON or removed: a body, or an HTTPError that is not a 500."""
    event = template_event(method, "/v1/items/{item_id}", path={"item_id": "1"})
    for path, value in changes:
        parent: Any = event
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            if value is None:
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = value

    try:
        call(event, catalog)
    except HTTPError as error:
        assert 400 <= error.status_code < 500, str(error)
