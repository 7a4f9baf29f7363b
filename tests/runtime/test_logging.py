"""fleece_runtime logging: JSON lines, request ids, context, classification, retries."""

import asyncio
import io
import json
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from runtime_stub import fleece_runtime as runtime

TIMESTAMP = re.compile(r'"timestamp": "(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"')


@dataclass
class Context:
    aws_request_id: str


def lines(stream: io.StringIO) -> list[str]:
    """The lines written, each timestamp checked for ISO 8601 UTC, then masked."""
    out = []
    for line in stream.getvalue().splitlines():
        match = TIMESTAMP.search(line)
        assert match, line
        datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S.%fZ")
        out.append(TIMESTAMP.sub('"timestamp": "T"', line))
    return out


def test_keyword_fields_make_one_json_line(stream: io.StringIO) -> None:
    runtime.log.get_logger("orders").info("order_saved", order_id=7, total=9.5)

    assert lines(stream) == [
        '{"timestamp": "T", "level": "INFO", "logger": "orders", "event": "order_saved", "order_id": 7, "total": 9.5}'
    ]


def test_timestamp_is_the_record_time_in_utc(stream: io.StringIO) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    runtime.get_logger("t").info("now")

    stamp = json.loads(stream.getvalue())["timestamp"]
    logged = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert before <= logged <= datetime.now(UTC)


def test_plain_stdlib_and_library_loggers_come_out_as_json(stream: io.StringIO) -> None:
    logging.getLogger("botocore.library").warning("retrying %s", "PutObject")
    logging.getLogger("app").info("greeted", extra={"user": "bob"})

    assert lines(stream) == [
        '{"timestamp": "T", "level": "WARNING", "logger": "botocore.library", "event": "retrying PutObject"}',
        '{"timestamp": "T", "level": "INFO", "logger": "app", "event": "greeted", "user": "bob"}',
    ]


def test_setup_replaces_the_root_handlers() -> None:
    old = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(old)

    handler = runtime.setup_root_logger(stream=io.StringIO())

    assert logging.getLogger().handlers == [handler]


def test_default_level_is_info(stream: io.StringIO) -> None:
    logger = runtime.get_logger("quiet")
    logger.debug("hidden")
    logger.info("shown")

    assert [json.loads(line)["event"] for line in lines(stream)] == ["shown"]


def _events_logged_at_every_level(level: int | str = logging.INFO) -> list[str]:
    """Set up with ``level``, log one line per level; the events written."""
    out = io.StringIO()
    runtime.setup_root_logger(level, stream=out)
    logger = runtime.get_logger("levels")
    logger.debug("debug")
    logger.info("info")
    logger.warning("warning")
    logger.error("error")
    logger.critical("critical")
    return [json.loads(line)["event"] for line in out.getvalue().splitlines()]


def test_the_argument_sets_the_level_when_no_variable_does() -> None:
    assert _events_logged_at_every_level("ERROR") == ["error", "critical"]


def test_log_level_wins_over_the_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")

    assert _events_logged_at_every_level(logging.ERROR)[:2] == ["debug", "info"]


def test_lambda_log_level_wins_over_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "ERROR")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")

    assert _events_logged_at_every_level() == ["error", "critical"]


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("TRACE", "debug"),
        ("DEBUG", "debug"),
        ("INFO", "info"),
        ("WARN", "warning"),
        ("ERROR", "error"),
        ("FATAL", "critical"),
    ],
)
def test_lambda_level_names_map_to_python_levels(
    monkeypatch: pytest.MonkeyPatch, name: str, first: str
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", name)

    assert _events_logged_at_every_level()[0] == first


def test_level_names_are_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", " warning ")

    assert _events_logged_at_every_level(logging.DEBUG)[0] == "warning"


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "")
    monkeypatch.setenv("LOG_LEVEL", "ERROR")

    assert _events_logged_at_every_level() == ["error", "critical"]


def test_a_variable_that_names_no_level_is_skipped_and_said_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "LOUD")
    monkeypatch.setenv("LOG_LEVEL", "WARNING")
    out = io.StringIO()

    runtime.setup_root_logger(stream=out)
    runtime.get_logger("app").info("hidden")

    (warning,) = [json.loads(line) for line in lines(out)]
    assert warning == {
        "timestamp": "T",
        "level": "WARNING",
        "logger": runtime.__name__,
        "event": "log_level_ignored",
        "variable": "AWS_LAMBDA_LOG_LEVEL",
        "value": "LOUD",
        "used": "WARNING",
    }


