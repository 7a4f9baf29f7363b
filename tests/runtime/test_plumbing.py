"""fleece_runtime's shared plumbing: the JSON encoder, the current invocation, deadlines."""

import asyncio
import enum
import io
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime


class Color(enum.Enum):
    RED = "red"


@dataclass
class Line:
    sku: str
    quantity: int
    added: date = field(default=date(2025, 3, 10))


@dataclass
class Order:
    lines: list[Line]


class Model:
    """Like a pydantic 2 model: model_dump(mode=...)."""

    def model_dump(self, mode: str = "python") -> dict[str, Any]:
        return {"mode": mode}


class LegacyModel:
    """Like a pydantic 1 model: dict()."""

    def dict(self) -> dict[str, Any]:
        return {"legacy": True}


class JsonText:
    def to_json(self) -> str:
        return '{"from": "to_json"}'


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Context:
    """A Lambda context with the remaining time fixed by the test."""

    remaining_ms: int = 30_000
    aws_request_id: str = "lambda-1"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def dumps(value: object) -> Any:
    return json.loads(runtime.json_dumps(value))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2025, 3, 10, 12, 0, tzinfo=UTC), "2025-03-10T12:00:00+00:00"),
        (date(2025, 3, 10), "2025-03-10"),
        (time(12, 30), "12:30:00"),
        (Color.RED, "red"),
        (Decimal("7"), 7),
        (Decimal("19.99"), 19.99),
        (Decimal("NaN"), "NaN"),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        ({1, "a"}, ["a", 1]),  # unsortable: by repr
        (b"\x00\xffbin", "AP9iaW4="),
        (bytearray(b"ab"), "YWI="),
        (
            uuid.UUID("12345678-1234-5678-1234-567812345678"),
            "12345678-1234-5678-1234-567812345678",
        ),
        (ValueError("bad order"), {"type": "ValueError", "message": "bad order"}),
        (Model(), {"mode": "json"}),
        (LegacyModel(), {"legacy": True}),
        (JsonText(), {"from": "to_json"}),
    ],
    ids=lambda value: type(value).__name__,
)
def test_the_encoder_writes_the_values_of_a_lambda(
    value: object, expected: object
) -> None:
    assert dumps({"v": value}) == {"v": expected}


def test_dataclasses_are_objects_of_their_fields_all_the_way_down() -> None:
    order = Order([Line("a-1", 2), Line("b-2", 1, date(2025, 1, 1))])

    assert dumps(order) == {
        "lines": [
            {"sku": "a-1", "quantity": 2, "added": "2025-03-10"},
            {"sku": "b-2", "quantity": 1, "added": "2025-01-01"},
        ]
    }


def test_json_dumps_is_compact_and_keeps_non_ascii_text() -> None:
    assert (
        runtime.json_dumps({"name": "Åsa", "n": [1, 2]}) == '{"name":"Åsa","n":[1,2]}'
    )


def test_json_dumps_refuses_what_it_does_not_know() -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        runtime.json_dumps({"v": object()})


def test_json_dumps_refuses_nan_which_is_not_json() -> None:
    with pytest.raises(ValueError):
        runtime.json_dumps(float("nan"))


def test_the_encoder_takes_a_fallback_and_json_options() -> None:
    encoder = runtime.JsonEncoder(fallback=lambda value: "?", sort_keys=True)

    assert (
        encoder.encode({"b": object(), "a": Decimal("1.5")}) == '{"a": 1.5, "b": "?"}'
    )


def test_no_lambda_context_outside_an_invocation() -> None:
    assert runtime.current_lambda_context() is None


def test_the_decorated_handler_makes_its_context_current_for_the_call() -> None:
    seen: list[object] = []

    def save_order() -> None:  # deep in the call, nothing passed down
        seen.append(runtime.current_lambda_context())

    @runtime.inject_request_ids_into_environment
    def handler(event: dict[str, Any], context: Context) -> None:
        save_order()

    context = Context()
    handler({}, context)

    assert seen == [context]
    assert runtime.current_lambda_context() is None


def test_the_context_is_cleared_when_the_handler_raises() -> None:
    @runtime.inject_request_ids_into_environment
    def handler(event: dict[str, Any], context: Context) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        handler({}, Context())

    assert runtime.current_lambda_context() is None


