"""Code written for fleece 1.2.1 works once its import line names fleece_runtime.

fleece 1.2.1's behaviour (rackerlabs/fleece: its source, its tests and its
README) is the expected value here, except where docs/runtime.md lists a
deliberate fix. Servers and AWS are real: HTTP and UDP on 127.0.0.1, moto.
"""

import io
import json
import logging
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import boto3 as real_boto3
import pytest
import requests as real_requests
import watchtower

from runtime_stub import fleece_runtime
from runtime_stub.fleece_runtime import boto3, log, requests, xray
from tests.runtime.runtime_servers import (
    LAMBDA_SEGMENT_ID,
    TRACE_ID,
    Daemon,
    HttpServer,
    Responder,
)
from tests.servers import pause


@dataclass
class Context:
    aws_request_id: str = "8f5c9a36-2b3e-4f7d-9d1a-0c6f1e2d3b4a"


class FlakyHandler(logging.Handler):
    """1.x's test handler: fails ``fail`` times, then keeps records (marking the attempt)."""

    def __init__(self, fail: int) -> None:
        super().__init__()
        self.fail = fail
        self.attempt = 0
        self.log: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.attempt += 1
        if self.attempt <= self.fail:
            raise RuntimeError(str(self.attempt))
        record.msg = record.msg.replace("foo", f"foo-{self.attempt}")
        self.log.append(record)


def statuses(*codes: int) -> Responder:
    """A responder answering ``codes`` in turn (no Retry-After), then 200."""
    answers = iter(codes)

    def respond(
        attempt: int, request: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, str], bytes]:
        status = next(answers, 200)
        return status, {}, b"busy" if status != 200 else b"done"

    return respond


def slow(seconds: float) -> Responder:
    def respond(
        attempt: int, request: BaseHTTPRequestHandler
    ) -> tuple[int, dict[str, str], bytes]:
        pause(request, seconds)
        return 200, {}, b"late"

    return respond


# -- log ---------------------------------------------------------------------


def test_get_logger_proxies_the_standard_handler_and_level_api() -> None:
    logger = log.get_logger(uuid.uuid4().hex)
    handler = logging.StreamHandler(io.StringIO())

    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.WARNING)

    assert logger.handlers == [handler]
    assert logger.hasHandlers()
    assert (logger.level, logger.getEffectiveLevel()) == (logging.WARNING,) * 2
    assert logger.stdlib.propagate is False
    assert logger.parent is logging.getLogger()
    logger.removeHandler(handler)
    assert logger.handlers == []
    assert not logger.hasHandlers()


def test_a_retry_handler_added_to_a_logger_gets_the_json_line() -> None:
    # 1.x's tests/test_log.py, test_retry_handler_with_retries
    log.setup_root_logger(stream=io.StringIO())
    logger = log.get_logger(uuid.uuid4().hex)
    flaky = FlakyHandler(fail=2)
    logger.addHandler(log.RetryHandler(flaky, max_retries=5, backoff_base=0.001))

    logger.error("foo")

    [record] = flaky.log
    assert 'event": "foo-3"' in record.getMessage()


def test_a_retry_handler_that_exhausts_its_retries_raises_the_first_error() -> None:
    # 1.x's tests/test_log.py, test_retry_handler_with_max_retries_and_raise
    logger = log.get_logger(uuid.uuid4().hex)
    flaky = FlakyHandler(fail=3)
    logger.addHandler(
        log.RetryHandler(flaky, max_retries=2, backoff_base=0, ignore_errors=False)
    )

    with pytest.raises(RuntimeError, match=r"^1$"):
        logger.error("foo")
    assert flaky.log == []


def test_a_users_handler_receives_the_whole_line_with_the_fields(
    stream: io.StringIO,
) -> None:
    received = io.StringIO()
    logger = log.get_logger("worker")
    logger.addHandler(logging.StreamHandler(received))  # no formatter of ours

    logger.info("saved", order_id=7)

    assert received.getvalue() == stream.getvalue()
    assert json.loads(received.getvalue())["order_id"] == 7