@pytest.fixture
def named(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """The stream of `setup_root_logger`, called with SERVICE_NAME=orders-api."""
    monkeypatch.setenv("SERVICE_NAME", "orders-api")
    out = io.StringIO()
    runtime.setup_root_logger(stream=out)
    return out


def test_service_name_is_on_every_line_after_the_event(named: io.StringIO) -> None:
    runtime.bind(customer="c-1")
    runtime.get_logger("orders").info("saved", order_id=7)
    logging.getLogger("botocore").warning("retrying")
    runtime.unbind("customer")

    assert lines(named) == [
        '{"timestamp": "T", "level": "INFO", "logger": "orders", "event": "saved", "service": "orders-api", "customer": "c-1", "order_id": 7}',
        '{"timestamp": "T", "level": "WARNING", "logger": "botocore", "event": "retrying", "service": "orders-api", "customer": "c-1"}',
    ]


def test_a_field_named_service_does_not_replace_the_service(
    named: io.StringIO,
) -> None:
    runtime.get_logger("orders").info("called", service="payments")

    assert json.loads(named.getvalue())["service"] == "orders-api"


def test_without_service_name_a_service_field_is_an_ordinary_field(
    stream: io.StringIO,
) -> None:
    runtime.get_logger("orders").info("called", service="payments")

    assert json.loads(stream.getvalue())["service"] == "payments"


def test_fleece_1x_lines_carry_the_service_among_their_sorted_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVICE_NAME", "orders-api")
    out = io.StringIO()
    runtime.setup_root_logger(stream=out, schema="1.x")

    runtime.get_logger("orders").info("saved", zone="eu")

    (line,) = out.getvalue().splitlines()
    assert re.sub(r'"timestamp": "[^"]+"', '"timestamp": "T"', line) == (
        '{"event": "saved", "level": "info", "logger": "orders", "service": "orders-api", "timestamp": "T", "zone": "eu"}'
    )


def test_a_formatter_may_name_another_service_or_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SERVICE_NAME", "orders-api")
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "hi", (), None)

    named = json.loads(runtime.JsonFormatter(service="billing").format(record))
    unnamed = json.loads(runtime.JsonFormatter(service="").format(record))

    assert named["service"] == "billing" and "service" not in unnamed


def test_newlines_in_values_stay_on_one_line(stream: io.StringIO) -> None:
    runtime.get_logger("x").info("two\nlines", note="a\nb")

    assert lines(stream) == [
        '{"timestamp": "T", "level": "INFO", "logger": "x", "event": "two\\nlines", "note": "a\\nb"}'
    ]


def test_unicode_line_separators_are_escaped_and_other_text_kept(
    stream: io.StringIO,
) -> None:
    runtime.get_logger("x").info("a\u2028b", note="c\u2029d\x85e", name="Åsa é")

    [line] = stream.getvalue().splitlines()
    assert line.endswith(
        '"event": "a\\u2028b", "note": "c\\u2029d\\u0085e", "name": "Åsa é"}'
    )
    assert json.loads(line)["note"] == "c\u2029d\x85e"


def test_exception_is_one_field_with_one_traceback(stream: io.StringIO) -> None:
    try:
        raise ValueError("bad order")
    except ValueError:
        runtime.get_logger("x").exception("failed", order_id=3)

    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert list(record) == [
        "timestamp",
        "level",
        "logger",
        "event",
        "order_id",
        "exception",
    ]
    assert record["level"] == "ERROR"
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert record["exception"].endswith("ValueError: bad order")
    assert line.count("Traceback") == 1


def test_fields_named_like_core_fields_do_not_replace_them(stream: io.StringIO) -> None:
    runtime.get_logger("x").info("real", level="fake", logger="fake", name="kept")

    record = json.loads(stream.getvalue())
    assert (record["level"], record["logger"], record["name"]) == ("INFO", "x", "kept")


