"""fleece_runtime.CircuitBreaker: its states with a clock the tests move, its stores."""

import asyncio
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.outbound_servers import events, lines

TABLE = "circuits"


class Clock:
    """Seconds since the epoch, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Dependency:
    """A called dependency: fails while ``failing``, counts its calls."""

    def __init__(self) -> None:
        self.failing = False
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failing:
            raise ConnectionError("down")
        return "ok"


def breaker(
    clock: Clock, store: runtime.CircuitStore | None = None, **options: Any
) -> runtime.CircuitBreaker:
    settings: dict[str, Any] = {
        "failure_threshold": 3,
        "window_seconds": 60,
        "reset_timeout": 30,
        "expected": ConnectionError,
    }
    settings.update(options)
    return runtime.CircuitBreaker("payments", store=store, clock=clock, **settings)


def fail(circuit: runtime.CircuitBreaker, dependency: Dependency, times: int) -> None:
    dependency.failing = True
    for _ in range(times):
        with pytest.raises(ConnectionError):
            circuit.call(dependency)


def test_it_opens_after_threshold_failures_within_the_window() -> None:
    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock)

    fail(circuit, dependency, 2)
    assert circuit.state == "closed"
    fail(circuit, dependency, 1)

    assert circuit.state == "open"
    assert dependency.calls == 3


def test_an_open_circuit_refuses_calls_without_calling() -> None:
    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock)
    fail(circuit, dependency, 3)
    clock.now += 10

    with pytest.raises(runtime.CircuitOpenError) as raised:
        circuit.call(dependency)

    assert dependency.calls == 3
    assert (raised.value.circuit, raised.value.state) == ("payments", "open")
    assert raised.value.retry_after == pytest.approx(20)


def test_failures_older_than_the_window_do_not_count() -> None:
    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock)

    fail(circuit, dependency, 2)
    clock.now += 61
    fail(circuit, dependency, 2)

    assert circuit.state == "closed"
    fail(circuit, dependency, 1)
    assert circuit.state == "open"


def test_successes_do_not_hide_failures_within_the_window() -> None:
    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock)

    for _ in range(3):
        fail(circuit, dependency, 1)
        dependency.failing = False
        if circuit.state == "closed":
            assert circuit.call(dependency) == "ok"

    assert circuit.state == "open"


def test_after_the_reset_timeout_a_successful_trial_closes_it(
    stream: io.StringIO,
) -> None:
    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock)
    fail(circuit, dependency, 3)
    clock.now += 30
    dependency.failing = False

    assert circuit.call(dependency) == "ok"

    assert circuit.state == "closed"
    fail(circuit, dependency, 2)  # the old failures were forgotten
    assert circuit.state == "closed"
    changes = [
        line["event"]
        for line in lines(stream)
        if line["logger"] == "fleece_runtime.circuit"
    ]
    assert changes == [
        "Circuit opened",
        "Circuit half-open: trial call",
        "Circuit closed: the trial call succeeded",
    ]


def test_a_failed_trial_opens_it_again(stream: io.StringIO) -> None:
    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock)
    fail(circuit, dependency, 3)
    clock.now += 30

    fail(circuit, dependency, 1)

    assert circuit.state == "open"
    clock.now += 29
    with pytest.raises(runtime.CircuitOpenError):
        circuit.call(dependency)
    assert dependency.calls == 4
    [reopened] = events(stream, "Circuit re-opened: the trial call failed")
    assert reopened["level"] == "WARNING" and reopened["circuit"] == "payments"


def test_it_opens_at_the_threshold_not_two_failures_later() -> None:
    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock, failure_threshold=1)

    fail(circuit, dependency, 1)

    assert circuit.state == "open"


def test_errors_that_are_not_expected_pass_through_and_count_as_successes() -> None:
    circuit = breaker(Clock(), failure_threshold=1)

    def bad_input() -> None:
        raise ValueError("no such order")

    for _ in range(3):
        with pytest.raises(ValueError):
            circuit.call(bad_input)

    assert circuit.state == "closed"


def test_exactly_one_trial_runs_while_concurrent_callers_are_refused() -> None:
    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock)
    fail(circuit, dependency, 3)
    clock.now += 30
    trial_started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def trial() -> str:
        ran.append(threading.current_thread().name)
        trial_started.set()
        release.wait(10)
        return "ok"

    def caller(_: int) -> str:
        try:
            return circuit.call(trial)
        except runtime.CircuitOpenError as error:
            return error.state

    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(caller, 0)
        assert trial_started.wait(10)
        others = list(pool.map(caller, range(7)))
        release.set()

    assert first.result() == "ok"
    assert others == ["half_open"] * 7
    assert len(ran) == 1
    assert circuit.state == "closed"


def test_a_trial_lost_for_a_reset_timeout_is_taken_over() -> None:
    clock, dependency = Clock(), Dependency()
    store = runtime.MemoryCircuitStore()
    circuit = breaker(clock, store)
    fail(circuit, dependency, 3)
    clock.now += 30
    circuit.__enter__()  # a trial whose process stops before it reports

    clock.now += 10
    with pytest.raises(runtime.CircuitOpenError, match="trial call is in progress"):
        circuit.call(dependency)
    clock.now += 20
    dependency.failing = False

    assert circuit.call(dependency) == "ok"
    assert circuit.state == "closed"


def test_it_works_as_a_decorator_a_block_and_on_coroutines() -> None:
    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock, failure_threshold=2)
    dependency.failing = True

    @circuit
    def call() -> str:
        return dependency()

    @circuit
    async def call_async() -> str:
        await asyncio.sleep(0)
        return dependency()

    with pytest.raises(ConnectionError):
        call()
    with pytest.raises(ConnectionError):
        asyncio.run(call_async())
    with pytest.raises(runtime.CircuitOpenError), circuit:
        dependency()

    assert dependency.calls == 2
    assert call.__name__ == "call"


def test_blocks_nest_and_each_records_its_own_outcome() -> None:
    clock, dependency = Clock(), Dependency()
    outer = breaker(clock, failure_threshold=1)

    with pytest.raises(ConnectionError), outer:
        with outer:
            dependency()
        dependency.failing = True
        dependency()

    assert outer.state == "open"


class BrokenStore(runtime.CircuitStore):
    def load(self, name: str) -> runtime.CircuitState | None:
        raise ConnectionError("store unreachable")

    def save(
        self, name: str, state: runtime.CircuitState, expected_version: int
    ) -> bool:
        raise ConnectionError("store unreachable")


def test_a_failing_store_never_fails_the_call(stream: io.StringIO) -> None:
    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock, BrokenStore(), failure_threshold=1)

    assert circuit.call(dependency) == "ok"
    fail(circuit, dependency, 2)

    assert dependency.calls == 3
    [first, *_] = events(stream, "Circuit store failed: the call goes through")
    assert first["error"] == "ConnectionError: store unreachable"
    assert first["level"] == "WARNING"


def test_a_store_that_fails_to_save_a_failure_lets_calls_through(
    stream: io.StringIO,
) -> None:
    class ReadOnly(runtime.MemoryCircuitStore):
        def save(
            self, name: str, state: runtime.CircuitState, expected_version: int
        ) -> bool:
            raise ConnectionError("throttled")

    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock, ReadOnly(), failure_threshold=1)

    fail(circuit, dependency, 2)

    assert dependency.calls == 2
    assert len(events(stream, "Circuit store failed: the call goes through")) == 2


def test_the_memory_store_writes_only_over_the_version_it_read() -> None:
    store = runtime.MemoryCircuitStore()
    first = runtime.CircuitState("closed", (1.0,), version=1)

    assert store.save("c", first, 0)
    assert not store.save("c", runtime.CircuitState("open", version=1), 0)
    assert store.save("c", runtime.CircuitState("open", opened_at=2.0, version=2), 1)
    assert store.load("c") == runtime.CircuitState("open", opened_at=2.0, version=2)


@pytest.mark.parametrize(
    "options",
    [
        {"failure_threshold": 0},
        {"window_seconds": 0},
        {"reset_timeout": -1},
        {"expected": "ConnectionError"},
    ],
)
def test_bad_settings_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises((TypeError, ValueError)):
        breaker(Clock(), **options)


# DynamoDB -----------------------------------------------------------------


@pytest.fixture
def table(aws: str) -> str:
    """A circuits table in moto's DynamoDB, keyed by circuit name."""
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "circuit", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "circuit", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return TABLE