def test_get_logger_takes_level_and_stream() -> None:
    logger = log.get_logger("leveled", level=logging.INFO, stream=io.StringIO())

    assert logger.stdlib.level == logging.INFO
    assert log.getLogger("leveled", level="ERROR").stdlib.level == logging.ERROR


def test_structlog_arguments_are_refused_clearly() -> None:
    with pytest.raises(TypeError, match="fleece_runtime does not use structlog"):
        log.get_logger("x", logger_factory=object())
    with pytest.raises(TypeError, match="logger_factory= configured structlog"):
        log.setup_root_logger(logging.INFO, io.StringIO(), object())


def test_warn_new_and_try_unbind_work_as_on_1x_loggers(stream: io.StringIO) -> None:
    logger = log.get_logger("w")

    logger.bind(a=1).bind(b=2).try_unbind("b", "missing")
    logger.warn("first")
    logger.new(c=3).info("second")

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["level"], first["a"], "b" in first) == ("WARNING", 1, False)
    assert (second["c"], "a" in second) == (3, False)
    log.unbind("c")


def test_the_1x_line_is_1x_byte_for_byte() -> None:
    out = io.StringIO()
    log.setup_root_logger(stream=out, schema="1.x")

    @log.inject_request_ids_into_environment
    def handler(event: dict[str, Any], context: Context) -> None:
        log.get_logger("worker").info("saved %s", "x", order_id=7, name="Åsa")

    handler({"requestContext": {"requestId": "api-1"}}, Context("lam-1"))

    # What fleece 1.2.1 wrote for the same call, timestamp aside.
    line = out.getvalue().rstrip("\n")
    stamp = json.loads(line)["timestamp"]
    assert line == (
        '{"api_request_id": "api-1", "event": "saved x", "lambda.request_id": '
        '"lam-1", "level": "info", "logger": "worker", "name": "\\u00c5sa", '
        f'"order_id": 7, "timestamp": "{stamp}"}}'
    )
    assert len(stamp) == len("2025-03-10T12:00:00.123456Z") and stamp.endswith("Z")


def test_the_1x_schema_spells_levels_in_lower_case() -> None:
    out = io.StringIO()
    log.setup_root_logger(stream=out, level=logging.DEBUG, schema="1.x")
    logger = log.get_logger("levels")

    logger.debug("d")
    logger.info("i")
    logger.warning("w")
    logger.error("e")
    logger.critical("c")
    try:
        raise ValueError("bad")
    except ValueError:
        logger.exception("x")

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["level"] for r in records] == [
        "debug",
        "info",
        "warning",
        "error",
        "critical",
        "error",
    ]
    assert records[-1]["exception"].endswith("ValueError: bad")


def test_the_1x_schema_writes_what_json_cannot_hold_as_repr() -> None:
    out = io.StringIO()
    log.setup_root_logger(stream=out, schema="1.x")

    log.get_logger("odd").info("odd", tags={1}, when=datetime(2025, 3, 10))

    record = json.loads(out.getvalue())
    assert record["tags"] == "{1}"
    assert record["when"] == "datetime.datetime(2025, 3, 10, 0, 0)"


# -- requests ----------------------------------------------------------------


def test_set_default_retries_takes_the_total_positionally(
    http_server: HttpServer,
) -> None:
    requests.set_default_retries(3)
    http_server.responder = statuses(503, 503, 503)  # with no Retry-After: not retried
    assert requests.get(http_server.url).status_code == 503

    requests.set_default_retries(5, status_forcelist=[503])
    http_server.responder = statuses(503, 503, 503)
    assert requests.get(http_server.url).status_code == 200
    assert http_server.attempts == 1 + 4


def test_an_int_retries_sets_the_total_and_keeps_the_other_defaults(
    http_server: HttpServer,
) -> None:
    # The original README's example.
    requests.set_default_retries(total=5, backoff_factor=1, status_forcelist=[429, 503])
    http_server.responder = statuses(503)

    assert requests.put(http_server.url, data=b"x", retries=2).status_code == 200
    assert http_server.attempts == 2

    http_server.responder = statuses(429, 429, 429)
    with (
        requests.Session(retries=1) as session,
        pytest.raises(real_requests.exceptions.RetryError),
    ):
        session.get(http_server.url)
    assert http_server.attempts == 2 + 2