def test_extra_joins_the_keyword_fields_whatever_its_keys(stream: io.StringIO) -> None:
    runtime.get_logger("x").info("greeted", extra={"name": "ann"}, user=1)

    assert lines(stream) == [
        '{"timestamp": "T", "level": "INFO", "logger": "x", "event": "greeted", "name": "ann", "user": 1}'
    ]


def test_values_json_cannot_hold_become_strings(stream: io.StringIO) -> None:
    when = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    runtime.get_logger("x").info("odd", when=when, tags={"b"}, thing=object)

    record = json.loads(stream.getvalue())
    assert record["when"] == "2025-03-10T12:00:00+00:00"
    assert record["tags"] == ["b"]
    assert record["thing"] == "<class 'object'>"


def test_records_name_the_calling_function() -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logging.getLogger("where").addHandler(keep := Keep())
    try:
        runtime.get_logger("where").warning("here")
    finally:
        logging.getLogger("where").removeHandler(keep)

    assert records[0].funcName == "test_records_name_the_calling_function"


def test_request_ids_and_cold_start_are_on_every_line(stream: io.StringIO) -> None:
    logger = runtime.get_logger("h")

    @runtime.log.inject_request_ids_into_environment
    def handler(event: dict[str, Any], context: Context) -> None:
        logger.info("handled")

    handler({"requestContext": {"requestId": "api-1"}}, Context("lambda-1"))

    assert lines(stream) == [
        '{"timestamp": "T", "level": "INFO", "logger": "h", "event": "handled", "lambda_request_id": "lambda-1", "api_request_id": "api-1", "cold_start": true}'
    ]


def test_warm_container_leaks_no_ids_or_bound_fields(stream: io.StringIO) -> None:
    logger = runtime.get_logger("h")

    @runtime.log.inject_request_ids_into_environment
    def handler(event: dict[str, Any], context: Context) -> None:
        if "user" in event:
            runtime.log.bind(user=event["user"])
        logger.info("handled")

    handler(
        {"requestContext": {"requestId": "api-1"}, "user": "ann"}, Context("lambda-1")
    )
    handler({"Records": []}, Context("lambda-2"))
    logger.info("between invocations")

    assert lines(stream) == [
        '{"timestamp": "T", "level": "INFO", "logger": "h", "event": "handled", "lambda_request_id": "lambda-1", "api_request_id": "api-1", "cold_start": true, "user": "ann"}',
        '{"timestamp": "T", "level": "INFO", "logger": "h", "event": "handled", "lambda_request_id": "lambda-2", "cold_start": false}',
        '{"timestamp": "T", "level": "INFO", "logger": "h", "event": "between invocations"}',
    ]


def test_fields_bound_at_import_apply_to_every_invocation(stream: io.StringIO) -> None:
    logger = runtime.get_logger("h")

    @runtime.inject_request_ids_into_environment
    def handler(event: dict[str, Any], context: Context) -> None:
        logger.bind(step="inside").info("handled")

    runtime.bind(service="orders")
    try:
        handler({}, Context("lambda-1"))
        handler({}, Context("lambda-2"))
    finally:
        runtime.unbind("service")

    assert [json.loads(line).get("service") for line in lines(stream)] == ["orders"] * 2
    assert [json.loads(line)["step"] for line in lines(stream)] == ["inside"] * 2


def test_handler_errors_still_end_the_invocation_context(stream: io.StringIO) -> None:
    @runtime.inject_request_ids_into_environment
    def handler(event: dict[str, Any], context: Context) -> None:
        runtime.bind(user="ann")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        handler({}, Context("lambda-1"))
    runtime.get_logger("h").info("after")

    assert lines(stream) == [
        '{"timestamp": "T", "level": "INFO", "logger": "h", "event": "after"}'
    ]


def test_threads_do_not_share_bound_fields(stream: io.StringIO) -> None:
    def worker(name: str) -> None:
        runtime.bind(worker=name)
        runtime.get_logger("w").info("working")

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    workers = sorted(json.loads(line)["worker"] for line in lines(stream))
    assert workers == ["w0", "w1", "w2", "w3"]