def test_lambda_invocation_sets_the_context_for_a_block() -> None:
    context = Context()

    with runtime.lambda_invocation(context) as entered:
        assert entered is context
        assert runtime.current_lambda_context() is context

    assert runtime.current_lambda_context() is None


def test_lambda_invocation_scopes_the_context_not_the_bound_fields(
    stream: io.StringIO,
) -> None:
    with runtime.lambda_invocation(Context()):
        runtime.bind(order_id=7)
    try:
        runtime.get_logger("after").info("after")
    finally:
        runtime.unbind("order_id")

    assert runtime.current_lambda_context() is None
    assert json.loads(stream.getvalue())["order_id"] == 7


def test_each_thread_has_its_own_invocation() -> None:
    barrier = threading.Barrier(2)
    seen: dict[str, object] = {}

    def invocation(name: str) -> None:
        with runtime.lambda_invocation(Context(aws_request_id=name)):
            barrier.wait(5)  # both invocations are open at once
            seen[name] = runtime.current_lambda_context().aws_request_id

    threads = [threading.Thread(target=invocation, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert seen == {"a": "a", "b": "b"}


def test_pool_threads_see_the_invocation_through_in_current_context() -> None:
    context = Context()

    with runtime.lambda_invocation(context), ThreadPoolExecutor(1) as pool:
        plain = pool.submit(runtime.current_lambda_context).result()
        carried = pool.submit(
            runtime.in_current_context(runtime.current_lambda_context)
        ).result()

    assert (plain, carried) == (None, context)


def test_async_handlers_have_their_context_while_they_run() -> None:
    @runtime.inject_request_ids_into_environment
    async def handler(event: dict[str, Any], context: Context) -> object:
        await asyncio.sleep(0)
        return runtime.current_lambda_context()

    context = Context()

    assert asyncio.run(handler({}, context)) is context
    assert runtime.current_lambda_context() is None


def test_a_deadline_counts_down_on_its_clock() -> None:
    clock = Clock()
    deadline = runtime.Deadline(10, clock=clock)

    clock.now += 4
    assert deadline.remaining() == 6
    assert not deadline.expired
    clock.now += 7
    assert deadline.remaining() == 0.0
    assert deadline.expired


def test_a_deadline_bounds_the_timeout_of_the_next_attempt() -> None:
    clock = Clock()
    deadline = runtime.Deadline(5, clock=clock)

    assert deadline.timeout(2) == 2
    assert deadline.timeout() == 5
    clock.now += 4
    assert deadline.timeout(2) == 1


def test_a_deadline_from_a_context_keeps_a_margin() -> None:
    clock = Clock()

    deadline = runtime.Deadline.from_context(Context(remaining_ms=3000), clock=clock)
    assert deadline.remaining() == 2.5
    tight = runtime.Deadline.from_context(
        Context(remaining_ms=3000), margin=2, clock=clock
    )
    assert tight.remaining() == 1


def test_current_deadline_comes_from_the_invocation() -> None:
    clock = Clock()

    @runtime.inject_request_ids_into_environment
    def handler(event: dict[str, Any], context: Context) -> float:
        deadline = runtime.current_deadline(clock=clock)
        assert deadline is not None
        return deadline.remaining()

    assert handler({}, Context(remaining_ms=8000)) == 7.5


def test_current_deadline_takes_the_sooner_of_context_and_total() -> None:
    clock = Clock()

    with runtime.lambda_invocation(Context(remaining_ms=8000)):
        short = runtime.current_deadline(3, clock=clock)
        long = runtime.current_deadline(60, clock=clock)

    assert short is not None and short.remaining() == 3
    assert long is not None and long.remaining() == 7.5


def test_current_deadline_without_an_invocation_is_the_total_or_none() -> None:
    clock = Clock()

    total = runtime.current_deadline(20, clock=clock)

    assert total is not None and total.remaining() == 20
    assert runtime.current_deadline() is None


def test_a_context_without_a_remaining_time_gives_no_deadline() -> None:
    with runtime.lambda_invocation({"aws_request_id": "test"}):
        assert runtime.current_deadline() is None


def test_bad_deadlines_are_refused() -> None:
    with pytest.raises(TypeError, match="seconds must be a number"):
        runtime.Deadline("10")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="margin must be >= 0"):
        runtime.Deadline.from_context(Context(), margin=-1)