def test_set_default_timeout_takes_connect_and_read_timeouts(
    http_server: HttpServer,
) -> None:
    http_server.responder = slow(0.6)

    requests.set_default_timeout(connect_timeout=2, read_timeout=0.2)
    with pytest.raises(real_requests.ReadTimeout):
        requests.get(http_server.url)
    requests.set_default_timeout()
    assert requests.get(http_server.url).text == "late"


def test_requests_names_are_requests_own() -> None:
    for name in (
        "RequestException",
        "HTTPError",
        "ConnectionError",
        "Timeout",
        "ConnectTimeout",
        "ReadTimeout",
        "Response",
        "codes",
        "exceptions",
    ):
        assert getattr(requests, name) is getattr(real_requests, name), name
    with pytest.raises(AttributeError, match="requests has no attribute 'nothing'"):
        requests.nothing  # noqa: B018


def test_except_requests_exception_catches_a_refused_connection() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]

    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    try:
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)
    except requests.RequestException as error:
        assert isinstance(error, real_requests.ConnectionError)


def test_session_is_a_class_to_subclass_and_check(http_server: HttpServer) -> None:
    class Tagged(requests.Session):  # type: ignore[misc,name-defined]
        def request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("headers", {})["X-Tag"] = "t"
            return super().request(*args, **kwargs)

    http_server.responder = statuses(503)
    with Tagged(retries={"total": 1, "status_forcelist": [503]}) as session:
        assert session.get(http_server.url).status_code == 200

    assert isinstance(session, requests.Session)
    assert isinstance(session, real_requests.Session)
    assert isinstance(requests.Session(), real_requests.Session)
    assert http_server.exchange.requests[-1]["headers"]["X-Tag"] == "t"


# -- boto3 -------------------------------------------------------------------


def test_boto3_names_are_boto3s_own(aws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(real_boto3, "DEFAULT_SESSION", None)

    assert boto3.session is real_boto3.session
    assert boto3.exceptions.ResourceNotExistsError is (
        real_boto3.exceptions.ResourceNotExistsError
    )
    assert boto3.set_stream_logger is real_boto3.set_stream_logger
    boto3.setup_default_session(region_name="eu-west-1")
    assert boto3.client("s3", timeout=5).meta.region_name == "eu-west-1"


# -- xray --------------------------------------------------------------------


def test_get_trace_id_without_a_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("_X_AMZN_TRACE_ID", raising=False)

    assert tuple(xray.get_trace_id()) == (None, None, False)


def test_get_trace_id_of_a_sampled_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID",
        "Root=1-5901e3bc-8da3814a5f3ccbc864b66ecc;Parent=328f72132deac0ce;Sampled=1",
    )

    trace = fleece_runtime.get_trace_id()

    assert trace.trace_id == "1-5901e3bc-8da3814a5f3ccbc864b66ecc"
    assert trace.parent_id == "328f72132deac0ce"
    assert trace.sampled is True


def test_get_trace_id_of_a_partial_unsampled_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", "Root=1-5901e3bc-8da3814a5f3ccbc864b66ecc;Sampled=0"
    )

    trace_id, parent_id, sampled = xray.get_trace_id()

    assert (trace_id, parent_id, sampled) == (
        "1-5901e3bc-8da3814a5f3ccbc864b66ecc",
        None,
        False,
    )


