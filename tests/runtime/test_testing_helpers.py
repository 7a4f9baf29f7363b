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


# -- fleece 1.x's request-template helpers: LambdaEvent, LambdaRequestGenerator,
# dict_update, and events.format_event / Hasher (1.x has no tests of its own
# for them: these follow its source).


def test_lambda_event_generates_1x_defaults() -> None:
    event = testing.LambdaEvent().generate()

    assert event["operation"] == "test:operation"
    parameters = event["parameters"]
    assert set(parameters) == {"requestor", "request", "gateway"}
    assert parameters["request"]["body"] == {}
    assert parameters["request"]["path"] == {}
    assert parameters["request"]["querystring"] == {}
    assert parameters["request"]["header"]["x-auth-token"] == "FAKE_TOKEN"
    assert parameters["request"]["header"]["X-Forwarded-Proto"] == "https"
    assert parameters["requestor"]["source-ip"] == "127.0.0.1"
    gateway = parameters["gateway"]
    assert (gateway["http-method"], gateway["resource-path"]) == ("GET", "/bogus/path/")
    assert (gateway["stage"], gateway["stage-data"]) == ("test_stage", {})
    uuid.UUID(gateway["request-id"])


def test_lambda_event_merges_what_generate_is_given() -> None:
    event = testing.LambdaEvent().generate(
        gateway={"http-method": "POST"},
        header={"x-auth-token": "SOME VALUE"},
        operation="orders:create",
    )

    assert event["operation"] == "orders:create"
    assert event["parameters"]["gateway"]["http-method"] == "POST"
    assert event["parameters"]["gateway"]["stage"] == "test_stage"
    assert event["parameters"]["request"]["header"]["x-auth-token"] == "SOME VALUE"
    assert event["parameters"]["request"]["header"]["Accept"] == "*/*"


def test_lambda_event_without_merge_takes_the_parts_as_given() -> None:
    event = testing.LambdaEvent().generate(
        merge_with_default=False, header={"Host": "example.com"}
    )

    assert event["parameters"]["request"]["header"] == {"Host": "example.com"}
    assert event["parameters"]["gateway"] == {}


def test_lambda_event_parts_given_to_the_constructor_are_its_defaults() -> None:
    maker = testing.LambdaEvent(
        body={"name": "cup"},
        path={"item_id": "7"},
        querystring={"limit": "1"},
        requestor={"source-ip": "10.0.0.1"},
        operation="items:get",
    )

    event = maker.generate(body={"price": 3})

    assert event["operation"] == "items:get"
    request = event["parameters"]["request"]
    assert request["body"] == {"name": "cup", "price": 3}
    assert (request["path"], request["querystring"]) == (
        {"item_id": "7"},
        {"limit": "1"},
    )
    # 1.x read the requestor from the querystring (a typo); the requestor given is used.
    assert event["parameters"]["requestor"] == {"source-ip": "10.0.0.1"}


def test_lambda_event_generates_independent_events() -> None:
    maker = testing.LambdaEvent(header={"X-Tenant": "a"})
    first = maker.generate()

    first["parameters"]["request"]["header"]["X-Tenant"] = "changed"

    assert maker.generate()["parameters"]["request"]["header"] == {"X-Tenant": "a"}
    assert maker.header == {"X-Tenant": "a"}


def test_dict_update_merges_into_a_copy_or_returns_the_update() -> None:
    base = {"a": 1, "b": {"c": 2}}
    update = {"b": {"d": 3}}

    assert testing.dict_update(base, True, update) == {"a": 1, "b": {"d": 3}}
    assert base == {"a": 1, "b": {"c": 2}}
    assert testing.dict_update(base, False, update) is update


def test_lambda_request_generator_formats_the_event_and_context() -> None:
    context = LambdaContext(aws_request_id="req-9", remaining_time_in_milli=5000)
    generator = testing.LambdaRequestGenerator(context=context)

    request = generator.generate_request(
        header={"X-Auth-Token": "T"}, querystring={"q": "1"}
    )

    assert set(request) == {
        "requested-at",
        "context",
        "operation",
        "requestor",
        "body",
        "path",
        "querystring",
        "header",
        "gateway",
    }
    assert request["header"]["x-auth-token"] == "T"
    assert request["header"]["ACCEPT"] == "*/*"
    assert request["querystring"] == {"q": "1"}
    assert request["operation"] == "test:operation"
    assert request["gateway"]["resource-path"] == "/bogus/path/"
    assert request["context"]["aws_request_id"] == "req-9"
    assert 0 < request["context"]["get_remaining_time_in_millis"] <= 5000
    assert request["context"]["invoked_function_arn"] == context.invoked_function_arn
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?", request["requested-at"]
    )


def test_format_event_reads_missing_parts_as_empty_hashers() -> None:
    request = runtime.events.format_event({"operation": "x"}, LambdaContext())

    assert request["operation"] == "x"
    assert request["body"] == {} and isinstance(request["body"], runtime.Hasher)
    assert dict(request["header"]) == {}
    assert request["gateway"]["stage"] == {}


def test_a_hasher_makes_missing_keys_as_it_reads_them() -> None:
    hashed = runtime.events.Hasher({"a": 1})

    assert hashed["b"]["c"] == {}
    assert hashed == {"a": 1, "b": {"c": {}}}


def test_the_1x_names_are_on_their_module_namespaces() -> None:
    assert runtime.testing.LambdaEvent is runtime.LambdaEvent
    assert runtime.testing.LambdaRequestGenerator is runtime.LambdaRequestGenerator
    assert runtime.events.format_event is runtime.format_event
    assert runtime.events.Hasher is runtime.Hasher
