"""fleece_runtime's event views, read from AWS's documented sample events."""

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime

EVENTS = Path(__file__).resolve().parent / "events"


def sample(name: str) -> dict[str, Any]:
    """An AWS documented sample event (tests/runtime/events/NAME.json)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


@pytest.mark.parametrize(
    ("name", "view", "source"),
    [
        ("apigw_rest", runtime.RestApiRequest, "api_gateway_rest"),
        ("apigw_http", runtime.HttpApiRequest, "api_gateway_http"),
        ("alb", runtime.AlbRequest, "alb"),
        ("alb_multi_value", runtime.AlbRequest, "alb"),
        ("function_url", runtime.FunctionUrlRequest, "function_url"),
        ("s3", runtime.S3Event, "s3"),
        ("sqs", runtime.SqsEvent, "sqs"),
        ("sns", runtime.SnsEvent, "sns"),
        ("eventbridge", runtime.EventBridgeEvent, "eventbridge"),
        ("dynamodb", runtime.DynamoDBStreamEvent, "dynamodb"),
        ("kinesis", runtime.KinesisEvent, "kinesis"),
    ],
)
def test_each_source_is_told_by_its_markers(
    name: str, view: type[runtime.Event], source: str
) -> None:
    parsed = runtime.parse_event(sample(name))

    assert type(parsed) is view
    assert parsed.source == source


@pytest.mark.parametrize(
    "event",
    [
        None,
        42,
        "text",
        [1, 2],
        {},
        {"order_id": 7},
        {"Records": []},
        {"Records": "nope"},
        {"Records": [None]},
        {"Records": [{"eventSource": "aws:unknown"}]},
        {"requestContext": "x", "version": "2.0"},
        {"detail-type": "x"},
    ],
)
def test_unknown_or_malformed_shapes_are_direct_invocations(event: object) -> None:
    parsed = runtime.parse_event(event)

    assert isinstance(parsed, runtime.DirectInvocation)
    assert parsed.payload is event


def test_the_context_stays_with_the_view() -> None:
    context = runtime.LambdaContext()

    assert runtime.parse_event(sample("sqs"), context).context is context


def test_rest_request_reads_method_path_and_multi_value_fields() -> None:
    request = runtime.parse_event(sample("apigw_rest"))
    assert isinstance(request, runtime.RestApiRequest)

    assert (request.method, request.path) == ("GET", "/my/path")
    assert request.headers["Header2"] == "value1, value2"
    assert request.headers.get_all("header2") == ["value1", "value2"]
    assert request.query == {"parameter1": "value2", "parameter2": "value"}
    assert request.query_all == {
        "parameter1": ["value1", "value2"],
        "parameter2": ["value"],
    }
    assert request.source_ip == "192.0.2.1"
    assert request.request_id == "id="
    assert request.resource == "/my/path"
    assert request.text == "Hello from Lambda!"


def test_http_api_request_reads_raw_query_cookies_and_jwt_claims() -> None:
    request = runtime.parse_event(sample("apigw_http"))
    assert isinstance(request, runtime.HttpApiRequest)

    assert (request.method, request.path) == ("POST", "/my/path")
    assert request.query_all == {
        "parameter1": ["value1", "value2"],
        "parameter2": ["value"],
    }
    assert request.claims == {"claim1": "value1", "claim2": "value2"}
    assert request.path_params == {"parameter1": "value1"}
    assert request.stage_variables == {
        "stageVariable1": "value1",
        "stageVariable2": "value2",
    }
    assert request.route_key == "$default"
    assert request.source_ip == "192.0.2.1"


def test_http_api_cookies_come_from_the_cookies_field() -> None:
    event = runtime.testing.http_api_event(cookies={"session": "abc", "theme": "dark"})

    assert runtime.parse_event(event).cookies == {"session": "abc", "theme": "dark"}  # type: ignore[attr-defined]


def test_rest_cookies_come_from_the_cookie_header() -> None:
    event = runtime.testing.rest_api_event(
        headers={"Cookie": 'session=abc; theme="dark"'}
    )
    request = runtime.parse_event(event)
    assert isinstance(request, runtime.HttpRequest)

    assert request.cookies == {"session": "abc", "theme": "dark"}


def test_headers_are_case_insensitive() -> None:
    request = runtime.parse_event(sample("apigw_rest"))
    assert isinstance(request, runtime.HttpRequest)

    assert "HEADER1" in request.headers
    assert request.headers["HeAdEr1"] == "value1"
    assert set(request.headers) == {"header1", "header2"}


def test_http_api_path_drops_the_stage_on_api_gateways_domain() -> None:
    request = runtime.parse_event(
        runtime.testing.http_api_event("GET", "/orders/7", stage="prod")
    )
    assert isinstance(request, runtime.HttpRequest)

    assert request.raw_path == "/prod/orders/7"
    assert request.path == "/orders/7"
    assert request.base_path == "/prod"


def test_rest_base_path_is_the_stage_on_api_gateways_domain() -> None:
    request = runtime.parse_event(
        runtime.testing.rest_api_event("GET", "/orders", stage="prod")
    )
    assert isinstance(request, runtime.HttpRequest)

    assert (request.path, request.base_path) == ("/orders", "/prod")


def test_rest_base_path_is_empty_on_a_custom_domain() -> None:
    event = runtime.testing.rest_api_event(
        "GET", "/orders", headers={"Host": "api.example.com"}
    )
    request = runtime.parse_event(event)
    assert isinstance(request, runtime.HttpRequest)

    assert request.base_path == ""


def test_encoded_paths_are_decoded() -> None:
    request = runtime.parse_event(
        runtime.testing.http_api_event("GET", "/files/r%C3%A9sum%C3%A9.pdf")
    )
    assert isinstance(request, runtime.HttpRequest)

    assert request.path == "/files/résumé.pdf"


def test_base64_body_is_decoded() -> None:
    event = runtime.testing.http_api_event("POST", "/upload", body=b"\x89PNG\x00")
    request = runtime.parse_event(event)
    assert isinstance(request, runtime.HttpRequest)

    assert request.is_base64_encoded
    assert request.body == b"\x89PNG\x00"


def test_json_body_is_parsed() -> None:
    event = runtime.testing.rest_api_event(
        "POST", "/orders", body={"sku": "a-1", "quantity": 2}
    )
    request = runtime.parse_event(event)
    assert isinstance(request, runtime.HttpRequest)

    assert request.json == {"sku": "a-1", "quantity": 2}


def test_empty_body_is_none_as_json() -> None:
    request = runtime.parse_event(runtime.testing.http_api_event("GET", "/"))
    assert isinstance(request, runtime.HttpRequest)

    assert (request.body, request.json) == (b"", None)


@pytest.mark.parametrize(
    ("body", "base64", "message"),
    [
        ("{not json", False, "not valid JSON"),
        ("not base64!", True, "not valid base64"),
        ("gICA", True, "not UTF-8"),
    ],
)
def test_unreadable_body_is_a_400(body: str, base64: bool, message: str) -> None:
    event = runtime.testing.http_api_event(
        "POST", "/", body=body, isBase64Encoded=base64
    )
    request = runtime.parse_event(event)
    assert isinstance(request, runtime.HttpRequest)

    with pytest.raises(runtime.HTTPError, match=message) as raised:
        request.json  # noqa: B018

    assert raised.value.status_code == 400


def test_cognito_claims_of_a_rest_request() -> None:
    event = runtime.testing.rest_api_event(
        claims={"sub": "user-1", "email": "a@example.com"}
    )
    request = runtime.parse_event(event)
    assert isinstance(request, runtime.HttpRequest)

    assert request.claims == {"sub": "user-1", "email": "a@example.com"}


def test_lambda_authorizer_context_is_the_claims_of_a_rest_request() -> None:
    event = runtime.testing.rest_api_event(
        requestContext={
            "authorizer": {
                "principalId": "user-1",
                "tenant": "t1",
                "integrationLatency": 3,
            }
        }
    )
    request = runtime.parse_event(event)
    assert isinstance(request, runtime.HttpRequest)

    assert request.claims == {"principalId": "user-1", "tenant": "t1"}


def test_lambda_authorizer_context_is_the_claims_of_an_http_api_request() -> None:
    event = runtime.testing.http_api_event(
        requestContext={"authorizer": {"lambda": {"tenant": "t1"}}}
    )
    request = runtime.parse_event(event)
    assert isinstance(request, runtime.HttpRequest)

    assert request.claims == {"tenant": "t1"}


def test_function_url_request_reads_the_2_0_payload_without_claims() -> None:
    request = runtime.parse_event(sample("function_url"))
    assert isinstance(request, runtime.FunctionUrlRequest)

    assert (request.method, request.path, request.text) == (
        "POST",
        "/my/path",
        "Hello from client!",
    )
    assert request.source_ip == "123.123.123.123"
    assert request.claims == {}
    assert (
        request.authorizer["iam"]["userArn"]
        == "arn:aws:iam::111122223333:user/example-user"
    )


def test_alb_request_with_single_value_headers() -> None:
    request = runtime.parse_event(sample("alb"))
    assert isinstance(request, runtime.AlbRequest)

    assert (request.method, request.path) == ("GET", "/lambda")
    assert request.query == {"query": "1234ABCD"}
    assert request.source_ip == "72.12.164.125"
    assert not request.multi_value
    assert request.request_id is None
    assert request.target_group_arn is not None and request.target_group_arn.endswith(
        "/49e9d65c45c6791a"
    )


def test_alb_request_with_multi_value_headers() -> None:
    request = runtime.parse_event(sample("alb_multi_value"))
    assert isinstance(request, runtime.AlbRequest)

    assert request.multi_value
    assert request.query_all == {"myKey": ["val1", "val2"]}
    assert request.cookies == {"name1": "value1", "name2": "value2"}
    assert request.text == "request_body"


def test_alb_query_parameters_are_decoded() -> None:
    event = runtime.testing.alb_event("GET", "/search", query={"q": "a b&c"})
    request = runtime.parse_event(event)
    assert isinstance(request, runtime.HttpRequest)

    assert event["queryStringParameters"] == {"q": "a+b%26c"}
    assert request.query == {"q": "a b&c"}


def test_s3_record() -> None:
    event = runtime.parse_event(sample("s3"))
    assert isinstance(event, runtime.S3Event)
    (record,) = event.records

    assert (record.bucket, record.key) == ("example-bucket", "test/key")
    assert (record.event_name, record.size, record.region) == (
        "ObjectCreated:Put",
        1024,
        "us-east-1",
    )
    assert record.etag == "0123456789abcdef0123456789abcdef"
    assert record.version_id is None


def test_s3_keys_with_spaces_are_decoded() -> None:
    event = runtime.parse_event(
        runtime.testing.s3_event("uploads", "reports/March 2025.csv")
    )
    assert isinstance(event, runtime.S3Event)

    assert event.records[0].key == "reports/March 2025.csv"


def test_sqs_records() -> None:
    event = runtime.parse_event(sample("sqs"))
    assert isinstance(event, runtime.SqsEvent)
    first, second = event.records

    assert first.message_id == "059f36b4-87a3-44ab-83d2-661975830a7d"
    assert (first.body, first.queue) == ("Test message.", "my-queue")
    assert first.queue_arn == "arn:aws:sqs:us-east-2:123456789012:my-queue"
    assert first.attributes["ApproximateReceiveCount"] == "1"
    assert first.message_attributes["myAttribute"]["stringValue"] == "myValue"
    assert second.message_id == "2e1424d4-f796-459a-8184-9c92662be6da"


def test_sqs_json_body() -> None:
    event = runtime.parse_event(runtime.testing.sqs_event({"order_id": 7}))
    assert isinstance(event, runtime.SqsEvent)

    assert event.records[0].json == {"order_id": 7}


def test_sqs_fifo_record_has_its_group() -> None:
    event = runtime.parse_event(runtime.testing.sqs_event("a", queue="orders.fifo"))
    assert isinstance(event, runtime.SqsEvent)

    assert event.records[0].message_group_id == "1"


def test_sns_record() -> None:
    event = runtime.parse_event(sample("sns"))
    assert isinstance(event, runtime.SnsEvent)
    (record,) = event.records

    assert (record.message, record.subject, record.topic) == (
        "Hello from SNS!",
        "TestInvoke",
        "sns-lambda",
    )
    assert record.message_id == "95df01b4-ee98-5cb9-9903-4c221d41eb5e"
    assert record.message_attributes == {
        "Test": "TestString",
        "TestBinary": "TestBinary",
    }
    assert record.timestamp == "2019-01-02T12:45:07.000Z"


def test_eventbridge_event() -> None:
    event = runtime.parse_event(sample("eventbridge"))
    assert isinstance(event, runtime.EventBridgeEvent)

    assert (event.event_source, event.detail_type) == ("aws.events", "Scheduled Event")
    assert event.detail == {}
    assert event.resources == [
        "arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule"
    ]
    assert (event.account, event.region, event.time) == (
        "123456789012",
        "us-east-1",
        "2015-10-08T16:53:06Z",
    )


def test_dynamodb_records_in_plain_python() -> None:
    event = runtime.parse_event(sample("dynamodb"))
    assert isinstance(event, runtime.DynamoDBStreamEvent)
    insert, modify, remove = event.records

    assert (insert.event_name, insert.table, insert.sequence_number) == (
        "INSERT",
        "TestTable",
        "111",
    )
    assert insert.keys == {"Id": Decimal(101)}
    assert insert.new_image == {"Message": "New item!", "Id": Decimal(101)}
    assert insert.old_image is None
    assert modify.old_image == {"Message": "New item!", "Id": Decimal(101)}
    assert modify.new_image == {"Message": "This item has changed", "Id": Decimal(101)}
    assert (remove.event_name, remove.new_image) == ("REMOVE", None)


def test_dynamodb_typed_values_round_trip_through_the_builder() -> None:
    item = {
        "id": "o-1",
        "total": Decimal("9.5"),
        "paid": True,
        "note": None,
        "lines": [{"sku": "a", "qty": 2}],
        "tags": {"x", "y"},
        "blob": b"\x00\x01",
    }
    event = runtime.parse_event(runtime.testing.dynamodb_event(item, table="orders"))
    assert isinstance(event, runtime.DynamoDBStreamEvent)

    assert event.records[0].new_image == {
        **item,
        "lines": [{"sku": "a", "qty": Decimal(2)}],
    }
    assert event.records[0].keys == {"id": "o-1"}
    assert event.records[0].table == "orders"


def test_kinesis_records() -> None:
    event = runtime.parse_event(sample("kinesis"))
    assert isinstance(event, runtime.KinesisEvent)
    first, second = event.records

    assert first.data == b"Hello, this is a test."
    assert second.text == "This is only a test."
    assert (first.stream, first.partition_key) == ("lambda-stream", "1")
    assert (
        first.sequence_number
        == "49590338271490256608559692538361571095921575989136588898"
    )


def test_kinesis_data_that_is_not_base64_raises_value_error() -> None:
    event = runtime.parse_event(
        runtime.testing.kinesis_event("x", kinesis={"data": "%%%"})
    )
    assert isinstance(event, runtime.KinesisEvent)

    with pytest.raises(ValueError, match="not base64"):
        event.records[0].data  # noqa: B018


def test_fields_of_the_wrong_type_read_as_absent() -> None:
    event = {
        "httpMethod": "GET",
        "path": "/x",
        "headers": ["not", "a", "dict"],
        "multiValueHeaders": {"a": "not a list", 3: ["x"]},
        "queryStringParameters": 5,
        "requestContext": {"identity": None, "authorizer": []},
        "body": 12,
    }
    request = runtime.parse_event(event)
    assert isinstance(request, runtime.HttpRequest)

    assert dict(request.headers) == {}
    assert request.query == {}
    assert (request.source_ip, request.body, request.claims) == (None, b"", {})
