"""fleece_runtime.retry: backoff with full jitter, deadlines, and a log line per retry."""

import asyncio
import io
import random
import time
from collections.abc import Iterator

import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.outbound_servers import events
from tests.runtime.test_plumbing import Context

RETRIED = "Retrying call"


class Flaky:
    """Raises ``error`` for its first ``failures`` calls, then returns the call count."""

    def __init__(self, failures: int, error: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0

    def __call__(self, *args: object) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        return self.calls


@pytest.fixture
def seeded() -> Iterator[None]:
    """The jitter's random numbers, fixed for the test (0.844, 0.758, 0.421, ...)."""
    state = random.getstate()
    random.seed(0)
    yield
    random.setstate(state)


def test_a_decorated_function_is_retried_until_it_succeeds() -> None:
    flaky = Flaky(2)

    @runtime.retry(on=ConnectionError, attempts=3, backoff=0.01)
    def fetch(order_id: int) -> int:
        return flaky(order_id)

    assert fetch(7) == 3
    assert fetch.__name__ == "fetch"


def test_the_last_error_is_raised_when_the_attempts_are_spent() -> None:
    flaky = Flaky(5)

    with pytest.raises(ConnectionError, match="failure 3"):
        runtime.retry(on=ConnectionError, attempts=3, backoff=0.01).call(flaky)

    assert flaky.calls == 3


def test_other_errors_are_raised_at_once() -> None:
    flaky = Flaky(5, error=KeyError)

    with pytest.raises(KeyError):
        runtime.retry(on=(ConnectionError, TimeoutError), backoff=0.01).call(flaky)

    assert flaky.calls == 1


def test_each_retry_is_logged_with_a_jittered_exponential_wait(
    stream: io.StringIO,
) -> None:
    flaky = Flaky(4)

    runtime.retry(on=ConnectionError, attempts=5, backoff=0.02, max_delay=0.05).call(
        flaky
    )

    retries = events(stream, RETRIED)
    assert [line["attempt"] for line in retries] == [1, 2, 3, 4]
    caps = [0.02, 0.04, 0.05, 0.05]  # backoff * 2**(n-1), at most max_delay
    assert all(
        0 <= line["wait"] <= cap for line, cap in zip(retries, caps, strict=True)
    )
    assert retries[0]["reason"] == "ConnectionError: failure 1"
    assert retries[0]["function"].endswith("Flaky")
    assert retries[0]["level"] == "WARNING"


@pytest.mark.usefixtures("seeded")
def test_a_wait_that_would_end_past_the_deadline_ends_the_retries() -> None:
    flaky = Flaky(5)
    policy = runtime.retry(on=ConnectionError, attempts=5, backoff=10, deadline=2)

    started = time.monotonic()
    with pytest.raises(ConnectionError, match="failure 1"):
        policy.call(flaky)  # the first wait (0.844 * 5 s) would end after 2 s

    assert flaky.calls == 1
    assert time.monotonic() - started < 3  # not the 4.2 s wait


@pytest.mark.usefixtures("seeded")
def test_the_invocation_s_deadline_bounds_the_retries() -> None:
    flaky = Flaky(5)
    policy = runtime.retry(on=ConnectionError, attempts=5, backoff=1, max_delay=1)

    with (
        runtime.lambda_invocation(Context(remaining_ms=1500)),  # 1.0 s
        pytest.raises(ConnectionError, match="failure 2"),
    ):
        # Waits 0.844 s, then 0.758 * 2 s would end past the deadline.
        policy.call(flaky)

    assert flaky.calls == 2


def test_a_block_is_retried_in_a_loop_of_attempts() -> None:
    flaky = Flaky(2)
    numbers = []

    for attempt in runtime.retry(on=ConnectionError, attempts=3, backoff=0.01):
        with attempt:
            numbers.append(attempt.number)
            flaky()

    assert numbers == [1, 2, 3]
    assert flaky.calls == 3


def test_a_block_raises_its_last_error() -> None:
    flaky = Flaky(5)

    with pytest.raises(ConnectionError, match="failure 2"):
        for attempt in runtime.retry(on=ConnectionError, attempts=2, backoff=0.01):
            with attempt:
                flaky()


def test_an_async_function_is_retried() -> None:
    flaky = Flaky(2)

    @runtime.retry(on=ConnectionError, backoff=0.01)
    async def fetch() -> int:
        await asyncio.sleep(0)
        return flaky()

    assert asyncio.run(fetch()) == 3


def test_an_async_block_is_retried() -> None:
    flaky = Flaky(1)

    async def main() -> int:
        async for attempt in runtime.retry(on=ConnectionError, backoff=0.01):
            with attempt:
                await asyncio.sleep(0)
                flaky()
        return flaky.calls

    assert asyncio.run(main()) == 2


@pytest.mark.parametrize(
    "options",
    [
        {"on": "ConnectionError"},
        {"on": (ConnectionError, int)},
        {"on": ()},
        {"attempts": 0},
        {"attempts": 2.5},
        {"backoff": -1},
        {"max_delay": -0.1},
        {"deadline": 0},
    ],
)
def test_bad_settings_are_refused(options: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        runtime.retry(**options)  # type: ignore[arg-type]
