"""fleece_runtime.boto3: clients and resources with timeouts, against real sockets."""

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ReadTimeoutError

from runtime_stub import fleece_runtime as runtime


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def timeouts(client: object) -> tuple[float, float]:
    config = client.meta.config  # type: ignore[attr-defined]
    return config.connect_timeout, config.read_timeout


def test_call_fails_after_the_read_timeout(aws: str, silent_server: str) -> None:
    s3 = runtime.boto3.client(
        "s3",
        endpoint_url=silent_server,
        read_timeout=1,
        config=Config(retries={"total_max_attempts": 1}),
    )

    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        s3.list_buckets()

    assert 0.9 <= time.monotonic() - started < 3


def test_default_timeout_applies_to_a_call_through_the_server(
    aws: str, silent_server: str
) -> None:
    runtime.boto3.set_default_timeout(1)
    sqs = runtime.boto3.client(
        "sqs",
        endpoint_url=silent_server,
        config=Config(retries={"total_max_attempts": 1}),
    )

    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        sqs.list_queues()

    assert 0.9 <= time.monotonic() - started < 3


def test_client_works_against_aws(aws: str) -> None:
    s3 = runtime.boto3.client("s3", timeout=5)
    s3.create_bucket(Bucket="orders")

    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["orders"]


def test_without_any_setting_botocore_keeps_its_60_seconds(aws: str) -> None:
    assert timeouts(runtime.boto3.client("s3")) == (60, 60)


def test_timeout_sets_both_and_the_specific_ones_win(aws: str) -> None:
    client = runtime.boto3.client("s3", timeout=7, connect_timeout=2)

    assert timeouts(client) == (2, 7)


def test_explicit_timeout_beats_the_default(aws: str) -> None:
    runtime.boto3.set_default_timeout(15)

    assert timeouts(runtime.boto3.client("s3")) == (15, 15)
    assert timeouts(runtime.boto3.client("s3", timeout=3)) == (3, 3)
    assert timeouts(runtime.boto3.client("s3", read_timeout=4)) == (15, 4)


def test_user_config_is_merged_between_call_and_default(aws: str) -> None:
    runtime.boto3.set_default_timeout(15)
    config = Config(
        read_timeout=9, retries={"max_attempts": 2}, user_agent_extra="shop"
    )

    client = runtime.boto3.client("s3", config=config, connect_timeout=1)

    assert timeouts(client) == (1, 9)
    assert client.meta.config.user_agent_extra == "shop"
    assert client.meta.config.retries["total_max_attempts"] == 3  # 1 + 2 retries


def test_set_default_timeout_without_arguments_restores_botocore(aws: str) -> None:
    runtime.boto3.set_default_timeout(5)
    runtime.boto3.set_default_timeout()

    assert timeouts(runtime.boto3.client("s3")) == (60, 60)


def test_resource_gets_the_same_timeouts(aws: str) -> None:
    runtime.boto3.set_default_timeout(connect_timeout=4)
    table = runtime.boto3.resource("dynamodb", read_timeout=6)

    assert timeouts(table.meta.client) == (4, 6)


@pytest.mark.parametrize("bad", [0, -1, "5", True])
def test_bad_timeouts_raise_at_once(bad: Any) -> None:
    with pytest.raises(ValueError, match="positive number of seconds"):
        runtime.boto3.client("s3", timeout=bad)
    with pytest.raises(ValueError, match="positive number of seconds"):
        runtime.boto3.set_default_timeout(read_timeout=bad)


def test_config_must_be_a_botocore_config() -> None:
    with pytest.raises(TypeError, match=r"botocore\.config\.Config"):
        runtime.boto3.client("s3", config={"read_timeout": 1})


def test_clients_can_be_created_from_many_threads(aws: str) -> None:
    errors: list[BaseException] = []

    def create() -> None:
        try:
            for _ in range(3):
                runtime.boto3.client("dynamodb", timeout=2)
        except BaseException as error:  # pragma: no cover - the failure we look for
            errors.append(error)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
