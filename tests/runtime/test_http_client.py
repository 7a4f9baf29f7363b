"""fleece_runtime.HttpClient against HTTP servers on 127.0.0.1 started by the tests."""

import gzip
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler

import pytest

from runtime_stub import fleece_runtime as runtime
from tests.runtime.outbound_servers import (
    ANSWER,
    HANG_UP,
    Certificate,
    ScriptedServer,
    certificate,
    closed_port,
    events,
    lines,
    scripted,
    tls_server,
)
from tests.runtime.runtime_servers import TRACE_ID, Daemon, HttpServer, Responder
from tests.runtime.test_plumbing import Context
from tests.servers import pause

__all__ = ["certificate", "scripted", "tls_server"]  # fixtures used here

RETRIED = "Retrying HTTP request"
Answer = tuple[int, dict[str, str], bytes]

# A timeout or deadline test's server answers after SLOW seconds (or when it
# stops, after the test), far beyond every bound below; an upper bound allows
# SLACK seconds past the timeout for a loaded machine.
SLOW = 60.0
SLACK = 1.5


def failing(
    status: int, times: int, headers: dict[str, str] | None = None
) -> Responder:
    """A responder: ``status`` for the first ``times`` requests, then 200 ``done``."""

    def respond(attempt: int, request: BaseHTTPRequestHandler) -> Answer:
        if attempt <= times:
            return status, dict(headers or {}), b"busy"
        return 200, {}, b"done"

    return respond


def slow(seconds: float) -> Responder:
    def respond(attempt: int, request: BaseHTTPRequestHandler) -> Answer:
        pause(request, seconds)
        return 200, {}, b"late"

    return respond


@pytest.fixture
def debug_lines(stream: io.StringIO) -> Iterator[io.StringIO]:
    """The log lines, with the client's DEBUG line of each request among them."""
    logger = runtime.get_logger("fleece_runtime.http")
    logger.setLevel("DEBUG")
    yield stream
    logger.setLevel("NOTSET")


@pytest.fixture
def client() -> Iterator[runtime.HttpClient]:
    """A client that retries without waiting long."""
    with runtime.HttpClient(backoff=0.01) as made:
        yield made


# Answers ------------------------------------------------------------------