def test_pool_threads_in_current_context_log_the_request_ids(
    stream: io.StringIO,
) -> None:
    logger = runtime.get_logger("h")

    def resize(size: int) -> None:
        runtime.bind(size=size)  # stays in this call's own context
        logger.info("resized")

    @runtime.inject_request_ids_into_environment
    def handler(event: dict[str, Any], context: Context) -> None:
        runtime.bind(user="ann")
        with ThreadPoolExecutor(max_workers=2) as pool:
            resizing = runtime.in_current_context(resize)
            for future in [pool.submit(resizing, size) for size in (1, 2)]:
                future.result()
        logger.info("handled")

    handler({"requestContext": {"requestId": "api-1"}}, Context("lambda-1"))

    records = sorted(
        (json.loads(line) for line in lines(stream)), key=lambda r: r.get("size", 9)
    )
    ids = {"lambda_request_id": "lambda-1", "api_request_id": "api-1"}
    assert records == [
        {**record, **ids, "cold_start": True, "user": "ann"} for record in records
    ]
    assert [(r["event"], r.get("size")) for r in records] == [
        ("resized", 1),
        ("resized", 2),
        ("handled", None),
    ]


def test_one_wrapped_function_may_run_in_several_threads_at_once(
    stream: io.StringIO,
) -> None:
    barrier = threading.Barrier(3)

    def work(n: int) -> int:
        barrier.wait(5)
        runtime.get_logger("w").info("worked", n=n)
        return n

    runtime.bind(job="j-1")
    try:
        wrapped = runtime.in_current_context(work)
        with ThreadPoolExecutor(max_workers=3) as pool:
            assert list(pool.map(wrapped, range(3))) == [0, 1, 2]
    finally:
        runtime.unbind("job")

    assert sorted((r["job"], r["n"]) for r in map(json.loads, lines(stream))) == [
        ("j-1", 0),
        ("j-1", 1),
        ("j-1", 2),
    ]


def test_async_handlers_log_the_request_ids_while_they_run(
    stream: io.StringIO,
) -> None:
    logger = runtime.get_logger("h")

    @runtime.inject_request_ids_into_environment
    async def handler(event: dict[str, Any], context: Context) -> str:
        await asyncio.sleep(0)
        logger.info("handled")
        return "ok"

    assert asyncio.run(handler({}, Context("lambda-1"))) == "ok"
    assert asyncio.run(handler({}, Context("lambda-2"))) == "ok"

    assert lines(stream) == [
        '{"timestamp": "T", "level": "INFO", "logger": "h", "event": "handled", "lambda_request_id": "lambda-1", "cold_start": true}',
        '{"timestamp": "T", "level": "INFO", "logger": "h", "event": "handled", "lambda_request_id": "lambda-2", "cold_start": false}',
    ]


def test_classification_is_written_by_name(stream: io.StringIO) -> None:
    logger = runtime.get_logger("c")
    logger.info("signed_up", classification=runtime.Classification.PII, email="a@b.se")
    logger.info("badge", classification="authorization_info")

    assert [json.loads(line)["classification"] for line in lines(stream)] == [
        "PII",
        "AUTHORIZATION_INFO",
    ]


def test_fields_of_events_classified_above_the_level_are_redacted() -> None:
    out = io.StringIO()
    runtime.setup_root_logger(
        stream=out, redact_above=runtime.Classification.CORPORATE_SENSITIVE_INFO
    )
    logger = runtime.get_logger("c")
    C = runtime.Classification

    logger.info("signed up %s", "a@b.se", classification=C.PII, email="a@b.se")
    logger.info("quarter", classification=C.CORPORATE_SENSITIVE_INFO, revenue=10)

    assert lines(out) == [
        '{"timestamp": "T", "level": "INFO", "logger": "c", "event": "signed up %s", "classification": "PII", "email": "[REDACTED]"}',
        '{"timestamp": "T", "level": "INFO", "logger": "c", "event": "quarter", "classification": "CORPORATE_SENSITIVE_INFO", "revenue": 10}',
    ]


def test_an_unknown_classification_fails_closed() -> None:
    out = io.StringIO()
    runtime.setup_root_logger(stream=out, redact_above=runtime.Classification.PII)

    runtime.get_logger("c").info("%s", "k-1", classification="secret", key="k-1")

    assert lines(out) == [
        '{"timestamp": "T", "level": "INFO", "logger": "c", "event": "%s", "classification": "secret", "key": "[REDACTED]"}'
    ]


