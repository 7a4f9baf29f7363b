"""fleece_runtime.requests: retries, timeouts and pooling, against a real HTTP server."""

import time
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests
from urllib3.util.retry import Retry

from runtime_stub import fleece_runtime as runtime
from tests.runtime.runtime_servers import HttpServer, Responder
from tests.servers import pause


def unavailable_times(n: int) -> Responder:
    """A responder: 503 with ``Retry-After: 0`` for its first ``n`` requests, then 200."""
    calls = 0

    def respond(
        attempt: int, request: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, str], bytes]:
        nonlocal calls
        calls += 1
        if calls <= n:
            return 503, {"Retry-After": "0"}, b"busy"
        return 200, {}, b"done"

    return respond


def test_retries_503_with_retry_after_until_it_succeeds(
    http_server: HttpServer,
) -> None:
    http_server.responder = unavailable_times(2)

    response = runtime.requests.get(http_server.url, retries=3)

    assert (response.status_code, response.text) == (200, "done")
    assert http_server.attempts == 3


def test_without_any_setting_nothing_is_retried(http_server: HttpServer) -> None:
    http_server.responder = unavailable_times(2)

    response = runtime.requests.get(http_server.url)

    assert response.status_code == 503
    assert http_server.attempts == 1


def test_exhausted_retries_return_the_last_answer(http_server: HttpServer) -> None:
    http_server.responder = unavailable_times(10)

    assert runtime.requests.get(http_server.url, retries=2).status_code == 503
    assert http_server.attempts == 3


def test_exhausted_retries_on_a_forced_status_raise(http_server: HttpServer) -> None:
    http_server.responder = unavailable_times(10)
    retries = {"total": 2, "status_forcelist": [503]}

    with pytest.raises(requests.exceptions.RetryError):
        runtime.requests.get(http_server.url, retries=retries)

    assert http_server.attempts == 3


def test_default_retries_apply_to_calls_and_sessions(http_server: HttpServer) -> None:
    runtime.requests.set_default_retries(
        total=4, status_forcelist=[503], backoff_factor=0
    )
    http_server.responder = unavailable_times(2)

    assert runtime.requests.put(http_server.url, data=b"x").status_code == 200
    assert http_server.attempts == 3

    http_server.responder = unavailable_times(4)
    with runtime.requests.Session() as session:
        assert session.get(http_server.url).status_code == 200
    assert http_server.attempts == 3 + 5  # 4 failures, then success


def test_explicit_retries_beat_the_default_total(http_server: HttpServer) -> None:
    runtime.requests.set_default_retries(total=5, status_forcelist=[503])
    http_server.responder = unavailable_times(3)

    with pytest.raises(requests.exceptions.RetryError):  # 503 stays forced
        runtime.requests.get(http_server.url, retries=1)
    assert http_server.attempts == 2


@pytest.mark.parametrize(
    "retries",
    [
        {"total": 2, "status_forcelist": [503], "backoff_factor": 0},
        Retry(total=2, status_forcelist=[503], backoff_factor=0),
    ],
    ids=["dict", "Retry"],
)
def test_retries_accept_a_dict_or_a_retry(
    http_server: HttpServer, retries: object
) -> None:
    http_server.responder = unavailable_times(2)

    with runtime.requests.Session(retries=retries) as session:
        assert session.get(http_server.url).status_code == 200

    assert http_server.attempts == 3


def test_post_is_not_retried_on_a_status_unless_asked(http_server: HttpServer) -> None:
    http_server.responder = unavailable_times(1)

    assert (
        runtime.requests.post(http_server.url, json={"a": 1}, retries=3).status_code
        == 503
    )
    assert (
        runtime.requests.post(
            http_server.url,
            json={"a": 1},
            retries={"total": 3, "allowed_methods": None},
        ).status_code
        == 200
    )


def test_module_level_calls_share_one_connection(http_server: HttpServer) -> None:
    for _ in range(3):
        runtime.requests.get(http_server.url)
    runtime.requests.delete(http_server.url, retries=2)

    assert http_server.attempts == 4
    assert http_server.exchange.connections == 1


def test_module_level_calls_keep_no_cookies(http_server: HttpServer) -> None:
    http_server.responder = lambda n, request: (
        200,
        {"Set-Cookie": "session=secret"},
        b"",
    )

    runtime.requests.get(http_server.url)
    runtime.requests.get(http_server.url)

    assert "Cookie" not in http_server.exchange.requests[1]["headers"]


def test_default_timeout_bounds_a_slow_answer(http_server: HttpServer) -> None:
    def slow(
        attempt: int, request: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, str], bytes]:
        pause(request, 30)
        return 200, {}, b"late"

    http_server.responder = slow
    runtime.requests.set_default_timeout(0.3)

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        runtime.requests.get(http_server.url)
    with (
        pytest.raises(requests.exceptions.ReadTimeout),
        runtime.requests.Session() as session,
    ):
        session.get(http_server.url)

    assert time.monotonic() - started < 0.6 + 2.0  # not the 30 s answers


def test_session_timeout_beats_the_default(http_server: HttpServer) -> None:
    def slow(
        attempt: int, request: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, str], bytes]:
        pause(request, 0.5)
        return 200, {}, b"late"

    http_server.responder = slow
    runtime.requests.set_default_timeout(0.1)

    with runtime.requests.Session(timeout=3) as session:
        assert session.get(http_server.url).text == "late"
    assert runtime.requests.get(http_server.url, timeout=(1, 3)).text == "late"


@pytest.mark.parametrize(
    ("retries", "error"),
    [
        (-1, ValueError),
        (True, TypeError),
        ("3", TypeError),
        ({"bogus": 1}, TypeError),
    ],
)
def test_bad_retries_raise_at_once(
    http_server: HttpServer,
    retries: Any,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        runtime.requests.get(http_server.url, retries=retries)
    with pytest.raises(error):
        runtime.requests.Session(retries=retries)

    assert http_server.attempts == 0


@pytest.mark.parametrize("timeout", [0, -2, "5", (1, 2, 3), (1, "x")])
def test_bad_timeouts_raise_at_once(timeout: Any) -> None:
    with pytest.raises(ValueError):
        runtime.requests.set_default_timeout(timeout)
    with pytest.raises(ValueError):
        runtime.requests.Session(timeout=timeout)


def test_bad_default_retries_raise_at_once() -> None:
    with pytest.raises(TypeError):
        runtime.requests.set_default_retries(totl=3)
