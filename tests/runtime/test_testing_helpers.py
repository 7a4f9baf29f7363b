"""fleece_runtime's test helpers: LambdaContext (fleece 1.x's) and the event builders."""

import base64
import re
import uuid
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime
from runtime_stub.fleece_runtime import LambdaContext, testing


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lambda_context_takes_1x_constructor() -> None:
    context = LambdaContext(
        "orders", 3, 5000, 512, "eu-west-1", "111122223333", "live", "req-1", None
    )

    assert context.function_name == "orders"
    assert context.function_version == "3"
    assert context.memory_limit_in_mb == "512"
    assert context.aws_request_id == "req-1"
    assert (
        context.invoked_function_arn
        == "arn:aws:lambda:eu-west-1:111122223333:function:orders:live"
    )
    assert context.log_group_name == "/aws/lambda/orders"


def test_lambda_context_has_lambdas_attribute_types() -> None:
    context = LambdaContext()

    assert isinstance(context.memory_limit_in_mb, str)
    assert isinstance(context.function_version, str)
    assert uuid.UUID(context.aws_request_id)
    assert re.fullmatch(r"\d{4}/\d{2}/\d{2}/\[1\][0-9a-f]{32}", context.log_stream_name)
    assert context.client_context is None
    assert context.identity.cognito_identity_id is None
    assert context.identity.cognito_identity_pool_id is None


def test_lambda_context_gives_client_context_attributes() -> None:
    context = LambdaContext(client_context={"custom": {"country": "SE"}})

    assert context.client_context.custom == {"country": "SE"}
    assert context.client_context.env is None


def test_remaining_time_counts_down() -> None:
    clock = Clock()
    context = LambdaContext(remaining_time_in_milli=3000, clock=clock)

    assert context.get_remaining_time_in_millis() == 3000
    clock.now += 1.25
    assert context.get_remaining_time_in_millis() == 1750
    clock.now += 10
    assert context.get_remaining_time_in_millis() == 0


def test_remaining_time_feeds_the_deadline() -> None:
    context = LambdaContext(remaining_time_in_milli=2000)

    with runtime.lambda_invocation(context):
        deadline = runtime.current_deadline()

    assert deadline is not None and 1.0 < deadline.remaining() <= 1.5


def test_lambda_context_is_the_1x_module_name_too() -> None:
    assert runtime.testing.LambdaContext is LambdaContext


def test_builders_override_any_field_deeply() -> None:
    event = testing.rest_api_event(
        "GET",
        "/x",
        requestContext={"stage": "dev", "identity": {"sourceIp": "10.0.0.1"}},
    )

    assert event["requestContext"]["stage"] == "dev"
    assert event["requestContext"]["identity"]["sourceIp"] == "10.0.0.1"
    assert event["requestContext"]["identity"]["userAgent"] == "curl/8.5.0"


def test_rest_builder_fills_single_and_multi_value_fields() -> None:
    event = testing.rest_api_event(
        "get", "/orders", query={"tag": ["a", "b"]}, headers={"X-Tenant": "t1"}
    )

    assert event["httpMethod"] == "GET"
    assert event["queryStringParameters"] == {"tag": "b"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"]}
    assert event["headers"]["X-Tenant"] == "t1"
    assert event["multiValueHeaders"]["X-Tenant"] == ["t1"]
    assert event["requestContext"]["path"] == "/prod/orders"


def test_http_api_builder_matches_the_2_0_payload() -> None:
    event = testing.http_api_event(
        "POST",
        "/orders",
        body={"a": 1},
        query={"q": "x y"},
        cookies={"s": "1"},
        stage="dev",
    )

    assert event["version"] == "2.0"
    assert event["rawPath"] == "/dev/orders"
    assert event["rawQueryString"] == "q=x+y"
    assert event["cookies"] == ["s=1"]
    assert event["headers"]["content-type"] == "application/json"
    assert event["body"] == '{"a":1}'
    assert event["requestContext"]["http"]["method"] == "POST"


def test_builders_encode_bytes_bodies() -> None:
    event = testing.function_url_event("PUT", "/f", body=b"\x00\x01")

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\x01"
    assert ".lambda-url." in event["requestContext"]["domainName"]


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (testing.rest_api_event(), runtime.RestApiRequest),
        (testing.http_api_event(), runtime.HttpApiRequest),
        (testing.function_url_event(), runtime.FunctionUrlRequest),
        (testing.alb_event(), runtime.AlbRequest),
        (testing.alb_event(multi_value=True), runtime.AlbRequest),
        (testing.s3_event(), runtime.S3Event),
        (testing.sqs_event("a", "b"), runtime.SqsEvent),
        (testing.sns_event(), runtime.SnsEvent),
        (testing.eventbridge_event(), runtime.EventBridgeEvent),
        (testing.dynamodb_event(), runtime.DynamoDBStreamEvent),
        (testing.kinesis_event(), runtime.KinesisEvent),
    ],
)
def test_every_builder_gives_its_sources_event(
    event: dict[str, Any], kind: type[runtime.Event]
) -> None:
    assert type(runtime.parse_event(event)) is kind


def test_batch_builders_give_each_record_its_own_id() -> None:
    sqs = testing.sqs_event("a", "b", "c")
    kinesis = testing.kinesis_event("a", "b")

    assert len({record["messageId"] for record in sqs["Records"]}) == 3
    assert (
        len({record["kinesis"]["sequenceNumber"] for record in kinesis["Records"]}) == 2
    )


def test_record_overrides_apply_to_every_record() -> None:
    event = testing.sqs_event("a", "b", awsRegion="eu-west-1")

    assert {record["awsRegion"] for record in event["Records"]} == {"eu-west-1"}


def test_dynamodb_builder_puts_removed_items_in_the_old_image() -> None:
    event = testing.dynamodb_event({"id": "1", "n": 2}, event_name="REMOVE")
    change = event["Records"][0]["dynamodb"]

    assert change["OldImage"] == {"id": {"S": "1"}, "n": {"N": "2"}}
    assert "NewImage" not in change
    assert change["Keys"] == {"id": {"S": "1"}}


def test_dynamodb_builder_refuses_what_dynamodb_cannot_hold() -> None:
    with pytest.raises(TypeError, match="DynamoDB cannot hold a object"):
        testing.dynamodb_event({"id": object()})