def test_bound_fields_of_a_redacted_event_are_redacted_but_not_the_ids() -> None:
    out = io.StringIO()
    runtime.setup_root_logger(stream=out, redact_above="CORPORATE_SENSITIVE_INFO")
    logger = runtime.get_logger("c")

    @runtime.inject_request_ids_into_environment
    def handler(event: dict[str, Any], context: Context) -> None:
        runtime.bind(email="a@b.se")
        logger.info("signed_up", classification=runtime.Classification.PII)
        logger.info("visited")

    handler({}, Context("lambda-1"))

    assert lines(out) == [
        '{"timestamp": "T", "level": "INFO", "logger": "c", "event": "signed_up", "lambda_request_id": "lambda-1", "cold_start": true, "email": "[REDACTED]", "classification": "PII"}',
        '{"timestamp": "T", "level": "INFO", "logger": "c", "event": "visited", "lambda_request_id": "lambda-1", "cold_start": true, "email": "a@b.se"}',
    ]


def test_a_bound_classification_applies_to_every_line() -> None:
    out = io.StringIO()
    runtime.setup_root_logger(
        stream=out, redact_above=runtime.Classification.AUTHORIZATION_INFO
    )
    runtime.bind(classification=runtime.Classification.PII, email="a@b.se")
    try:
        runtime.get_logger("c").info("changed", to="b@c.se")
    finally:
        runtime.unbind("classification", "email")

    assert lines(out) == [
        '{"timestamp": "T", "level": "INFO", "logger": "c", "event": "changed", "classification": "PII", "email": "[REDACTED]", "to": "[REDACTED]"}'
    ]


@pytest.mark.parametrize("level", ["secret", 3])
def test_a_redaction_level_that_is_not_a_classification_is_refused(
    level: Any,
) -> None:
    with pytest.raises(ValueError, match="redact_above must be a Classification"):
        runtime.JsonFormatter(redact_above=level)


