"""fleece_runtime.profiling: a sampled cProfile of a handler, logged as one event."""

import io
import json
import random
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime


def events(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def price(quantity: int) -> int:
    return sum(range(quantity))


def handler(event: dict[str, Any], context: object) -> int:
    return price(event["quantity"])


def test_a_sampled_invocation_logs_its_profile_as_one_event(
    stream: io.StringIO,
) -> None:
    profiled = runtime.profiling.profile_handler(
        sample=1, stats_filter=["test_profiling"]
    )(handler)

    assert profiled({"quantity": 1000}, None) == 499500

    [event] = events(stream)
    assert (event["event"], event["logger"]) == ("Profiling completed", "profiler")
    assert event["total_calls"] >= event["primitive_calls"] >= 2
    assert event["total_time"] >= 0
    functions = [row["function"] for row in event["profiling_data"]]
    assert functions == ["handler", "price"]  # by cumulative time, filtered
    row = event["profiling_data"][1]
    assert row["filename"] == __file__
    assert row["ncalls"] == 1
    assert set(row) == {
        "function",
        "filename",
        "lineno",
        "ncalls",
        "tottime",
        "tpercall",
        "cumtime",
        "cpercall",
    }


def test_the_sample_rate_is_honoured(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.3)

    rarely = runtime.profile_handler(sample=0.25)(handler)
    often = runtime.profile_handler(sample=0.5)(handler)

    assert rarely({"quantity": 3}, None) == often({"quantity": 3}, None) == 3
    assert [event["event"] for event in events(stream)] == ["Profiling completed"]


def test_never_sampled_runs_the_handler_as_it_is(stream: io.StringIO) -> None:
    never = runtime.profile_handler(sample=0)(handler)

    assert [never({"quantity": 3}, None) for _ in range(20)] == [3] * 20
    assert events(stream) == []


def test_the_limit_and_the_logger_are_the_callers(stream: io.StringIO) -> None:
    logger = runtime.get_logger("orders.profile")
    profiled = runtime.profile_handler(
        sample=1, stats_filter=[], stats_limit=1, logger=logger
    )(handler)

    profiled({"quantity": 3}, None)

    [event] = events(stream)
    assert event["logger"] == "orders.profile"
    assert len(event["profiling_data"]) == 1


def test_a_failing_invocation_is_profiled_and_its_error_raised(
    stream: io.StringIO,
) -> None:
    profiled = runtime.profile_handler(sample=1)(handler)

    with pytest.raises(KeyError):
        profiled({}, None)

    assert [event["event"] for event in events(stream)] == ["Profiling completed"]


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"sample": 1.5}, ValueError),
        ({"sample": "half"}, TypeError),
        ({"stats_limit": 0}, ValueError),
    ],
)
def test_bad_arguments_are_refused_when_decorating(
    arguments: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        runtime.profile_handler(**arguments)


def test_async_handlers_are_refused() -> None:
    async def handler(event: object, context: object) -> None:
        pass

    with pytest.raises(TypeError, match="not async ones"):
        runtime.profile_handler()(handler)