def dynamodb_breaker(clock: Clock, table: str) -> runtime.CircuitBreaker:
    """A breaker as another instance of the function has it: its own client."""
    return breaker(clock, runtime.DynamoDBCircuitStore(table))


def test_instances_share_a_circuit_through_dynamodb(table: str) -> None:
    clock, dependency = Clock(), Dependency()
    instance_a, instance_b = dynamodb_breaker(clock, table), dynamodb_breaker(
        clock, table
    )

    fail(instance_a, dependency, 2)
    fail(instance_b, dependency, 1)

    assert instance_a.state == instance_b.state == "open"
    with pytest.raises(runtime.CircuitOpenError):
        instance_a.call(dependency)
    clock.now += 30
    dependency.failing = False
    assert instance_b.call(dependency) == "ok"
    assert instance_a.state == "closed"


def test_the_dynamodb_store_s_client_waits_a_second_and_tries_twice(table: str) -> None:
    config = runtime.DynamoDBCircuitStore(table).client.meta.config

    assert (config.connect_timeout, config.read_timeout) == (1.0, 1.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}


def test_the_dynamodb_item_holds_the_state_and_its_expiry(table: str) -> None:
    clock, dependency = Clock(), Dependency()
    fail(dynamodb_breaker(clock, table), dependency, 3)

    item = boto3.client("dynamodb").get_item(
        TableName=table, Key={"circuit": {"S": "payments"}}
    )["Item"]

    assert item["state"] == {"S": "open"}
    assert item["version"] == {"N": "3"}
    assert float(item["opened_at"]["N"]) == clock.now
    assert int(item["expires_at"]["N"]) > clock.now


def test_dynamodb_writes_are_conditional_on_the_version(table: str) -> None:
    store = runtime.DynamoDBCircuitStore(table)
    closed = runtime.CircuitState("closed", (5.5,), version=1)

    assert store.save("c", closed, 0)
    assert not store.save("c", closed, 0)
    assert not store.save("c", runtime.CircuitState("open", version=3), 2)
    assert store.load("c") == closed
    assert store.load("missing") is None


def test_concurrent_failures_are_all_counted(table: str) -> None:
    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock, runtime.DynamoDBCircuitStore(table), failure_threshold=4)
    dependency.failing = True
    start = threading.Barrier(4)

    def failing_call(_: int) -> None:
        start.wait(10)
        with pytest.raises(ConnectionError):
            circuit.call(dependency)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(failing_call, range(4)))

    assert circuit.state == "open"


@pytest.mark.usefixtures("aws")
def test_an_unreachable_table_fails_open(stream: io.StringIO) -> None:
    clock, dependency = Clock(), Dependency()
    circuit = breaker(clock, runtime.DynamoDBCircuitStore("no-such-table"))

    assert circuit.call(dependency) == "ok"

    [line] = events(stream, "Circuit store failed: the call goes through")
    assert "ResourceNotFoundException" in line["error"]