class FlakyHandler(logging.Handler):
    """Raises on its first ``failures`` emits, then keeps the records."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts = 0
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError(f"attempt {self.attempts} failed")
        self.records.append(record.getMessage())


def retrying_logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    return logger


def test_retry_handler_retries_until_the_handler_succeeds() -> None:
    flaky = FlakyHandler(failures=2)
    logger = retrying_logger(
        "retry.ok", runtime.RetryHandler(flaky, backoff_base=0.001)
    )

    logger.info("kept")

    assert (flaky.attempts, flaky.records) == (3, ["kept"])


def test_retry_handler_sleeps_with_full_jitter_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import random
    import time

    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    monkeypatch.setattr(random, "random", lambda: 0.5)
    flaky = FlakyHandler(failures=100)
    handler = runtime.RetryHandler(
        flaky, max_retries=5, backoff_base=0.1, backoff_cap=1, fallback=None
    )

    retrying_logger("retry.backoff", handler).info("lost")

    assert flaky.attempts == 6
    assert sleeps == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.5])


def test_retry_handler_hands_a_failed_record_to_the_fallback() -> None:
    fallback_stream = io.StringIO()
    fallback = logging.StreamHandler(fallback_stream)
    fallback.setFormatter(runtime.JsonFormatter())
    handler = runtime.RetryHandler(
        FlakyHandler(99), max_retries=1, backoff_base=0, fallback=fallback
    )

    retrying_logger("retry.fallback", handler).error("important")

    assert json.loads(fallback_stream.getvalue())["event"] == "important"


def test_retry_handler_writes_to_stderr_by_default_when_all_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler = runtime.RetryHandler(FlakyHandler(99), max_retries=1, backoff_base=0)

    retrying_logger("retry.stderr", handler).error("not lost")

    assert json.loads(capsys.readouterr().err)["event"] == "not lost"


def test_retry_handler_drops_silently_when_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    handler = runtime.RetryHandler(
        FlakyHandler(99), max_retries=1, backoff_base=0, fallback=None
    )

    retrying_logger("retry.drop", handler).error("dropped")

    assert capsys.readouterr() == ("", "")


def test_retry_handler_reraises_the_first_error_when_not_ignoring() -> None:
    handler = runtime.RetryHandler(
        FlakyHandler(99),
        max_retries=2,
        backoff_base=0,
        ignore_errors=False,
        fallback=None,
    )

    with pytest.raises(ConnectionError, match="attempt 1 failed"):
        retrying_logger("retry.raise", handler).error("x")


def test_retry_handler_retries_errors_a_stdlib_handler_swallows() -> None:
    class BrokenOnce(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            BrokenOnce.writes += 1
            if BrokenOnce.writes == 1:
                raise OSError("disk full")
            return super().write(text)

    target = BrokenOnce()
    handler = runtime.RetryHandler(
        logging.StreamHandler(target), backoff_base=0, fallback=None
    )

    retrying_logger("retry.stdlib", handler).warning("second try")

    assert target.getvalue() == "second try\n"


def test_retry_handler_respects_the_wrapped_level_and_filters() -> None:
    flaky = FlakyHandler(failures=0)
    flaky.setLevel(logging.WARNING)
    flaky.addFilter(lambda record: "secret" not in record.getMessage())
    logger = retrying_logger("retry.filter", runtime.RetryHandler(flaky))

    logger.info("too low")
    logger.error("a secret")
    logger.error("shown")

    assert flaky.records == ["shown"]


def test_handlers_with_any_formatter_receive_the_whole_line(
    stream: io.StringIO,
) -> None:
    plain = io.StringIO()
    handler = logging.StreamHandler(plain)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.getLogger().addHandler(handler)

    runtime.get_logger("orders").info("order_saved", order_id=7)

    [line] = lines(stream)
    assert plain.getvalue() == f"INFO {stream.getvalue()}"
    assert line.endswith('"event": "order_saved", "order_id": 7}')


def test_the_traceback_reaches_other_handlers_inside_the_line_only(
    stream: io.StringIO,
) -> None:
    plain = io.StringIO()
    logging.getLogger().addHandler(logging.StreamHandler(plain))

    try:
        raise ValueError("bad order")
    except ValueError:
        runtime.get_logger("x").exception("failed")

    assert plain.getvalue() == stream.getvalue()
    assert plain.getvalue().count("Traceback") == 1
    assert json.loads(plain.getvalue())["exception"].endswith("ValueError: bad order")


def test_fields_a_filter_adds_still_reach_the_json_line() -> None:
    def add_tenant(record: logging.LogRecord) -> bool:
        record.tenant = "t-1"
        return True

    stream = io.StringIO()
    runtime.setup_root_logger(stream=stream).addFilter(add_tenant)

    runtime.get_logger("x").info("saved", order_id=7)

    assert lines(stream) == [
        '{"timestamp": "T", "level": "INFO", "logger": "x", "event": "saved", "tenant": "t-1", "order_id": 7}'
    ]


def test_redaction_of_setup_root_logger_applies_to_the_line_every_handler_gets() -> (
    None
):
    out, plain = io.StringIO(), io.StringIO()
    runtime.setup_root_logger(stream=out, redact_above="AUTHORIZATION_INFO")
    logging.getLogger().addHandler(logging.StreamHandler(plain))

    runtime.get_logger("c").info(
        "signed_up", classification=runtime.Classification.PII, email="a@b.se"
    )

    assert "a@b.se" not in out.getvalue() + plain.getvalue()
    assert json.loads(plain.getvalue())["email"] == "[REDACTED]"


def test_another_json_formatter_renders_with_its_own_settings(
    stream: io.StringIO,
) -> None:
    redacting = io.StringIO()
    handler = logging.StreamHandler(redacting)
    handler.setFormatter(runtime.JsonFormatter(redact_above="NA"))
    logging.getLogger().addHandler(handler)

    runtime.get_logger("c").info("signed_up", classification="PII", email="a@b.se")

    assert json.loads(stream.getvalue())["email"] == "a@b.se"
    assert json.loads(redacting.getvalue())["email"] == "[REDACTED]"


def test_arguments_that_do_not_fit_the_message_do_not_raise(
    stream: io.StringIO,
) -> None:
    runtime.get_logger("x").info("%s and %s", "one")

    assert json.loads(stream.getvalue())["event"] == "'%s and %s' % ('one',)"


def test_a_value_that_cannot_be_encoded_does_not_raise(stream: io.StringIO) -> None:
    loop: list[object] = []
    loop.append(loop)

    runtime.get_logger("x").info("odd", loop=loop, n=1)

    record = json.loads(stream.getvalue())
    assert (record["loop"], record["n"]) == ("[[...]]", 1)


def test_an_unknown_schema_is_refused() -> None:
    with pytest.raises(ValueError, match=r"schema must be 'default' or '1\.x'"):
        runtime.setup_root_logger(stream=io.StringIO(), schema="2.x")


def test_logme_logs_entering_and_exiting_with_the_response(
    stream: io.StringIO,
) -> None:
    logger = runtime.get_logger("calls")
    logger.setLevel(logging.DEBUG)

    @runtime.log.logme(logger=logger)
    def total(a: int, b: int) -> int:
        return a + b

    assert total(2, 3) == 5
    assert total.__name__ == "total"
    assert [
        {k: v for k, v in json.loads(line).items() if k not in ("timestamp", "logger")}
        for line in lines(stream)
    ] == [
        {"level": "DEBUG", "event": "Entering total"},
        {"level": "DEBUG", "event": "Exiting total", "total_response": 5},
    ]


def test_logme_takes_a_level_and_a_standard_logger(stream: io.StringIO) -> None:
    @runtime.logme(level=logging.INFO, logger=logging.getLogger("std"))
    async def fetch() -> str:
        return "ok"

    assert asyncio.run(fetch()) == "ok"

    assert [json.loads(line)["event"] for line in lines(stream)] == [
        "Entering fetch",
        "Exiting fetch",
    ]
    assert json.loads(lines(stream)[1])["fetch_response"] == "ok"


def test_initial_trace_and_context_binds_replace_the_bound_fields(
    stream: io.StringIO,
) -> None:
    @dataclass
    class FullContext:
        function_name: str = "orders"
        function_version: str = "$LATEST"
        invoked_function_arn: str = (
            "arn:aws:lambda:us-east-1:123456789012:function:orders"
        )
        memory_limit_in_mb: int = 256
        aws_request_id: str = "lambda-1"
        log_group_name: str = "/aws/lambda/orders"
        log_stream_name: str = "2025/03/10/[$LATEST]abc"

    @runtime.inject_request_ids_into_environment
    def handler(event: dict[str, Any], context: FullContext) -> None:
        logger = runtime.get_logger("h").bind(stale=True)
        runtime.initial_trace_and_context_binds(logger, "trace-1", context).info("go")

    handler({}, FullContext())

    record = json.loads(stream.getvalue())
    assert "stale" not in record
    assert record["trace_id"] == "trace-1"
    assert record["lambda_context"] == {
        "function_name": "orders",
        "function_version": "$LATEST",
        "invoked_function_arn": "arn:aws:lambda:us-east-1:123456789012:function:orders",
        "memory_limit_in_mb": 256,
        "aws_request_id": "lambda-1",
        "log_group_name": "/aws/lambda/orders",
        "log_stream_name": "2025/03/10/[$LATEST]abc",
    }
    assert record["lambda_request_id"] == "lambda-1"  # the ids stay


def test_a_socket_handler_sends_the_line_and_the_fields_to_another_process(
    stream: io.StringIO,
) -> None:
    import logging.handlers
    import pickle
    import socket
    import struct

    server = socket.create_server(("127.0.0.1", 0))
    handler = logging.handlers.SocketHandler("127.0.0.1", server.getsockname()[1])
    logger = runtime.get_logger("remote")
    logger.addHandler(handler)
    try:
        logger.info("saved", order_id=7)
        connection, _ = server.accept()
        with connection:
            connection.settimeout(5)
            data = b""
            while len(data) < 4 or len(data) < 4 + struct.unpack(">L", data[:4])[0]:
                data += connection.recv(65536)
    finally:
        logger.removeHandler(handler)
        handler.close()
        server.close()

    record = logging.makeLogRecord(pickle.loads(data[4:]))
    assert record.getMessage() == stream.getvalue().rstrip("\n")
    assert runtime.JsonFormatter().format(record) == stream.getvalue().rstrip("\n")
