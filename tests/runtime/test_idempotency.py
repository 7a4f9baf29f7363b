"""fleece_runtime.idempotent: duplicates, concurrent and failing calls, on both stores."""

import base64
import copy
import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.outbound_servers import events

TABLE = "idempotency"


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class Context:
    """A Lambda context with a fixed remaining time."""

    def __init__(self, remaining_ms: int = 30_000) -> None:
        self.remaining_ms = remaining_ms
        self.function_name = "orders"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Charge:
    order_id: str
    amount: int


def dynamodb_store() -> runtime.DynamoDBIdempotencyStore:
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return runtime.DynamoDBIdempotencyStore(TABLE)


@pytest.fixture(params=["memory", "dynamodb"])
def store(request: pytest.FixtureRequest) -> runtime.IdempotencyStore:
    if request.param == "memory":
        return runtime.MemoryIdempotencyStore()
    request.getfixturevalue("aws")
    return dynamodb_store()


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Charges:
    """A side effect to run once: charges recorded, optionally blocking or failing."""

    def __init__(self) -> None:
        self.made: list[dict[str, Any]] = []
        self.failures = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        self.entered.set()
        self.release.wait(10)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("payment provider down")
        body = json.loads(event["body"])
        self.made.append(body)
        return {"statusCode": 201, "body": json.dumps({"charged": body["amount"]})}