def test_an_answer_has_status_headers_text_and_json(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    http_server.responder = lambda n, request: (
        201,
        {"Content-Type": "application/json; charset=utf-8", "X-Order": "7"},
        '{"name": "Åsa"}'.encode(),
    )

    response = client.get(f"{http_server.url}/orders")

    assert (response.status, response.status_code, response.reason) == (
        201,
        201,
        "Created",
    )
    assert response.headers["x-order"] == response.headers["X-ORDER"] == "7"
    assert "content-type" in response.headers
    assert response.text == '{"name": "Åsa"}'
    assert response.json() == {"name": "Åsa"}
    assert response.ok and response.attempts == 1


def test_a_header_sent_twice_reads_as_both_values(
    scripted: Callable[[list[list[bytes]]], ScriptedServer],
    client: runtime.HttpClient,
) -> None:
    server = scripted(
        [
            [
                b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n"
                b"Content-Length: 0\r\n\r\n"
            ]
        ]
    )

    headers = client.get(server.url).headers

    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert headers["SET-COOKIE"] == "a=1, b=2"
    assert len(headers) == 2 and "set-cookie" in headers


def test_json_of_a_body_that_is_not_json_names_the_request(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    http_server.responder = lambda n, request: (200, {}, b"<html>")

    with pytest.raises(ValueError, match=r"answer to GET http://.* is not JSON"):
        client.get(f"{http_server.url}/page").json()


def test_gzip_answers_are_decompressed(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    http_server.responder = lambda n, request: (
        200,
        {"Content-Encoding": "gzip"},
        gzip.compress(b'{"ok": true}'),
    )

    response = client.get(http_server.url)

    assert response.json() == {"ok": True}
    assert http_server.exchange.requests[0]["headers"]["Accept-Encoding"] == (
        "gzip, deflate"
    )


def test_raise_for_status_raises_an_error_carrying_status_and_body(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    http_server.responder = lambda n, request: (404, {}, b"no order 7")

    response = client.get(f"{http_server.url}/orders/7?api_key=hunter2")
    with pytest.raises(runtime.HttpStatusError) as raised:
        response.raise_for_status()

    error = raised.value
    assert (error.status, error.body, error.response) == (404, "no order 7", response)
    assert str(error) == (
        f"404 Not Found for GET {http_server.url}/orders/7?api_key=***"
    )


def test_raise_for_status_returns_the_answer_when_it_succeeded(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    response = client.get(http_server.url)

    assert response.raise_for_status() is response


# Requests -----------------------------------------------------------------


def test_urls_join_the_base_url_and_params_join_the_query(
    http_server: HttpServer,
) -> None:
    client = runtime.HttpClient(f"{http_server.url}/v1/")

    client.get("orders", params={"status": "open now", "tag": ["a", "b"], "x": None})
    client.get("/orders?page=2", params=[("size", 10)])
    client.get("")

    assert [r["path"] for r in http_server.exchange.requests] == [
        "/v1/orders?status=open%20now&tag=a&tag=b",
        "/v1/orders?page=2&size=10",
        "/v1",
    ]


def test_a_json_body_is_written_by_the_runtime_encoder(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    @dataclass
    class Order:
        placed: date
        total: Decimal

    client.post(http_server.url, json=Order(date(2025, 3, 10), Decimal("9.50")))

    [request] = http_server.exchange.requests
    assert request["body"] == b'{"placed":"2025-03-10","total":9.5}'
    assert request["headers"]["Content-Type"] == "application/json"


def test_a_mapping_as_data_is_form_encoded_and_text_is_utf8(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    client.post(http_server.url, data={"q": "a&b", "n": 2})
    client.put(http_server.url, data="Åsa")

    form, text = http_server.exchange.requests
    assert form["body"] == b"q=a%26b&n=2"
    assert form["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert text["body"] == "Åsa".encode()


def test_client_headers_are_sent_and_a_request_s_own_win(
    http_server: HttpServer,
) -> None:
    client = runtime.HttpClient(headers={"X-Team": "orders", "Accept": "text/csv"})

    client.get(http_server.url, headers={"Accept": "application/json"})

    sent = http_server.exchange.requests[0]["headers"]
    assert (sent["X-Team"], sent["Accept"]) == ("orders", "application/json")
    assert sent["User-Agent"].startswith("fleece_runtime python/3.")


def test_every_method_reaches_the_server(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    http_server.responder = lambda n, request: (
        200,
        {},
        b"" if request.command == "HEAD" else b"ok",
    )
    for call in (
        client.get,
        client.head,
        client.post,
        client.put,
        client.patch,
        client.delete,
    ):
        call(http_server.url)

    assert [r["method"] for r in http_server.exchange.requests] == [
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
    ]


# Connections --------------------------------------------------------------


def test_connections_are_reused(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    for _ in range(20):
        client.get(http_server.url)

    assert http_server.attempts == 20
    assert http_server.exchange.connections == 1


def test_an_answer_that_closes_the_connection_is_followed_by_a_new_one(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    http_server.responder = lambda n, request: (200, {"Connection": "close"}, b"ok")

    for _ in range(3):
        assert client.get(http_server.url).status == 200

    assert http_server.exchange.connections == 3


def test_a_kept_connection_the_server_closed_is_not_used(
    scripted: Callable[[list[list[bytes]]], ScriptedServer],
    client: runtime.HttpClient,
    stream: io.StringIO,
) -> None:
    server = scripted([[ANSWER], [ANSWER]])  # each connection closed after one answer

    first = client.get(server.url)
    time.sleep(0.1)  # the server's FIN arrives while the connection is idle
    second = client.post(server.url)

    assert (first.status, second.status) == (200, 200)
    assert server.connections == 2
    assert events(stream, RETRIED) == []


def test_a_get_on_a_connection_closed_as_it_was_sent_goes_again_on_a_new_one(
    scripted: Callable[[list[list[bytes]]], ScriptedServer],
    stream: io.StringIO,
) -> None:
    server = scripted([[ANSWER, HANG_UP], [ANSWER]])
    client = runtime.HttpClient(retries=0)

    client.get(server.url)
    response = client.get(server.url)

    assert (response.status, response.attempts) == (200, 1)
    assert (len(server.requests), server.connections) == (3, 2)
    assert events(stream, RETRIED) == []


def test_a_post_on_a_connection_closed_as_it_was_sent_is_not_sent_again(
    scripted: Callable[[list[list[bytes]]], ScriptedServer],
) -> None:
    server = scripted([[ANSWER, HANG_UP], [ANSWER]])
    client = runtime.HttpClient()

    client.get(server.url)
    with pytest.raises(runtime.HttpConnectionError, match="RemoteDisconnected"):
        client.post(server.url)

    assert len(server.requests) == 2


def test_threads_share_the_pool(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    def get(_: int) -> int:
        return client.get(http_server.url).status

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(get, range(80)))

    assert statuses == [200] * 80
    assert http_server.exchange.connections <= 8


def test_https_with_a_ca_bundle_reuses_its_connection(
    tls_server: HttpServer, certificate: Certificate
) -> None:
    client = runtime.HttpClient(verify=str(certificate.cert_file))

    for _ in range(5):
        assert client.get(tls_server.url).text == "ok"

    assert tls_server.exchange.connections == 1


def test_a_certificate_that_does_not_verify_is_not_retried(
    tls_server: HttpServer, stream: io.StringIO
) -> None:
    client = runtime.HttpClient(retries=3)

    with pytest.raises(runtime.HttpConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get(tls_server.url)

    assert events(stream, RETRIED) == []
    assert tls_server.attempts == 0


def test_verify_false_accepts_any_certificate(tls_server: HttpServer) -> None:
    assert runtime.HttpClient(verify=False).get(tls_server.url).status == 200


# Retries ------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried_until_an_answer_succeeds(
    http_server: HttpServer, client: runtime.HttpClient, status: int
) -> None:
    http_server.responder = failing(status, times=2)

    response = client.get(http_server.url)

    assert (response.status, response.text, response.attempts) == (200, "done", 3)
    assert http_server.attempts == 3


@pytest.mark.parametrize("status", [400, 404, 500, 501])
def test_other_statuses_are_answers(
    http_server: HttpServer, client: runtime.HttpClient, status: int
) -> None:
    http_server.responder = failing(status, times=1)

    assert client.get(http_server.url).status == status
    assert http_server.attempts == 1


def test_exhausted_retries_return_the_last_answer(http_server: HttpServer) -> None:
    http_server.responder = failing(503, times=10)

    response = runtime.HttpClient(retries=2, backoff=0.01).get(http_server.url)

    assert (response.status, response.attempts) == (503, 3)
    assert http_server.attempts == 3


def test_each_retry_is_logged_with_the_attempt_the_wait_and_the_reason(
    http_server: HttpServer, stream: io.StringIO
) -> None:
    http_server.responder = failing(503, times=2)

    runtime.HttpClient(backoff=0.05).get(f"{http_server.url}/orders?token=hunter2")

    retries = events(stream, RETRIED)
    assert [line["attempt"] for line in retries] == [1, 2]
    assert [line["reason"] for line in retries] == ["503 Service Unavailable"] * 2
    assert all(line["level"] == "WARNING" for line in retries)
    assert 0 <= retries[0]["wait"] <= 0.05 and 0 <= retries[1]["wait"] <= 0.1
    assert retries[0]["url"] == f"{http_server.url}/orders?token=***"
    assert retries[0]["method"] == "GET"


def test_a_post_is_not_retried_unless_it_is_declared_idempotent(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    http_server.responder = failing(503, times=2)

    assert client.post(http_server.url, json={"order": 7}).status == 503
    assert http_server.attempts == 1

    assert client.post(http_server.url, json={"order": 7}, idempotent=True).ok
    assert http_server.attempts == 3


def test_retries_per_request_override_the_client_s(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    http_server.responder = failing(503, times=5)

    assert client.get(http_server.url, retries=0).status == 503
    assert http_server.attempts == 1


def test_retry_after_in_seconds_is_the_wait(
    http_server: HttpServer, stream: io.StringIO
) -> None:
    http_server.responder = failing(429, times=1, headers={"Retry-After": "1"})

    started = time.monotonic()
    response = runtime.HttpClient(backoff=0).get(http_server.url)

    assert response.status == 200
    assert time.monotonic() - started >= 1.0
    assert events(stream, RETRIED)[0]["wait"] == 1.0


def test_retry_after_as_an_http_date_is_the_wait(
    http_server: HttpServer, stream: io.StringIO
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    http_server.responder = failing(503, times=1, headers={"Retry-After": when})

    assert runtime.HttpClient().get(http_server.url).status == 200

    # The date has whole seconds: the wait is between 2 and 3 seconds, less
    # the time the request took.
    assert 1.5 <= events(stream, RETRIED)[0]["wait"] <= 3.0


def test_a_retry_after_beyond_max_delay_ends_the_retries(
    http_server: HttpServer,
) -> None:
    http_server.responder = failing(503, times=1, headers={"Retry-After": "120"})

    started = time.monotonic()
    response = runtime.HttpClient(max_delay=20).get(http_server.url)

    assert response.status == 503
    assert time.monotonic() - started < 5
    assert http_server.attempts == 1


def test_a_refused_connection_is_retried_whatever_the_method(
    stream: io.StringIO,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/orders"

    with pytest.raises(runtime.HttpConnectionError) as raised:
        runtime.HttpClient(retries=2, backoff=0.01).post(url, json={})

    assert "ConnectionRefusedError" in str(raised.value)
    assert "after 3 attempts" in str(raised.value)
    assert isinstance(raised.value.__cause__, ConnectionRefusedError)
    assert raised.value.attempts == 3
    assert [line["attempt"] for line in events(stream, RETRIED)] == [1, 2]


# Timeouts and deadlines ---------------------------------------------------


def test_a_read_timeout_raises_a_timeout_error(http_server: HttpServer) -> None:
    http_server.responder = slow(SLOW)

    started = time.monotonic()
    with pytest.raises(runtime.HttpTimeoutError) as raised:
        runtime.HttpClient(timeout=(1, 0.3), retries=1, backoff=0).get(http_server.url)

    assert isinstance(raised.value, TimeoutError)
    assert raised.value.attempts == 2
    assert http_server.attempts == 2
    assert time.monotonic() - started < 0.6 + SLACK


def test_a_post_that_timed_out_is_not_sent_again(http_server: HttpServer) -> None:
    http_server.responder = slow(SLOW)

    with pytest.raises(runtime.HttpTimeoutError):
        runtime.HttpClient(timeout=0.3, retries=3).post(http_server.url)

    assert http_server.attempts == 1


def test_the_invocation_s_deadline_bounds_the_retries(
    http_server: HttpServer,
) -> None:
    http_server.responder = failing(503, times=1000)
    client = runtime.HttpClient(retries=1000, backoff=0.2, max_delay=0.2)

    started = time.monotonic()
    with runtime.lambda_invocation(Context(remaining_ms=1500)):  # deadline: 1.0 s
        try:
            attempts = client.get(http_server.url).attempts  # the last 503
        except runtime.HttpTimeoutError as error:
            # On a loaded machine the last attempt may be the one whose
            # read the deadline cut short.
            assert "no time left to retry before the deadline" in str(error)
            attempts = error.attempts
    elapsed = time.monotonic() - started

    assert attempts > 1
    assert 0.8 <= elapsed <= 1.0 + SLACK  # not the 200 s of 1000 retries


def test_a_handler_decorated_for_request_ids_sets_the_deadline(
    http_server: HttpServer,
) -> None:
    http_server.responder = slow(SLOW)
    client = runtime.HttpClient()

    @runtime.inject_request_ids_into_environment
    def handler(event: object, context: object) -> int:
        return client.get(http_server.url).status

    started = time.monotonic()
    with pytest.raises(runtime.HttpTimeoutError):
        handler({}, Context(remaining_ms=1300))  # deadline: 0.8 s

    assert 0.7 <= time.monotonic() - started <= 0.8 + SLACK


def test_a_deadline_block_cuts_a_slow_answer(http_server: HttpServer) -> None:
    http_server.responder = slow(SLOW)
    client = runtime.HttpClient()

    started = time.monotonic()
    with (
        client.deadline(Context(remaining_ms=1000), margin=0.4),  # 0.6 s
        pytest.raises(runtime.HttpTimeoutError, match="timed out"),
    ):
        client.get(http_server.url)

    assert 0.5 <= time.monotonic() - started <= 0.6 + SLACK


def test_total_timeout_bounds_a_request_outside_an_invocation(
    http_server: HttpServer,
) -> None:
    http_server.responder = slow(SLOW)

    started = time.monotonic()
    with pytest.raises(runtime.HttpTimeoutError):
        runtime.HttpClient(total_timeout=0.5).get(http_server.url)

    assert 0.4 <= time.monotonic() - started <= 0.5 + SLACK


def test_nothing_is_sent_once_the_deadline_has_passed(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    with client.deadline(0.001):
        time.sleep(0.01)
        with pytest.raises(runtime.HttpTimeoutError, match="deadline passed"):
            client.get(http_server.url)

    assert http_server.attempts == 0


def test_a_deadline_block_ends_with_the_block(
    http_server: HttpServer, client: runtime.HttpClient
) -> None:
    with client.deadline(0.001):
        time.sleep(0.01)

    assert client.get(http_server.url).status == 200


# Bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://127.0.0.1/file", "not an http or https URL"),
        ("http:///orders", "has no host"),
        ("127.0.0.1/orders", "not an http or https URL"),
        ("http://127.0.0.1/orders 7", "spaces or control characters"),
        ("http://127.0.0.1/\r\nX: y", "spaces or control characters"),
        ("http://127.0.0.1/Åsa", "non-ASCII"),
        ("http://127.0.0.1:99999/", "Port out of range"),
    ],
)
def test_a_malformed_url_is_refused_before_anything_is_sent(
    client: runtime.HttpClient, url: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        client.get(url)


def test_the_error_about_a_malformed_url_masks_its_secrets(
    client: runtime.HttpClient,
) -> None:
    with pytest.raises(ValueError) as raised:
        client.get("gopher://ann:hunter2@host/x?token=hunter2&page=2")

    assert "hunter2" not in str(raised.value)
    assert "page=2" in str(raised.value)


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"json": {1, object()}}, TypeError),
        ({"data": 42}, TypeError),
        ({"data": b"x", "json": {}}, TypeError),
        ({"headers": {"X-Bad": "a\r\nInjected: 1"}}, ValueError),
        ({"headers": {"Bad Name": "x"}}, ValueError),
        ({"headers": {"X-Price": "5 €"}}, ValueError),
        ({"timeout": -1}, ValueError),
        ({"retries": -1}, ValueError),
    ],
)
def test_bad_request_arguments_are_refused_before_anything_is_sent(
    http_server: HttpServer,
    client: runtime.HttpClient,
    options: dict[str, object],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        client.post(http_server.url, **options)

    assert http_server.attempts == 0


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"timeout": (1, 2, 3)},
        {"retries": 1.5},
        {"backoff": -1},
        {"sign": 7},
        {"verify": 1},
        {"pool_size": -1},
        {"total_timeout": 0},
    ],
)
def test_bad_client_settings_are_refused(options: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        runtime.HttpClient(**options)  # type: ignore[arg-type]


def test_a_malformed_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="malformed URL"):
        runtime.HttpClient("orders.example.com")


# Secrets and tracing ------------------------------------------------------


SECRETS = ("hunter2", "s3cr3t", "tok-123", "sess-9", "pw-1")


def test_secrets_never_reach_the_log_lines(
    http_server: HttpServer, debug_lines: io.StringIO
) -> None:
    stream = debug_lines
    http_server.responder = failing(503, times=1)
    client = runtime.HttpClient(headers={"X-Api-Key": "s3cr3t"}, backoff=0.01)

    client.get(
        f"{http_server.url}/orders",
        params={"access_token": "tok-123", "page": 2},
        headers={"Authorization": "Bearer hunter2", "Cookie": "session=sess-9"},
    )
    client.post(http_server.url, json={"password": "pw-1"})

    text = stream.getvalue()
    assert not [secret for secret in SECRETS if secret in text]
    [request, _] = events(stream, "HTTP request")
    assert request["headers"]["Authorization"] == "***"
    assert request["headers"]["Accept"] == "*/*"
    assert request["url"] == f"{http_server.url}/orders?access_token=***&page=2"
    assert request["attempts"] == 2


def test_each_call_is_one_remote_subsegment_passing_the_trace_on(
    daemon: Daemon, http_server: HttpServer
) -> None:
    http_server.responder = failing(503, times=1)

    runtime.HttpClient(backoff=0.01).get(
        f"{http_server.url}/orders?token=hunter2",
        headers={"Authorization": "Bearer hunter2"},
    )

    datagrams = daemon.datagrams()
    assert not any(b"hunter2" in d for d in datagrams)
    [call] = [json.loads(d.partition(b"\n")[2]) for d in datagrams]
    assert (call["name"], call["namespace"]) == ("127.0.0.1", "remote")
    assert call["http"] == {
        "request": {"method": "GET", "url": f"{http_server.url}/orders"},
        "response": {"status": 200, "content_length": 4},
    }
    sent = [r["headers"]["X-Amzn-Trace-Id"] for r in http_server.exchange.requests]
    assert sent == [f"Root={TRACE_ID};Parent={call['id']};Sampled=1"] * 2


def test_a_call_without_an_answer_is_a_fault(daemon: Daemon) -> None:
    url = f"http://127.0.0.1:{closed_port()}/"

    with pytest.raises(runtime.HttpConnectionError):
        runtime.HttpClient(retries=0).get(url)

    [call] = daemon.completed()
    assert call["fault"] is True
    assert call["cause"]["exceptions"][0]["type"] == "HttpConnectionError"


def test_an_unsampled_trace_is_passed_on_as_unsampled(
    daemon: Daemon, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={TRACE_ID};Parent=abc;Sampled=0")

    runtime.HttpClient().get(http_server.url)

    assert daemon.datagrams() == []
    sent = http_server.exchange.requests[0]["headers"]["X-Amzn-Trace-Id"]
    assert sent == f"Root={TRACE_ID};Sampled=0"


def test_a_trace_header_of_the_caller_is_kept(
    daemon: Daemon, http_server: HttpServer
) -> None:
    runtime.HttpClient().get(http_server.url, headers={"X-Amzn-Trace-Id": "Root=mine"})

    assert http_server.exchange.requests[0]["headers"]["X-Amzn-Trace-Id"] == "Root=mine"


def test_no_trace_header_outside_a_traced_invocation(
    http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)

    runtime.HttpClient().get(http_server.url)

    assert "X-Amzn-Trace-Id" not in http_server.exchange.requests[0]["headers"]


def test_a_thread_started_in_the_invocation_keeps_its_deadline(
    http_server: HttpServer,
) -> None:
    http_server.responder = slow(SLOW)
    client = runtime.HttpClient()
    outcome: list[BaseException] = []

    def call() -> None:
        try:
            client.get(http_server.url)
        except runtime.HttpTimeoutError as error:
            outcome.append(error)

    started = time.monotonic()
    with runtime.lambda_invocation(Context(remaining_ms=1100)):
        thread = threading.Thread(target=runtime.in_current_context(call))
        thread.start()
        thread.join()

    assert len(outcome) == 1
    assert time.monotonic() - started <= 0.6 + SLACK


def test_a_debug_line_tells_each_request(
    http_server: HttpServer, debug_lines: io.StringIO
) -> None:
    runtime.HttpClient().get(http_server.url)

    [line] = lines(debug_lines)
    assert line["status"] == 200 and isinstance(line["elapsed"], float)
    assert json.dumps(line)