def test_get_xray_daemon(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_XRAY_DAEMON_ADDRESS", raising=False)
    with pytest.raises(xray.XRayDaemonNotFoundError):
        xray.get_xray_daemon()

    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", "169.254.79.2:2000")
    daemon = xray.get_xray_daemon()
    assert (daemon.ip_address, daemon.port) == ("169.254.79.2", 2000)


def test_send_subsegment_to_xray_daemon_in_progress_then_complete(
    daemon: Daemon,
) -> None:
    started = time.time()

    xray.send_subsegment_to_xray_daemon("53995c3f42cd8ad9", LAMBDA_SEGMENT_ID, started)
    xray.send_subsegment_to_xray_daemon(
        "53995c3f42cd8ad9",
        LAMBDA_SEGMENT_ID,
        started,
        end_time=started + 3,
        name="NAME",
        extra_data={"foo": "BAR"},
    )

    in_progress, complete = daemon.documents()
    common = {
        "type": "subsegment",
        "id": "53995c3f42cd8ad9",
        "trace_id": TRACE_ID,
        "parent_id": LAMBDA_SEGMENT_ID,
        "start_time": started,
    }
    assert in_progress == {**common, "in_progress": True}
    assert complete == {
        **common,
        "end_time": started + 3,
        "name": "NAME",
        "namespace": "remote",
        "foo": "BAR",
    }


# -- the original README's examples, with the import line changed ------------


def test_readme_retry_handler_around_a_cloudwatch_handler(aws: str) -> None:
    logs = real_boto3.client("logs")
    stream_name = str(uuid.uuid4())
    logger = log.get_logger("worker")
    logger.setLevel(logging.INFO)
    with pytest.warns(DeprecationWarning):  # watchtower 3 renamed the arguments
        cloudwatch = watchtower.CloudWatchLogHandler(
            log_group="WORKER-POLL", stream_name=stream_name, use_queues=False
        )
    logger.addHandler(log.RetryHandler(cloudwatch))
    try:
        logger.info("poll_done", jobs=3)
    finally:
        logger.removeHandler(logger.handlers[-1])
        cloudwatch.close()  # type: ignore[no-untyped-call]

    events = logs.get_log_events(logGroupName="WORKER-POLL", logStreamName=stream_name)
    [message] = [json.loads(event["message"]) for event in events["events"]]
    assert {k: message[k] for k in ("level", "logger", "event", "jobs")} == {
        "level": "INFO",
        "logger": "worker",
        "event": "poll_done",
        "jobs": 3,
    }


def test_readme_request_ids_on_each_log_event(stream: io.StringIO) -> None:
    logger = log.get_logger(__name__)

    @log.inject_request_ids_into_environment
    def lambda_handler(event: dict[str, Any], context: Context) -> None:
        logger.info("handled")

    lambda_handler({"requestContext": {"requestId": "api-1"}}, Context("lam-1"))

    record = json.loads(stream.getvalue())
    assert (record["api_request_id"], record["lambda_request_id"]) == (
        "api-1",
        "lam-1",
    )


def test_readme_boto3_default_timeout(aws: str) -> None:
    boto3.set_default_timeout(15)
    lambda_ = boto3.client("lambda")

    assert (lambda_.meta.config.connect_timeout, lambda_.meta.config.read_timeout) == (
        15,
        15,
    )


def test_readme_requests_defaults_and_overrides(http_server: HttpServer) -> None:
    requests.set_default_timeout(15)
    requests.set_default_retries(total=5, backoff_factor=1, status_forcelist=[429, 503])
    http_server.responder = statuses(503)

    r = requests.get(http_server.url)
    assert (r.status_code, http_server.attempts) == (200, 2)
    r = requests.put(http_server.url, timeout=25, retries=2)
    assert r.status_code == 200
    with requests.Session() as session:
        assert session.get(http_server.url).text == "done"


def test_readme_xray_quick_example(daemon: Daemon, aws: str) -> None:
    real_boto3.client("iam").create_user(UserName="default_user")
    xray.monkey_patch_botocore_for_xray()

    @xray.trace_xray_subsegment()
    def lambda_handler(event: dict[str, Any], context: Context) -> Any:
        return get_user()

    def get_user() -> Any:
        iam = boto3.client("iam")
        return iam.get_user(UserName="default_user")

    assert lambda_handler({}, Context())["User"]["UserName"] == "default_user"

    iam_call, handler = daemon.completed()
    assert (iam_call["name"], iam_call["namespace"]) == ("iam", "aws")
    assert iam_call["parent_id"] == handler["id"]
    assert handler["name"].endswith("lambda_handler")
    assert handler["parent_id"] == LAMBDA_SEGMENT_ID