def handler_of(
    charges: Charges, **options: Any
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    @runtime.idempotent(**options)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return charges(event)

    return handler


def api_event(
    order_id: str, amount: int = 10, request_id: str = "r-1"
) -> dict[str, Any]:
    return {
        "requestContext": {"requestId": request_id},
        "body": json.dumps({"order_id": order_id, "amount": amount}),
    }


def test_a_repeat_returns_the_stored_result_without_running_again(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    charges = Charges()
    handler = handler_of(charges, store=store, key="body.order_id", clock=clock)

    first = handler(api_event("o-1", request_id="r-1"), Context())
    repeat = handler(api_event("o-1", request_id="r-2"), Context())

    assert first == repeat == {"statusCode": 201, "body": '{"charged": 10}'}
    assert charges.made == [{"order_id": "o-1", "amount": 10}]


def test_other_keys_run(store: runtime.IdempotencyStore, clock: Clock) -> None:
    charges = Charges()
    handler = handler_of(charges, store=store, key="body.order_id", clock=clock)

    handler(api_event("o-1"), Context())
    handler(api_event("o-2"), Context())

    assert [charge["order_id"] for charge in charges.made] == ["o-1", "o-2"]


def test_a_concurrent_duplicate_gets_already_in_progress(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    charges = Charges()
    charges.release.clear()
    handler = handler_of(charges, store=store, key="body.order_id", clock=clock)
    first = threading.Thread(target=handler, args=(api_event("o-1"), Context(30_000)))
    first.start()
    assert charges.entered.wait(10)

    try:
        with pytest.raises(runtime.AlreadyInProgress, match="in progress") as raised:
            handler(api_event("o-1"), Context())
        assert raised.value.retry_after == pytest.approx(30, abs=0.01)
    finally:
        charges.release.set()
        first.join()
    assert len(charges.made) == 1
    assert handler(api_event("o-1"), Context())["statusCode"] == 201


def test_a_failed_call_leaves_no_record_so_a_retry_runs(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    charges = Charges()
    charges.failures = 1
    handler = handler_of(charges, store=store, key="body.order_id", clock=clock)

    with pytest.raises(ConnectionError):
        handler(api_event("o-1"), Context())
    result = handler(api_event("o-1"), Context())

    assert result["statusCode"] == 201
    assert len(charges.made) == 1


def test_a_killed_call_blocks_its_key_only_for_the_invocation_s_remaining_time(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    charges = Charges()
    charges.release.clear()
    handler = handler_of(charges, store=store, key="body.order_id", clock=clock)
    killed = threading.Thread(target=handler, args=(api_event("o-1"), Context(3_000)))
    retried = threading.Thread(target=handler, args=(api_event("o-1"), Context()))
    killed.start()
    assert charges.entered.wait(10)
    try:
        clock.now += 2
        with pytest.raises(runtime.AlreadyInProgress):
            handler(api_event("o-1"), Context())
        clock.now += 1.5  # the first invocation has timed out

        charges.entered.clear()
        retried.start()
        assert charges.entered.wait(10)  # the retry runs
    finally:
        charges.release.set()
        killed.join()
        if retried.is_alive():
            retried.join()


@pytest.mark.parametrize("a_fails", [True, False], ids=["raises", "returns"])
def test_a_call_whose_record_lapsed_leaves_the_next_call_s_record(
    store: runtime.IdempotencyStore, clock: Clock, a_fails: bool
) -> None:
    b_runs, b_may_end = threading.Event(), threading.Event()

    @runtime.idempotent(store=store, key="id", clock=clock)
    def handler(event: dict[str, Any], context: Any) -> str:
        if event["who"] == "A":
            clock.now += 5  # A outlives its 2 s in-progress record: B claims the key
            b.start()
            assert b_runs.wait(10)
            if a_fails:
                raise RuntimeError("A fails while B runs")
            return "A"
        b_runs.set()
        b_may_end.wait(10)
        return str(event["who"])

    b = threading.Thread(target=handler, args=({"id": 1, "who": "B"}, Context()))
    try:
        if a_fails:
            with pytest.raises(RuntimeError, match="A fails"):
                handler({"id": 1, "who": "A"}, Context(2_000))
        else:
            assert handler({"id": 1, "who": "A"}, Context(2_000)) == "A"
        with pytest.raises(runtime.AlreadyInProgress):  # B's record still holds
            handler({"id": 1, "who": "C"}, Context())
    finally:
        b_may_end.set()
        if b.is_alive():
            b.join()
    assert handler({"id": 1, "who": "D"}, Context()) == "B"


def test_a_result_expires_after_expires_after(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    charges = Charges()
    handler = handler_of(
        charges, store=store, key="body.order_id", expires_after=60, clock=clock
    )
    handler(api_event("o-1"), Context())
    clock.now += 59
    handler(api_event("o-1"), Context())
    assert len(charges.made) == 1

    clock.now += 2
    handler(api_event("o-1"), Context())

    assert len(charges.made) == 2


def test_a_changed_payload_under_the_same_key_is_refused_with_validation(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    charges = Charges()
    handler = handler_of(
        charges,
        store=store,
        key="body.order_id",
        payload_validation="body.amount",
        clock=clock,
    )
    handler(api_event("o-1", amount=10), Context())

    assert handler(api_event("o-1", amount=10, request_id="r-9"), Context())
    with pytest.raises(runtime.IdempotencyValidationError, match="payload differs"):
        handler(api_event("o-1", amount=99), Context())
    assert len(charges.made) == 1


def test_without_validation_a_changed_payload_gets_the_stored_result(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    charges = Charges()
    handler = handler_of(charges, store=store, key="body.order_id", clock=clock)
    handler(api_event("o-1", amount=10), Context())

    assert handler(api_event("o-1", amount=99), Context())["body"] == '{"charged": 10}'


def test_per_record_functions_of_a_batch_are_idempotent(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    shipped: list[str] = []

    @runtime.idempotent(store=store, key="messageId", clock=clock)
    def ship(record: dict[str, Any]) -> str:
        shipped.append(record["body"])
        return f"shipped {record['body']}"

    batch = [
        {"messageId": "m-1", "body": "order 1"},
        {"messageId": "m-2", "body": "order 2"},
        {"messageId": "m-1", "body": "order 1"},  # delivered twice
    ]
    with runtime.lambda_invocation(Context(5_000)):
        results = [ship(record) for record in batch]

    assert results == ["shipped order 1", "shipped order 2", "shipped order 1"]
    assert shipped == ["order 1", "order 2"]


def test_a_record_in_progress_lasts_the_current_invocation_s_remaining_time(
    clock: Clock,
) -> None:
    store = runtime.MemoryIdempotencyStore()
    seen: list[runtime.IdempotencyRecord] = []
    claim = store.claim

    def spy(record: runtime.IdempotencyRecord, now: float) -> Any:
        seen.append(record)
        return claim(record, now)

    store.claim = spy  # type: ignore[method-assign]

    @runtime.idempotent(store=store, key="messageId", clock=clock)
    def ship(record: dict[str, Any]) -> None:
        pass

    with runtime.lambda_invocation(Context(4_000)):
        ship({"messageId": "m-1"})
    ship({"messageId": "m-2"})  # outside an invocation: expires_after

    assert seen[0].in_progress_until == pytest.approx(clock.now + 4)
    assert seen[1].in_progress_until == pytest.approx(clock.now + 3600)


def test_record_objects_are_read_by_attribute(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    @dataclass
    class Record:
        message_id: str
        body: str

    calls: list[str] = []

    @runtime.idempotent(store=store, key="message_id", clock=clock)
    def ship(record: Record) -> None:
        calls.append(record.body)

    ship(Record("m-1", "a"))
    ship(Record("m-1", "a"))

    assert calls == ["a"]


def test_a_key_function_and_paths_into_lists(clock: Clock) -> None:
    store = runtime.MemoryIdempotencyStore()
    calls: list[Any] = []

    @runtime.idempotent(
        store=store, key=lambda event: event["detail"]["id"].lower(), clock=clock
    )
    def by_function(event: dict[str, Any]) -> None:
        calls.append(event)

    @runtime.idempotent(store=store, key="detail.items[-1].sku", clock=clock)
    def by_path(event: dict[str, Any]) -> None:
        calls.append(event)

    by_function({"detail": {"id": "ABC"}})
    by_function({"detail": {"id": "abc"}})
    by_path({"detail": {"items": [{"sku": "x"}, {"sku": "y"}]}})
    by_path({"detail": {"items": [{"sku": "y"}]}})

    assert len(calls) == 2


def test_the_whole_payload_is_the_key_without_key(clock: Clock) -> None:
    calls: list[Any] = []

    @runtime.idempotent(store=runtime.MemoryIdempotencyStore(), clock=clock)
    def handle(event: dict[str, Any]) -> None:
        calls.append(event)

    handle({"a": 1, "b": [1, 2]})
    handle({"b": [1, 2], "a": 1})  # the same JSON, keys in another order
    handle({"a": 2})

    assert len(calls) == 2


def with_spaces(handler: Any, event: dict[str, Any]) -> None:
    handler({**event, "body": "\n  " + event["body"]}, Context())


def base64_encoded(handler: Any, event: dict[str, Any]) -> None:
    body = base64.b64encode(event["body"].encode()).decode()
    handler({**event, "body": body, "isBase64Encoded": True}, Context())


def by_keyword_after_the_context(handler: Any, event: dict[str, Any]) -> None:
    handler(context=Context(), event=event)


@pytest.mark.parametrize(
    "repeat", [with_spaces, base64_encoded, by_keyword_after_the_context]
)
def test_a_repeat_is_recognised_however_its_event_comes(
    clock: Clock, repeat: Callable[[Any, dict[str, Any]], None]
) -> None:
    charges = Charges()
    handler = handler_of(
        charges,
        store=runtime.MemoryIdempotencyStore(),
        key="body.order_id",
        clock=clock,
    )

    handler(api_event("o-1"), Context())
    repeat(handler, api_event("o-1", request_id="r-2"))

    assert len(charges.made) == 1


def test_functions_sharing_a_store_do_not_share_keys(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    @runtime.idempotent(store=store, key="id", clock=clock)
    def reserve(event: dict[str, Any]) -> str:
        return "reserved"

    @runtime.idempotent(store=store, key="id", clock=clock)
    def charge(event: dict[str, Any]) -> str:
        return "charged"

    assert reserve({"id": "o-1"}) == "reserved"
    assert charge({"id": "o-1"}) == "charged"


@pytest.mark.parametrize(
    "event", [{}, {"body": "{}"}, {"body": "not json"}, {"body": '{"order_id": ""}'}]
)
def test_a_missing_key_is_refused(clock: Clock, event: dict[str, Any]) -> None:
    charges = Charges()
    handler = handler_of(
        charges,
        store=runtime.MemoryIdempotencyStore(),
        key="body.order_id",
        clock=clock,
    )

    with pytest.raises(runtime.IdempotencyKeyError, match="check key="):
        handler(event, Context())
    assert charges.made == []


def test_a_missing_key_may_run_without_idempotency(
    clock: Clock, stream: io.StringIO
) -> None:
    calls: list[Any] = []

    @runtime.idempotent(
        store=runtime.MemoryIdempotencyStore(),
        key="order_id",
        raise_on_missing_key=False,
        clock=clock,
    )
    def handle(event: dict[str, Any]) -> None:
        calls.append(event)

    handle({})
    handle({})

    assert len(calls) == 2
    assert (
        len(events(stream, "No idempotency key: the function runs without idempotency"))
        == 2
    )


def test_a_result_that_is_not_json_is_refused_and_leaves_no_record(
    clock: Clock,
) -> None:
    calls: list[Any] = []

    @runtime.idempotent(store=runtime.MemoryIdempotencyStore(), key="id", clock=clock)
    def handle(event: dict[str, Any]) -> object:
        calls.append(event)
        return object()

    for _ in range(2):
        with pytest.raises(TypeError, match="cannot be stored as JSON"):
            handle({"id": "1"})
    assert len(calls) == 2


def test_a_dataclass_result_comes_back_as_its_json(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    @runtime.idempotent(store=store, key="id", clock=clock)
    def handle(event: dict[str, Any]) -> Charge:
        return Charge(event["id"], 10)

    assert handle({"id": "o-1"}) == Charge("o-1", 10)
    repeat: Any = handle({"id": "o-1"})
    assert repeat == {"order_id": "o-1", "amount": 10}


class FailingCompletes(runtime.MemoryIdempotencyStore):
    def complete(self, record: runtime.IdempotencyRecord) -> None:
        raise ConnectionError("table unreachable")


def test_a_store_that_fails_to_save_the_result_logs_and_returns_it(
    clock: Clock, stream: io.StringIO
) -> None:
    @runtime.idempotent(store=FailingCompletes(), key="id", clock=clock)
    def handle(event: dict[str, Any]) -> str:
        return "done"

    assert handle({"id": "1"}) == "done"
    (warning,) = events(
        stream,
        "Idempotency result not stored: a repeat runs again once the in-progress record expires",
    )
    assert "table unreachable" in warning["error"]


def test_the_dynamodb_item_holds_the_result_and_its_expiry(
    aws: str, clock: Clock
) -> None:
    store = dynamodb_store()

    @runtime.idempotent(
        store=store, key="id", expires_after=600, payload_validation=True, clock=clock
    )
    def handle(event: dict[str, Any]) -> dict[str, int]:
        return {"total": 3}

    handle({"id": "o-1"})

    (item,) = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    function, _, digest = item["id"]["S"].rpartition("#")
    assert function == (
        "tests.runtime.test_idempotency."
        "test_the_dynamodb_item_holds_the_result_and_its_expiry.<locals>.handle"
    )
    assert len(digest) == 64
    assert item["status"] == {"S": "COMPLETED"}
    assert item["data"] == {"S": '{"total":3}'}
    assert int(item["expiration"]["N"]) == int(clock.now + 600)
    assert len(item["validation"]["S"]) == 64


def test_the_function_name_prefixes_the_key(
    aws: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-prod")
    store = dynamodb_store()

    @runtime.idempotent(store=store, key="id", clock=clock)
    def handle(event: dict[str, Any]) -> None:
        pass

    handle({"id": "o-1"})

    (item,) = boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
    assert item["id"]["S"].startswith("orders-prod.tests.runtime.test_idempotency.")


def test_the_dynamodb_store_s_client_waits_its_timeout_and_tries_three_times(
    aws: str,
) -> None:
    config = runtime.DynamoDBIdempotencyStore(TABLE, timeout=1.5).client.meta.config

    assert (config.connect_timeout, config.read_timeout) == (1.5, 1.5)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}


def test_a_claim_against_a_missing_table_raises(aws: str, clock: Clock) -> None:
    from botocore.exceptions import ClientError

    @runtime.idempotent(
        store=runtime.DynamoDBIdempotencyStore("no-such-table"), key="id", clock=clock
    )
    def handle(event: dict[str, Any]) -> None:
        raise AssertionError("must not run")

    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        handle({"id": "1"})


def test_bad_settings_are_refused_when_decorating() -> None:
    store = runtime.MemoryIdempotencyStore()
    with pytest.raises(ValueError, match="not a path"):
        runtime.idempotent(store=store, key="body..id")
    with pytest.raises(ValueError, match="not a path"):
        runtime.idempotent(store=store, key="items[x]")
    with pytest.raises(ValueError, match="not a path"):
        runtime.idempotent(store=store, key="_private")
    with pytest.raises(ValueError, match="expires_after"):
        runtime.idempotent(store=store, expires_after=0)
    with pytest.raises(TypeError, match="IdempotencyStore"):
        runtime.idempotent(store=object())  # type: ignore[arg-type]

    async def coroutine(event: Any) -> None:
        pass

    with pytest.raises(TypeError, match="async"):
        runtime.idempotent(store=store)(coroutine)


def test_a_key_from_a_base64_kinesis_record(clock: Clock) -> None:
    calls: list[Any] = []

    @runtime.idempotent(
        store=runtime.MemoryIdempotencyStore(),
        key=lambda record: json.loads(base64.b64decode(record["kinesis"]["data"]))[
            "id"
        ],
        clock=clock,
    )
    def process(record: dict[str, Any]) -> None:
        calls.append(record)

    data = base64.b64encode(json.dumps({"id": "e-1"}).encode()).decode()
    process({"kinesis": {"data": data, "sequenceNumber": "1"}})
    process({"kinesis": {"data": data, "sequenceNumber": "2"}})

    assert len(calls) == 1


# -- per-record functions under the Router's batch routes ----------------------


def orders_router(
    store: runtime.IdempotencyStore, clock: Clock, shipped: list[str], **options: Any
) -> runtime.Router:
    """A Router whose SQS route ships each message once per message id."""
    app = runtime.Router()

    @app.sqs("orders")
    @runtime.idempotent(store=store, key="message_id", clock=clock, **options)
    def ship(record: runtime.SqsRecord) -> str:
        shipped.append(record.body)
        return f"shipped {record.body}"

    return app


def test_a_message_delivered_twice_is_processed_once_by_the_router(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    shipped: list[str] = []
    app = orders_router(store, clock, shipped)
    event = runtime.testing.sqs_event("order 1", "order 2", queue="orders")

    first = app.resolve(event, runtime.LambdaContext())
    again = app.resolve(event, runtime.LambdaContext())  # the whole batch again

    assert first == again == {"batchItemFailures": []}
    assert shipped == ["order 1", "order 2"]


def test_a_message_whose_duplicate_runs_is_reported_as_failed(
    store: runtime.IdempotencyStore, clock: Clock
) -> None:
    entered, release = threading.Event(), threading.Event()
    shipped: list[str] = []
    app = runtime.Router()

    @app.sqs("orders")
    @runtime.idempotent(store=store, key="message_id", clock=clock)
    def ship(record: runtime.SqsRecord) -> None:
        if record.body == "order 1":  # the first delivery runs until released
            entered.set()
            release.wait(10)
        shipped.append(record.body)

    event = runtime.testing.sqs_event("order 1", queue="orders")
    (running,) = event["Records"]
    later = runtime.testing.sqs_event("order 2", queue="orders")
    both = {"Records": [running, *later["Records"]]}
    first = threading.Thread(target=app.resolve, args=(event, runtime.LambdaContext()))
    first.start()
    assert entered.wait(10)
    try:
        duplicate = app.resolve(both, runtime.LambdaContext())
    finally:
        release.set()
        first.join(10)

    assert duplicate == {
        "batchItemFailures": [{"itemIdentifier": running["messageId"]}]
    }
    assert shipped == ["order 2", "order 1"]


def sqs_records(*bodies: Any) -> list[runtime.SqsRecord]:
    """The `SqsRecord` views of a batch of ``bodies``."""
    batch = runtime.parse_event(runtime.testing.sqs_event(*bodies))
    assert isinstance(batch, runtime.SqsEvent)
    return batch.records


def test_without_key_a_record_s_id_is_the_key(clock: Clock) -> None:
    calls: list[str] = []

    @runtime.idempotent(store=runtime.MemoryIdempotencyStore(), clock=clock)
    def ship(record: runtime.SqsRecord) -> None:
        calls.append(record.body)

    first, same_body = sqs_records("order 1", "order 1")
    redelivered = copy.deepcopy(first.raw)  # as SQS delivers a message again
    redelivered["receiptHandle"] = "AQEBzWwaftRI0KuVm4tP+/7q1rGgNqicHq..."
    redelivered["attributes"]["ApproximateReceiveCount"] = "2"
    ship(first)
    ship(runtime.SqsRecord(redelivered))
    ship(same_body)

    assert calls == ["order 1", "order 1"]  # the first message once, the other once


def test_a_path_into_a_record_s_json_body(clock: Clock) -> None:
    calls: list[Any] = []

    @runtime.idempotent(
        store=runtime.MemoryIdempotencyStore(), key="json.order_id", clock=clock
    )
    def ship(record: runtime.SqsRecord) -> None:
        calls.append(record.json)

    for record in sqs_records({"order_id": "o-1"}, {"order_id": "o-1"}):
        ship(record)

    assert calls == [{"order_id": "o-1"}]
    (not_json,) = sqs_records("plain text")
    with pytest.raises(runtime.IdempotencyKeyError):
        ship(not_json)
